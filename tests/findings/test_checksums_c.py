"""The bad checksums found in C (`_evidence.bad_checksums`) are those polars finds (`artefacts.python_bad_checksums`):
the same rows, journeys, packets and interfaces' counts, on made-up sightings (nulls with true or numbers under them,
chunks cut anywhere, columns missing or all null) and on the captures of the corpus and scenarios."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from cniscope.findings import artefacts
from cniscope.ingest import expand, read
from cniscope.journeys import correlate
from cniscope.models import evidence
from cniscope.sources import InputSpec
from tests.compiled import compile_c, garbage_under_nulls
from tests.paths import CORPUS, DATA

SOURCE = Path(evidence.__file__).parent.parent / "_evidence.c"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("checksums"))


def both(table: pl.DataFrame, monkeypatch: pytest.MonkeyPatch, compiled: ModuleType) -> artefacts.BadChecksums:
    """`bad_checksums` of `table` in C and in polars: the same, arrays of the same type; the C one."""
    monkeypatch.setattr(artefacts, "COMPILED", True)
    monkeypatch.setattr(artefacts, "c_checksums", compiled.bad_checksums, raising=False)
    got = artefacts.bad_checksums(table)
    want = artefacts.python_bad_checksums(table)
    assert got.per_iface == want.per_iface and list(got.per_iface) == list(want.per_iface) and got.packets == want.packets
    for ours, theirs in ((got.inner, want.inner), (got.outer, want.outer), (got.journeys, want.journeys)):
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    return got


def true_under_nulls(column: pl.Series, rng: np.random.Generator) -> pl.Series:
    """The same boolean column, true under some of its nulls (Arrow promises nothing there)."""
    valid = column.is_not_null().to_numpy()
    values = column.fill_null(False).to_numpy() | (~valid & (rng.random(len(valid)) < 0.7))
    array = pa.Array.from_buffers(pa.bool_(), len(values), [pa.py_buffer(np.packbits(valid, bitorder="little")),
                                                            pa.py_buffer(np.packbits(values, bitorder="little"))])
    return pl.Series(column.name, array)


def sightings(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """The columns `bad_checksums` reads, of `n` made-up sightings: verdicts true, false or null, protocols among
    TCP, UDP, ICMP and null, journeys shared; each column chunked its own way, some slices starting mid-byte."""

    def pick(values: list[object], dtype: pl.DataType) -> pl.Series:
        return pl.Series([values[p] for p in rng.integers(0, len(values), n)], dtype=dtype)

    table = pl.DataFrame({
        "l4_csum_bad": pick([True, False, None, True], pl.Boolean()), "proto": pick([6, 17, 1, 58, None, 6], pl.UInt8()),
        "outer_l4_csum_bad": pick([None, None, False, True], pl.Boolean()),
        "iface": pick(["eth0", "cni0", None, "flannel.1", "eth0"], pl.Categorical()),
        "journey": pl.Series(rng.integers(0, max(n // 3, 1), n), dtype=pl.UInt32()),
    })
    columns = []
    for name in table.columns:
        cuts = np.unique(np.clip([0, *rng.integers(1, max(n, 2), 4), n], 0, n)).tolist()
        columns.append(pl.concat([table[name].slice(a, b - a) for a, b in zip(cuts, cuts[1:])], rechunk=False) if n else table[name])
    return pl.DataFrame(columns)


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 300, 5000])
def test_made_up_sightings_are_found_as_in_polars(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    table = sightings(np.random.default_rng(n), n)
    found = both(table, monkeypatch, compiled)
    both(table.slice(min(n, 5)), monkeypatch, compiled)  # a view at an offset
    if n >= 300:  # bad ones of every kind were there
        assert len(found.inner) and len(found.outer) and 0 < found.packets < len(found.inner) and len(found.per_iface) == 3


def test_columns_missing_or_of_nulls(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    table = sightings(np.random.default_rng(7), 2000)
    unnumbered = both(table.drop("journey", "outer_l4_csum_bad"), monkeypatch, compiled)
    assert unnumbered.packets == len(unnumbered.inner) and not len(unnumbered.outer)
    nulls = table.with_columns(pl.lit(None, dtype=table.schema[name]).alias(name) for name in ("outer_l4_csum_bad", "iface"))
    assert both(nulls, monkeypatch, compiled).per_iface == {}
    assert not len(both(table.with_columns(pl.lit(None, dtype=pl.Boolean).alias("l4_csum_bad")), monkeypatch, compiled).inner)


def test_what_lies_under_a_null_is_not_found(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """True verdicts and protocols 6 and 17 under nulls change nothing."""
    rng = np.random.default_rng(8)
    table = sightings(rng, 4000)
    dirty = table.with_columns(true_under_nulls(table["l4_csum_bad"], rng), true_under_nulls(table["outer_l4_csum_bad"], rng),
                               garbage_under_nulls(table["proto"], rng))
    assert all(dirty[name].equals(table[name]) for name in table.columns)
    assert np.array_equal(both(dirty, monkeypatch, compiled).inner, both(table, monkeypatch, compiled).inner)


def test_a_bad_row_without_a_journey_is_refused(compiled: ModuleType) -> None:
    table = sightings(np.random.default_rng(9), 300).with_columns(
        *(pl.when(pl.int_range(300) == 0).then(first).otherwise(pl.col(name)).alias(name)
          for name, first in (("l4_csum_bad", True), ("proto", 6))),
        pl.when(pl.int_range(300) == 0).then(None).otherwise(pl.col("journey")).alias("journey"))
    columns = tuple(table[name].to_physical().__arrow_c_stream__() for name in artefacts.CHECKSUM_COLUMNS)
    with pytest.raises(ValueError, match="no journey"):
        compiled.bad_checksums(columns, 300, *(np.empty(300, dtype=np.uint32) for _ in range(3)))


@pytest.mark.parametrize("path", [*sorted(p for p in (DATA / "scenarios").glob("*/*") if p.is_dir()), *sorted(CORPUS.glob("*.pcap"))],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_captures_are_found_as_in_polars(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    both(correlate(read(expand([InputSpec(str(path))])).table).table, monkeypatch, compiled)
