"""Correlation's sequential steps in C (`_journeys.c`) give what their numpy fallbacks in `cniscope.journeys` give,
on keys of every kind and partition counts of every size; positions outside the arrays are refused."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cniscope import journeys
from tests.compiled import compile_c

SOURCE = Path(journeys.__file__).with_name("_journeys.c")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("journeys"))


def keys(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """uint64 keys: fingerprints (random), fingerprints seen a few times each, fingerprints alike but for low bits, one
    key, small numbers (most digits the same in every key: passes skipped), numbers at the ends of the range."""
    if kind == "random":
        return rng.integers(0, 2**64, n, dtype=np.uint64)
    if kind == "repeated":
        distinct = rng.integers(0, 2**64, max(n // 3, 1), dtype=np.uint64)
        return distinct[rng.integers(0, len(distinct), n)]
    if kind == "one":
        return np.full(n, 0x0123456789ABCDEF, dtype=np.uint64)
    if kind == "small":
        return rng.integers(0, 3000, n).astype(np.uint64)
    if kind == "near":  # fingerprints sharing their top 31 bits by fours, told apart below them: the C sort's runs mended
        tops = rng.integers(0, 2**64, max(n // 4, 1), dtype=np.uint64) & ~np.uint64(2**33 - 1)
        return tops[rng.integers(0, len(tops), n)] | rng.integers(0, 5, n).astype(np.uint64) << np.uint64(rng.integers(0, 33))
    ends = np.array([0, 1, 2**64 - 1, 2**64 - 2, 2**63, 2**63 - 1, 2**32, 2**32 - 1], dtype=np.uint64)
    return ends[rng.integers(0, len(ends), n)]


KINDS = ["random", "repeated", "near", "one", "small", "ends"]


@pytest.mark.parametrize("kind", KINDS)
def test_argsort_keys_is_numpys_stable_argsort(compiled: ModuleType, kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    for n in (0, 1, 2, 17, 5000, 70_000):
        key = keys(rng, n, kind)
        perm, ordered = np.full(n, 7, np.uint32), np.zeros(n, np.uint64)
        compiled.argsort_keys(key, perm, ordered)
        want_perm, want_ordered = np.zeros(n, np.uint32), np.zeros(n, np.uint64)
        journeys.python_argsort_keys(key, want_perm, want_ordered)
        assert (perm == want_perm).all() and (ordered == want_ordered).all() and (perm == np.argsort(key, kind="stable")).all()


@pytest.mark.parametrize("kind", KINDS)
def test_partitions_are_numpys(compiled: ModuleType, kind: str) -> None:
    """Each key's partition is the key modulo the count (a remainder computed without dividing, in C): the same
    sizes and places as numpy's, block after block, for counts of every size."""
    rng = np.random.default_rng(10 + len(kind))
    key = np.concatenate([keys(rng, 3000, kind), keys(rng, 3000, "ends")])
    for count in (*range(1, 70), 255, 256, 1000, 65535, 65536, 65537, 1_000_003):
        sizes, want_sizes = np.zeros(count, np.int64), np.zeros(count, np.int64)
        blocks = [(0, key[:2500]), (2500, key[2500:])]
        for _, block in blocks:
            compiled.partition_sizes(block, sizes)
            journeys.python_partition_sizes(block, want_sizes)
        assert (sizes == want_sizes).all() and sizes.sum() == len(key)
        at = np.cumsum(sizes) - sizes
        want_at = at.copy()
        positions, want_positions = np.zeros(len(key), np.uint32), np.zeros(len(key), np.uint32)
        for start, block in blocks:
            compiled.partition_place(block, start, at, positions)
            journeys.python_partition_place(block, start, want_at, want_positions)
        assert (positions == want_positions).all() and (at == want_at).all(), count
        assert (positions == np.argsort(key % np.uint64(count), kind="stable")).all()
        for dtype in (np.uint8, np.uint16, np.uint32, np.int64):  # a column put in the same order
            values = rng.integers(0, 100, len(key)).astype(dtype)
            at, out = np.cumsum(sizes) - sizes, np.zeros(len(key), dtype)
            for start, block in blocks:
                compiled.partition_scatter(block, at, values[start:start + len(block)], out)
            assert (out == values[positions]).all() and (at == want_at).all()


def test_a_place_outside_the_positions_is_refused(compiled: ModuleType) -> None:
    with pytest.raises(ValueError, match="outside"):
        compiled.partition_place(np.arange(10, dtype=np.uint64), 0, np.full(3, 3, np.int64), np.zeros(5, np.uint32))
    with pytest.raises(ValueError, match="outside"):
        compiled.partition_scatter(np.arange(10, dtype=np.uint64), np.full(3, 3, np.int64), np.arange(10), np.zeros(5))
    with pytest.raises(ValueError, match="bytes a key"):
        compiled.partition_scatter(np.arange(10, dtype=np.uint64), np.zeros(3, np.int64), np.zeros(10, "V3"), np.zeros(30))


def test_a_partitions_journeys_are_put_in_place_as_numpy_puts_them(compiled: ModuleType) -> None:
    rng = np.random.default_rng(6)
    rows, n, journeys_ = 100_000, 5000, 1200
    idx = np.sort(rng.choice(rows, n, replace=False)).astype(np.uint32)  # the partition's rows
    perm = rng.permutation(n).astype(np.uint32)  # hop order -> the partition's row
    firsts = np.sort(rng.choice(rows, journeys_, replace=False)).astype(np.uint32)
    journey = rng.integers(0, journeys_, n).astype(np.uint32)
    hop = rng.integers(0, 9, n).astype(np.uint32)
    got = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    want = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    compiled.merge_put(perm, idx, firsts, journey, hop, *got)
    journeys.python_merge_put(perm, idx, firsts, journey, hop, *want)
    assert (got[0] == want[0]).all() and (got[1] == want[1]).all() and (got[0] != 7).sum() == n
    with pytest.raises(ValueError, match="outside"):
        compiled.merge_put(perm, idx, firsts, journey + np.uint32(journeys_), hop, *got)
    with pytest.raises(ValueError, match="outside"):
        compiled.merge_put(perm, idx, firsts, journey, hop, np.zeros(10, np.uint32), np.zeros(10, np.uint32))


def test_a_partitions_journeys_in_its_own_order_are_put_in_place_as_numpy_puts_them(compiled: ModuleType) -> None:
    rng = np.random.default_rng(7)
    rows, n = 100_000, 5000
    idx = np.sort(rng.choice(rows, n, replace=False)).astype(np.uint32)  # the partition's rows
    journey, hop = rng.integers(0, rows, n).astype(np.uint32), rng.integers(0, 9, n).astype(np.uint32)
    got = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    want = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    compiled.put_rows(idx, journey, hop, *got)
    journeys.python_put_rows(idx, journey, hop, *want)
    assert (got[0] == want[0]).all() and (got[1] == want[1]).all() and (got[1] != 7).sum() == (hop != 7).sum()
    assert (got[0][idx] == journey).all()
    with pytest.raises(ValueError, match="outside"):
        compiled.put_rows(idx, journey, hop, np.zeros(10, np.uint32), np.zeros(10, np.uint32))
    with pytest.raises(ValueError, match="lengths differ"):
        compiled.put_rows(idx, journey[:-1], hop, *got)


def test_journeys_are_ranked_by_first_row_as_numpy_ranks_them(compiled: ModuleType) -> None:
    rng = np.random.default_rng(4)
    rows = 3_000_000  # blocks of `RANK_BLOCK` rows in numpy: journeys cross them
    label = rng.integers(0, rows // 3, rows)
    first_row = np.full(rows // 3, rows, np.int64)
    np.minimum.at(first_row, label, np.arange(rows))
    journey = first_row[label].astype(np.uint32)  # each sighting's journey by its first row: what `Merge` gives
    first = journey == np.arange(rows, dtype=np.uint32)
    want = journey.copy()
    journeys.python_rank_firsts(want)
    compiled.rank_firsts(journey)
    assert (journey == want).all() and journey.max() == np.count_nonzero(first) - 1
    with pytest.raises(ValueError, match="first row after"):
        compiled.rank_firsts(np.array([0, 2, 1], np.uint32))
