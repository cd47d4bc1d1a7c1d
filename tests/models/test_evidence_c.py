"""The evidence counted in C (`_evidence.c`) is what polars counts (`evidence.python_scan`): the same envelopes, ports,
MACs, gateways, addresses, SYNs and TTLs on made-up sightings of every kind (nulls beside zeros, numbers under nulls,
chunks cut anywhere), on every scenario and on the corpus; and the verdicts are the same either way."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl
import pytest

from cniscope.ingest import expand, read
from cniscope.journeys import correlate, materialise
from cniscope.models import MODELS, evidence, infer
from cniscope.packets.schema import mac_value
from cniscope.sources import InputSpec
from tests.compiled import compile_c, garbage_under_nulls
from tests.paths import CORPUS, DATA

SOURCE = Path(evidence.__file__).parent.parent / "_evidence.c"
MODEL_LIST = list(MODELS.values())


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("evidence"))


def in_c(monkeypatch: pytest.MonkeyPatch, compiled: ModuleType) -> None:
    monkeypatch.setattr(evidence, "COMPILED", True)
    monkeypatch.setattr(evidence, "evidence_scan", compiled.scan, raising=False)
    monkeypatch.setattr(evidence, "code_counts", compiled.code_counts, raising=False)


def both(table: pl.DataFrame, wanted: evidence.Asked, monkeypatch: pytest.MonkeyPatch, compiled: ModuleType) -> evidence.Scan:
    """`c_scan` and `python_scan` of `table`: the same; the C one."""
    in_c(monkeypatch, compiled)
    got = evidence.c_scan(table, wanted)
    assert got == evidence.python_scan(table, wanted)
    return got


GATEWAY = "169.254.1.1"
MACS = [mac_value("ee:ee:ee:ee:ee:ee"), mac_value("aa:bb:cc:dd:ee:ff"), mac_value("0a:58:0a:f4:00:05"), mac_value("0a:58:0a:f4:00:09"), 7, 0]
ASKED = evidence.Asked(ports=((6, 179), (6, 4240), (17, 6783), (17, 8472)), macs=(MACS[0], MACS[1]), prefixes=(0x0a58, 0),
                       gateways=(GATEWAY,), veths=("cali0123456789a", "veth0a0b0c0d"), devices=("flannel.1", "vxlan.calico"),
                       every=False)


def sightings(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """`evidence.SCANNED` of `n` made-up sightings, each field from a few values (asked ones among them) or null; the
    columns chunked each their own way, some from offsets that are not whole bytes of the validity bitmap."""

    def ints(values: list[int], dtype: pl.DataType, nulls: float = 0.2) -> pl.Series:
        picked = rng.integers(0, len(values), n)
        return pl.Series([None if rng.random() < nulls else values[p] for p in picked], dtype=dtype)

    names = ["eth0", "cali0123456789a", "flannel.1", "vxlan.calico", "veth0a0b0c0d", "cni0", "any"]
    gateway = int(evidence._ip4(GATEWAY) or 0)
    table = pl.DataFrame({
        "tunnel": ints([0, 0, 0, 1, 3], pl.UInt8()), "outer_dport": ints([8472, 4789, 0], pl.UInt16(), 0.5),
        "vni": ints([1, 5, 0], pl.UInt32(), 0.5), "proto": ints([6, 6, 17, 1], pl.UInt8(), 0.05),
        "sport": ints([179, 4240, 6783, 8472, 80, 0, 65535, 40000], pl.UInt16()),
        "dport": ints([179, 4240, 6783, 8472, 80, 0, 65535, 40000], pl.UInt16()),
        "src": ints([0, 1, 2, 3, 2**32 - 1, gateway], pl.UInt32()), "dst": ints([0, 1, 2, 3, 2**32 - 1], pl.UInt32()),
        "outer_src": ints([0, 5, 6], pl.UInt32(), 0.7), "outer_dst": ints([0, 5, 7], pl.UInt32(), 0.7),
        "mss": ints([1410, 1460, 0], pl.UInt16(), 0.8), "tcp_flags": ints([2, 18, 16, 0], pl.UInt8()),
        "iface": pl.Series([None if rng.random() < 0.1 else names[p] for p in rng.integers(0, len(names), n)], dtype=pl.Categorical()),
        "ttl": ints([64, 63, 0], pl.UInt8()), "arp_tpa": ints([gateway, 0, 5], pl.UInt32(), 0.8),
        **{name: ints(MACS, pl.UInt64(), nulls) for name, nulls in
           zip(evidence.MAC_COLUMNS, (0.0, 0.3, 0.8, 0.8, 0.95), strict=True)},
    })
    cuts = np.unique(np.clip([0, *rng.integers(1, max(n, 2), 5), n], 0, n)).tolist()
    chunked = pl.concat([table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])], rechunk=False)
    other = np.unique(np.clip([0, 3, 13, n // 2 + 5, n], 0, n)).tolist()
    return chunked.with_columns(pl.concat([table[name].slice(a, b - a) for a, b in zip(other, other[1:])], rechunk=False)
                                for name in ("tunnel", "src", "mss", "iface", "inner_eth_src", "eth_src", "sport"))


@pytest.mark.parametrize("n", [0, 1, 9, 70, 300, 5000])
@pytest.mark.parametrize("every", [False, True])
def test_made_up_sightings_count_as_in_polars(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int, every: bool) -> None:
    table = sightings(np.random.default_rng(n), max(n, 20)).head(n)
    found = both(table, dataclasses.replace(ASKED, every=every), monkeypatch, compiled)
    if n >= 300:  # something of every kind was there to count
        assert all(found.ports.values()) and found.bgp_rows and all(found.macs.values()) and found.gateways[GATEWAY]
        assert found.prefixes[0x0a58] and len(found.envelopes) > 3 and found.syns and {d for d, _, _ in found.ttls} == set(ASKED.devices)
        kinds = {k for were in found.addresses.values() for k in (1, 2, 4, 8, 16) if were & k}
        assert kinds == {1, 2, 4, 16} | ({8} if every else set())
        assert evidence.c_scan(table.slice(7), ASKED) == evidence.python_scan(table.slice(7), ASKED)  # a view at an offset


def test_nothing_asked_and_columns_of_nulls(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    table = sightings(np.random.default_rng(3), 500)
    nothing = evidence.Asked((), (), (), (), (), (), every=False)
    assert both(table, nothing, monkeypatch, compiled).ports == {}
    empty = table.with_columns(pl.lit(None, dtype=table.schema[name]).alias(name) for name in ("tunnel", "src", "eth_src", "iface", "mss"))
    found = both(empty, ASKED, monkeypatch, compiled)
    assert not found.envelopes and not found.syns and not found.ttls


def test_what_lies_under_a_null_is_not_counted(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow leaves the values under nulls unspecified: numbers there (asked ones among them) change nothing."""
    rng = np.random.default_rng(4)
    table = sightings(rng, 4000)
    numbers = [name for name in evidence.SCANNED if table[name].dtype != pl.Categorical and table[name].null_count()]
    dirty = table.with_columns(garbage_under_nulls(table[name], rng) for name in numbers)
    assert all(dirty[name].equals(table[name]) for name in numbers)
    assert both(dirty, ASKED, monkeypatch, compiled) == both(table, ASKED, monkeypatch, compiled)


def test_columns_of_other_types_are_refused(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    table = sightings(np.random.default_rng(2), 20).with_columns(pl.col("src").cast(pl.Int64))
    in_c(monkeypatch, compiled)
    with pytest.raises(ValueError, match="column src"):
        evidence.c_scan(table, ASKED)


def captures() -> list[Path]:
    return [*sorted(p for p in (DATA / "scenarios").glob("*/*") if p.is_dir()), *sorted(CORPUS.glob("*.pcap"))]


@pytest.mark.parametrize("path", captures(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_captures_count_and_infer_as_in_polars(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    table = correlate(read(expand([InputSpec(str(path))])).table).table
    for every in (False, True):
        both(table, dataclasses.replace(evidence.asked(table, MODEL_LIST, None), every=every), monkeypatch, compiled)
    journeys = materialise(table)
    in_c(monkeypatch, compiled)
    fast = infer.infer(table, journeys)
    monkeypatch.setattr(evidence, "COMPILED", False)
    evidence._scanned._asked = evidence._pods._asked = None  # counted again, in polars
    assert infer.infer(table, journeys) == fast


def test_names_are_counted_as_numpy_counts_them(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A categorical column's names counted over its codes in C (`code_counts`) as by numpy: nulls left out, chunks
    cut anywhere, empty chunks among them, a column of nulls, none at all."""
    table = sightings(np.random.default_rng(5), 3000)
    pl.Series([f"x{i}" for i in range(5000)], dtype=pl.Categorical())  # names made before: codes of 4096 and more below
    late = pl.Series([f"late{i % 7}" if i % 5 else None for i in range(999)] + ["eth0"] * 3, dtype=pl.Categorical())
    assert late.cat.physical().max() >= 4096
    gap = pl.concat([table["iface"].head(0), table["iface"].head(40), table["iface"].head(0), table["iface"].tail(9)], rechunk=False)
    for column in (table["iface"], table["iface"].slice(5), table["iface"].head(0), pl.Series([None] * 9, dtype=pl.Categorical()), gap, late):
        monkeypatch.setattr(evidence, "COMPILED", False)
        want = evidence.named_counts(column)
        in_c(monkeypatch, compiled)
        assert evidence.named_counts(column) == want and list(evidence.named_counts(column)) == list(want)
    assert want == {**Counter(f"late{i % 7}" for i in range(999) if i % 5), "eth0": 3}
    assert sum(evidence.named_counts(table["iface"]).values()) == 3000 - table["iface"].null_count()
