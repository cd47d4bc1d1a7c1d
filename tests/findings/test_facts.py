"""Facts derived once for every detector."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cniscope.findings import facts as facts_mod
from cniscope.findings.facts import Facts, _partners


def test_partners_find_the_first_reply_way_sighting_from_each_position_on() -> None:
    """For each sighting, the first position at or after it going the other way between its two addresses (itself
    when source and destination are one address; the length when none): the definition, checked by brute force."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(0, 30))
        src = rng.integers(0, 4, n).astype(np.uint32)
        dst = rng.integers(0, 4, n).astype(np.uint32)
        if trial % 2:
            src, dst = src + np.uint32(2**32 - 4), dst + np.uint32(2**32 - 4)  # the top of the address space too
        expected = [next((p for p in range(i, n) if (src[p], dst[p]) == (dst[i], src[i])), n) for i in range(n)]
        assert _partners(src, dst).tolist() == expected


@pytest.mark.parametrize("probe", [3, 1 << 13])
def test_two_way_between_is_a_pair_both_ways_in_the_window(monkeypatch, probe: int) -> None:
    """Whether the window shows some address pair both ways, by brute force, whether the window's first sightings
    (`TWO_WAY_PROBE` of them) show it or the whole input's partners must."""
    monkeypatch.setattr(facts_mod, "TWO_WAY_PROBE", probe)
    rng = np.random.default_rng(5)
    n = 60
    ts = np.sort(rng.integers(0, 40, n))
    src, dst = rng.integers(0, 6, n), rng.integers(0, 6, n)
    src[::2] = 100  # mostly one way: many windows show no pair both ways
    table = pl.DataFrame({"input": pl.Series([0] * n, dtype=pl.UInt16), "ts": ts, "src": src.astype(np.uint32),
                          "dst": dst.astype(np.uint32)})
    facts = Facts(table=table, journeys=(), flows=(), verdict=None, clocks=(), inventory=None, by_id={}, flow_by_id={},
                  model=None, node_names=(), node_codes=np.zeros(n), coverage={}, local={}, pods_on={})
    answers = set()
    for lo in range(-2, 42, 3):
        for hi in range(lo, 44, 5):
            inside = [(int(s), int(d)) for t, s, d in zip(ts, src, dst) if lo <= t <= hi]
            expected = any((d, s) in inside for s, d in inside)
            assert facts.two_way_between(0, lo, hi) is expected, (lo, hi)
            answers.add(expected)
    assert answers == {True, False}
    assert not facts.two_way_between(1, None, None)


@pytest.mark.parametrize("inputs", [1, 2])
def test_sightings_between_is_a_time_in_the_window_over_every_chunk(inputs: int) -> None:
    """Whether an input shows a sighting at lo <= ts <= hi, by brute force, on a table of several chunks (as read
    batch by batch, or mapped from spilled files), one input in time order (its own column searched) or two."""
    rng = np.random.default_rng(3)
    parts = []
    for size in (0, 7, 1, 12, 5):
        ts = np.sort(rng.integers(0, 100, size)) + 100 * len(parts)
        parts.append(pl.DataFrame({"input": pl.Series(rng.integers(0, inputs, size), dtype=pl.UInt16), "ts": ts.astype(np.int64)}))
    table = pl.concat(parts, rechunk=False)
    assert table["ts"].n_chunks() > 1
    facts = Facts(table=table, journeys=(), flows=(), verdict=None, clocks=(), inventory=None, by_id={}, flow_by_id={},
                  model=None, node_names=(), node_codes=np.zeros(table.height), coverage={}, local={}, pods_on={})
    answers = set()
    for source in range(inputs + 1):
        times = table.filter(pl.col("input") == source)["ts"].to_list()
        for lo in range(-3, 520, 4):
            for hi in (lo, lo + 2, lo + 9, lo + 60):
                expected = any(lo <= t <= hi for t in times)
                assert facts.sightings_between(source, lo, hi) is expected, (source, lo, hi)
                answers.add(expected)
    assert answers == {True, False}
