"""The tunnel envelopes' distinct journeys counted in C (`_evidence.distinct_counts`, a bit a journey for each pair or
sender) are what polars counts (`n_unique`), and each pair's VNIs and ports told without grouping where every envelope
has the one or none are what grouping finds: the same `nat.envelopes` either way, on made-up envelopes and on the
captures of the scenarios and the corpus."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl
import pytest

from cniscope.findings import nat
from cniscope.ingest import expand, read
from cniscope.journeys import correlate
from cniscope.models import evidence
from cniscope.sources import InputSpec
from tests.compiled import compile_c
from tests.paths import CORPUS, DATA

SOURCE = Path(evidence.__file__).parent.parent / "_evidence.c"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("envelopes"))


def both(table: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, compiled: ModuleType) -> nat.Envelopes:
    """`nat.envelopes` of `table` with C and without, and without its shortcuts (each pair's VNIs and ports grouped):
    the same frames, of the same types; the C one."""
    with monkeypatch.context() as grouped:
        grouped.setattr(nat, "_one_list", lambda t, column: None)
        grouped.setattr(nat, "COMPILED", False)
        want = nat.envelopes(table)
    monkeypatch.setattr(nat, "COMPILED", False)
    assert nat.envelopes(table).groups.equals(want.groups)
    monkeypatch.setattr(nat, "COMPILED", True)
    monkeypatch.setattr(nat, "distinct_counts", compiled.distinct_counts, raising=False)
    got = nat.envelopes(table)
    assert got.texts == want.texts
    for ours, theirs in ((got.table, want.table), (got.ways, want.ways), (got.groups, want.groups)):
        assert ours.schema == theirs.schema and ours.equals(theirs)
    return got


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_keys_counted_as_numpy_counts_them(compiled: ModuleType, seed: int) -> None:
    """Each key's distinct values, first row, rows and first values (probes), the keys in the order first met."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 5000))
    keys = rng.choice(np.array([3, 7, 7, 40, 0], dtype=np.uint32), n)
    values = rng.integers(0, 300, n).astype(np.uint32)
    found = compiled.distinct_counts(keys, values, 300, 41, 5)
    assert found is not None
    counts, met, firsts, sizes, probes = (np.frombuffer(b, dtype=t) for b, t in zip(found, ("<i8", "<u4", "<i8", "<i8", "<u4")))
    assert counts.tolist() == [len(set(values[keys == k].tolist())) for k in range(41)]
    assert met.tolist() == list(dict.fromkeys(keys.tolist()))
    assert firsts.tolist() == [int(np.argmax(keys == k)) for k in met] and sizes.tolist() == [int((keys == k).sum()) for k in met]
    assert probes.tolist() == [v for k in met for v in values[keys == k][:5].tolist()]


def test_bounds_and_room(compiled: ModuleType) -> None:
    keys, values = np.array([0, 1], dtype=np.uint32), np.array([5, 9], dtype=np.uint32)
    with pytest.raises(ValueError, match="out of bounds"):
        compiled.distinct_counts(keys, values, 9, 2, 4)  # a value of 9, below 9 wanted
    with pytest.raises(ValueError, match="out of bounds"):
        compiled.distinct_counts(keys, values, 10, 1, 4)
    with pytest.raises(ValueError, match="as many"):
        compiled.distinct_counts(keys, values[:1], 10, 2, 4)
    assert compiled.distinct_counts(keys, values, 1 << 30, 2, 4) is None  # 128 MB of bits a key: left to polars
    assert compiled.distinct_counts(keys[:0], values[:0], 0, 0, 4) == (b"", b"", b"", b"", b"")
    assert compiled.distinct_counts(keys, values, 10, 2, 0)[4] == b""  # no probe


def envelopes_of(rng: np.random.Generator, n: int, ends: list[int | None]) -> pl.DataFrame:
    """`n` made-up sightings, most of them envelopes (VXLAN or IPIP) between a few IPv4 `ends`, journeys shared."""
    def pick(values: list[object], dtype: pl.DataType) -> pl.Series:
        return pl.Series([values[p] for p in rng.integers(0, len(values), n)], dtype=dtype)

    return pl.DataFrame({
        "row": pl.Series(range(n), dtype=pl.UInt32), "journey": pl.Series(rng.integers(0, max(n // 4, 1), n), dtype=pl.UInt32),
        "tunnel": pick([0, 1, 1, 2], pl.UInt8()), "vni": pick([1, 2, None], pl.UInt32()), "outer_dport": pick([4789, 8472, None], pl.UInt16()),
        "outer_src": pick(ends, pl.UInt32()), "outer_dst": pick(ends, pl.UInt32()),
        **{f"{side}{kind}": pl.Series([None] * n, dtype=pl.Categorical()) for side in ("outer_src", "outer_dst") for kind in ("6", "_name")},
    })


@pytest.mark.parametrize("n", [0, 1, 50, 3000])
def test_made_up_envelopes_as_in_polars(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    rng = np.random.default_rng(n)
    found = both(envelopes_of(rng, n, [0x0a000001, 0x0a000002, 0x0a000003]), monkeypatch, compiled)
    if n >= 3000:
        assert found.ways.height > found.groups.height > 2
    both(envelopes_of(rng, n, [0x0a000001, None, 0x0a000002]), monkeypatch, compiled)  # ends missing: polars' keys
    one = envelopes_of(rng, n, [0x0a000001, 0x0a000002])
    for vni, port in ((7, 8472), (None, None), (7, None)):  # one VNI and port (flannel's), none (IPIP), the one or none
        same = one.with_columns(pl.lit(vni, dtype=pl.UInt32).alias("vni"), pl.lit(port, dtype=pl.UInt16).alias("outer_dport"))
        groups = both(same, monkeypatch, compiled).groups
        assert groups.get_column("vnis").to_list() == [[] if vni is None else [vni]] * groups.height


@pytest.mark.parametrize("path", [*sorted(p for p in (DATA / "scenarios").glob("*/*") if p.is_dir()), *sorted(CORPUS.glob("*.pcap"))],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_captures_as_in_polars(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    both(correlate(read(expand([InputSpec(str(path))])).table).table, monkeypatch, compiled)
