"""Beyond memory (`cniscope.spill`): the capture spilled to disk in partitions gives the in-memory path's report."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from cniscope import footprint, spill
from cniscope.analyze import analyze, analyze_capture
from cniscope.ingest import expand, read
from cniscope.report.json_out import to_dict
from cniscope.sources import InputInfo, InputSpec
from tests.cli import run
from tests.paths import SEED
from tests.test_analyze_golden import _cases, generated

CASES = _cases()


def _spilled(specs: list[InputSpec], partitions: int, workers: int) -> dict:
    capture, correlated = spill.read(specs, memory=64 << 10, workers=workers, partitions=partitions)
    assert correlated is not None and correlated.table.height == capture.table.height > 0
    return to_dict(analyze_capture(capture, correlated=correlated))


@pytest.mark.parametrize("name,directory,given", CASES, ids=[c[0] for c in CASES])
def test_every_capture_spilled_in_partitions_gives_the_same_report(name: str, directory: Path, given: list[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Corpus, seed and lab scenarios (one node and several: clocks estimated over partitions): the whole JSON report."""
    monkeypatch.chdir(directory)
    specs = expand([InputSpec.parse(g) for g in given])
    whole = to_dict(analyze_capture(read(specs)))
    assert _spilled(specs, partitions=7, workers=2) == whole


def test_the_reference_generator_spilled_in_one_or_many_partitions(tmp_path: Path) -> None:
    specs = [InputSpec(str(generated(tmp_path, 3000)))]
    whole = to_dict(analyze_capture(read(specs)))
    assert whole["journeys_total"] > 500 and whole["flows_total"] > 10 and whole["findings"]
    for partitions, workers in ((1, 1), (13, 2), (64, 1)):
        assert _spilled(specs, partitions, workers) == whole


def test_a_tiny_memory_takes_the_spilled_path_and_says_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`analyze --memory`: below what the inputs need in memory, the capture is spilled; the report is the same."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    specs = [InputSpec(str(SEED), node="node3")]
    assert footprint.needed(specs, 4 << 10) and not footprint.needed(specs, 1 << 30)
    assert to_dict(analyze(specs, memory=4 << 10)) == to_dict(analyze(specs, memory=1 << 30))
    small, large = (run("analyze", "--json", "--memory", size, f"node3={SEED}") for size in ("4K", "1G"))
    assert small.code == large.code == 0 and small.out == large.out
    assert os.listdir(tmp_path) == []  # the scratch directory is gone


def test_the_scratch_directory_is_removed_when_reading_is_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []

    def interrupt(spec: InputSpec, info: InputInfo) -> None:
        seen.extend(os.listdir(tmp_path))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        spill.read([InputSpec(str(SEED), node="node3")], memory=64 << 10, workers=1, on_batch=interrupt)
    assert seen and os.listdir(tmp_path) == []  # it was there while reading


def test_many_partitions_in_memory_give_the_same_report() -> None:
    """The in-memory path's own fingerprint partitions (`analyze_capture(partitions=...)`), two at a time."""
    specs = [InputSpec(str(SEED), node="node3")]
    whole = to_dict(analyze_capture(read(specs)))
    assert to_dict(analyze_capture(read(specs), partitions=5, workers=2)) == whole


def test_no_room_to_spill_is_said_with_exit_5_and_leaves_nothing(tmp_path: Path) -> None:
    """Files in $TMPDIR limited to 4 KiB (RLIMIT_FSIZE, as a full disk refuses writes): a clear error, no traceback."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    program = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY)); "
               "from cniscope.cli import main; sys.exit(main(sys.argv[1:]))")
    ran = subprocess.run([sys.executable, "-c", program, "analyze", "--memory", "4K", f"node3={SEED}"],
                         capture_output=True, text=True, env={**os.environ, "TMPDIR": str(scratch)})
    assert ran.returncode == 5, ran.stderr
    assert f"cannot spill the capture to {scratch}" in ran.stderr and "TMPDIR" in ran.stderr
    assert "Traceback" not in ran.stderr and os.listdir(scratch) == []


@pytest.mark.parametrize("chosen", [{"flow": 0}, {"select": "tcp and not port 22"}], ids=["flow", "filter"])
def test_a_flow_or_a_filter_of_a_spilled_capture(chosen: dict) -> None:
    specs = [InputSpec(str(SEED), node="node3")]
    spilled, whole = to_dict(analyze(specs, memory=4 << 10, **chosen)), to_dict(analyze(specs, memory=1 << 30, **chosen))
    assert spilled == whole and whole["selection"] and whole["journeys"]


def test_a_spilled_table_is_scanned_on_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In memory, the findings' table-wide work and the conversations' each start on a thread of their own beside the
    Python stages; spilled, the mapped table is scanned by one thread at a time (two scans at once kept more of its
    pages resident), same report."""
    from cniscope.findings import facts

    started: list[list[str]] = []
    real = facts.start

    def counted(table: pl.DataFrame, work: Iterable[Callable[[pl.DataFrame], Any]],
                known: Mapping[Callable[[pl.DataFrame], Any], Any] | None = None) -> facts.Early:
        work = list(work)
        started.append([getattr(w, "func", w).__name__ for w in work])
        return real(table, work, known)

    monkeypatch.setattr(facts, "start", counted)
    specs = [InputSpec(str(generated(tmp_path, 3000)))]
    whole = to_dict(analyze_capture(read(specs)))
    assert len(started) == 2 and "coverage" in started[0] and started[1] == ["tally"]
    assert _spilled(specs, partitions=3, workers=2) == whole
    assert len(started) == 2


def test_without_the_c_watcher_a_python_thread_hands_the_pages_back_the_same_table(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Built without a C compiler (no `_pages`): the files mapped by Python's mmap, handed back by a Python thread."""
    specs = [InputSpec(str(generated(tmp_path, 3000)))]
    whole = to_dict(analyze_capture(read(specs)))
    monkeypatch.setattr(spill, "_pages", None)
    assert _spilled(specs, partitions=3, workers=2) == whole


@pytest.mark.skipif(spill._pages is None, reason="built without a C compiler")
def test_a_spilled_frame_is_its_file_mapped_through_the_watcher(tmp_path: Path) -> None:
    """A batch's frame (`_Pages.map`) reads the file's pages in place: read, they are the process's file pages, and
    the watcher's round hands them back (`_pages.c`)."""
    assert spill._pages is not None
    frame = pl.DataFrame({"a": pl.int_range(0, 4 << 20, dtype=pl.UInt64, eager=True)})  # 32 MiB
    frame.write_ipc(tmp_path / "batch.arrow", compat_level=pl.CompatLevel.newest())
    mapped = spill._Pages(1 << 40).map(tmp_path / "batch.arrow")  # a budget no read passes: held until released
    spill._pages.release()
    before = spill._pages.resident()
    assert mapped.equals(frame)
    assert spill._pages.resident() - before >= 24 << 20
    spill._pages.release()
    assert spill._pages.resident() - before < 8 << 20
