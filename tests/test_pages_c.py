"""A spilled table's mapped files (`_pages.c`): a map holds the file's bytes; the pages read through it are the
process's until handed back, and a round hands them back once they have grown past the budget, not before."""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cniscope import spill
from tests.compiled import compile_c

SOURCE = Path(spill.__file__).with_name("_pages.c")
SIZE = 32 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """A copy of its own: the watcher of the module cniscope imports (started by other tests) is not this one's."""
    return compile_c(SOURCE, tmp_path_factory.mktemp("pages"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mapped") / "table.bin"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, SIZE, dtype=np.uint8).tobytes())
    return path


@pytest.fixture
def mapped(pages: ModuleType, data: Path) -> Iterator[object]:
    with open(data, "rb") as handle:
        yield pages.map(handle.fileno())


def touch(mapped: object) -> int:
    """Every page of the map read: a sum over a byte of each."""
    return int(np.frombuffer(memoryview(mapped), dtype=np.uint8)[::PAGE].sum())  # type: ignore[call-overload]


def test_a_map_is_the_files_bytes_read_only(mapped: object, data: Path) -> None:
    view = memoryview(mapped)  # type: ignore[arg-type]
    assert view.readonly and view.nbytes == SIZE and bytes(view[:4096]) == data.read_bytes()[:4096]
    assert bytes(view[-100:]) == data.read_bytes()[-100:]


def test_pages_read_are_held_until_past_the_budget_then_handed_back(pages: ModuleType, mapped: object) -> None:
    pages.release()
    before = pages.resident()
    touch(mapped)
    grown = pages.resident() - before
    assert grown >= SIZE * 3 // 4  # the file's pages, mapped in (not copied: the map is the file's)
    assert not pages.check(SIZE * 2)  # within the budget: held
    assert pages.resident() - before == grown
    rounds = pages.rounds()
    assert pages.check(SIZE // 2)  # past it: handed back
    assert pages.rounds() == rounds + 1 and pages.resident() - before < SIZE // 8
    assert touch(mapped) == touch(mapped)  # read again from the page cache, the same bytes


def test_file_pages_not_the_maps_raise_the_floor_once(pages: ModuleType, mapped: object, data: Path) -> None:
    """Pages of other files (the libraries' code) are not the budget's: the round they set off hands back none of
    them, and they are counted as the floor from then on; the maps' own pages still go."""
    with open(data, "rb") as handle:
        other = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)  # not a `Map`: no round hands it back
    pages.release()
    touch(other)
    assert pages.check(SIZE // 4)  # past the budget: a round
    assert not pages.check(SIZE // 4)  # which handed back nothing: the floor rose
    touch(mapped)
    assert pages.check(SIZE // 4)  # the maps' own, past the budget over the new floor: handed back
    assert not pages.check(SIZE // 4)
    other.close()


def test_nothing_mapped_nothing_to_hand_back(pages: ModuleType, data: Path) -> None:
    with open(data, "rb") as handle:
        mapped = pages.map(handle.fileno())
    touch(mapped)
    del mapped  # unmapped, and out of the watcher's list
    assert not pages.check(0)


def test_an_empty_file_cannot_be_mapped(pages: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    with open(tmp_path / "empty", "rb") as handle, pytest.raises(ValueError, match="empty"):
        pages.map(handle.fileno())


def test_the_watcher_hands_back_on_its_own(tmp_path: Path, data: Path) -> None:
    """Its thread, started once, looks every `every` microseconds: the pages read go back without a call. (A copy
    of its own: the others' rounds are theirs alone.)"""
    pages = compile_c(SOURCE, tmp_path)
    with open(data, "rb") as handle:
        mapped = pages.map(handle.fileno())
    rounds = pages.rounds()
    pages.watch(1 << 20, 1000)
    touch(mapped)
    deadline = time.monotonic() + 60  # a bound on the wait, not a timing: the thread gets a core eventually
    while pages.rounds() == rounds and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pages.rounds() > rounds
    with pytest.raises(ValueError):
        pages.watch(-1, 1000)
