"""The parquet row groups `_parquet.c` encodes read back (pyarrow and polars) to the tables pyarrow's writer gives:
schema, types, nulls, dictionaries and statistics, on captures and on made-up tables of every odd value; buffers
that do not hold what they claim are refused, and pyarrow writes what the C encoder does not take."""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cniscope import ingest
from cniscope.packets.schema import SCHEMA, empty
from cniscope.report import parquet_out, parquet_parts
from cniscope.report.parquet_out import PARQUET_OPTIONS, stream_parquet, to_arrow
from cniscope.sources import InputSpec
from tests.compiled import compile_c
from tests.frames import ethernet, icmp, ipv4, tcp, udp, vxlan

ARROW = empty().to_arrow().schema
SOURCE = Path(parquet_parts.__file__).with_name("_parquet.c")
STATISTICS = ("input", "frame", "ts")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("parquet"))


@pytest.fixture(autouse=True)
def in_c(monkeypatch: pytest.MonkeyPatch, compiled: ModuleType) -> ModuleType:
    monkeypatch.setattr(parquet_parts, "_parquet", compiled)
    return compiled


def written(tables: list[Any], native: bool, options: dict[str, Any] = PARQUET_OPTIONS, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    parquet_parts.write(tables, out, ARROW, options, native=native, **kwargs)
    return out.getvalue()


def same_as_pyarrow(tables: list[Any], options: dict[str, Any] = PARQUET_OPTIONS, **kwargs: Any) -> bytes:
    """The file the C encoder writes, checked to read back as pyarrow's does (and to be another file)."""
    ours, theirs = written(tables, True, options, **kwargs), written(tables, False, options, **kwargs)
    mine, reference = pq.read_table(io.BytesIO(ours)), pq.read_table(io.BytesIO(theirs))
    assert mine.schema.equals(reference.schema, check_metadata=True)
    assert mine.equals(reference)
    assert pl.read_parquet(io.BytesIO(ours)).equals(pl.read_parquet(io.BytesIO(theirs)))
    assert pl.read_parquet(io.BytesIO(ours)).schema == SCHEMA
    ours_meta, theirs_meta = pq.ParquetFile(io.BytesIO(ours)).metadata, pq.ParquetFile(io.BytesIO(theirs)).metadata
    assert ours_meta.num_rows == theirs_meta.num_rows and ours_meta.num_row_groups == theirs_meta.num_row_groups
    for group in range(ours_meta.num_row_groups):
        a, b = ours_meta.row_group(group), theirs_meta.row_group(group)
        assert a.num_rows == b.num_rows
        for index, field in enumerate(ARROW):
            got, want = a.column(index).statistics, b.column(index).statistics
            if field.name in STATISTICS and options.get("write_statistics") == PARQUET_OPTIONS["write_statistics"]:
                assert (got is None) == (want is None) == (a.num_rows == 0), field.name
                assert got is None or want is None or got.to_dict() == want.to_dict(), field.name
    return ours


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> list[pl.DataFrame]:
    """A capture of 700 packets of four kinds read 37 at a time (odd batches: bitmaps end mid-byte), node named."""
    from cniscope.wire import pcap as pcap_file

    frames = [
        ethernet(ipv4(tcp(seq=7, ack=9, flags="S."), src="10.244.1.2", dst="10.244.2.3")),
        ethernet(ipv4(icmp(type_=8, ident=3, seq=4), src="10.0.0.1", dst="10.0.0.2", proto=1)),
        ethernet(ipv4(udp(vxlan(ethernet(ipv4(tcp(seq=11, flags="P."), src="10.244.1.2", dst="10.244.2.3"))),
                      sport=50000, dport=8472), src="192.168.0.11", dst="192.168.0.12", proto=17)),
        b"\x02" * 9,
    ]
    n = 700
    path = tmp_path_factory.mktemp("c") / "mixed.pcap"
    path.write_bytes(pcap_file.encode([frames[i % 4] for i in range(n)], [1_700_000_000_000_000_000 + i for i in range(n)],
                                      1, nanos=True))
    return list(ingest.batches([InputSpec(str(path), node="node1")], [], batch_size=37))


def test_a_capture_reads_back_as_pyarrow_writes_it(batches: list[pl.DataFrame]) -> None:
    data = same_as_pyarrow(batches, prepare=to_arrow)
    assert pl.read_parquet(io.BytesIO(data)).equals(pl.concat(batches))
    group = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    assert group.column(1).encodings == ("RLE", "DELTA_BINARY_PACKED")  # frame
    assert group.column(ARROW.get_field_index("ttl")).encodings == ("PLAIN", "RLE", "RLE_DICTIONARY")  # 1 byte, few values
    assert group.column(ARROW.get_field_index("src")).encodings == ("PLAIN", "RLE", "RLE_DICTIONARY")  # 4 bytes, few
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    codecs = {meta.row_group(g).column(k).compression for g in range(meta.num_row_groups) for k in range(len(ARROW))}
    assert codecs == {"LZ4", "UNCOMPRESSED"}  # (LZ4_RAW, as pyarrow names it) lz4 left out where it did not pay


def test_integer_dictionaries_of_every_width_up_to_their_cap() -> None:
    """Integers of 4 and 8 bytes (signed and not) through a dictionary, hashed: as many values as it takes (4096,
    probing past taken slots) and one more (PLAIN); values apart in their high bits only, and in their low ones."""
    n = 20_000
    rng = np.random.default_rng(8)
    columns: dict[str, pa.Array] = {}
    for kind in (pa.int32(), pa.uint32(), pa.int64(), pa.uint64()):
        bits = kind.bit_width
        for label, distinct in (("cap", 4096), ("over", 4097)):
            high = (np.arange(distinct, dtype=np.uint64) << np.uint64(bits - 13)).astype(kind.to_pandas_dtype())
            low = np.arange(distinct).astype(kind.to_pandas_dtype()) - (distinct // 2 if pa.types.is_signed_integer(kind) else 0)
            for spread, values in (("high", high), ("low", low)):
                picks = np.concatenate([np.arange(distinct), rng.integers(0, distinct, n - distinct)])
                nulls = np.concatenate([np.zeros(distinct, dtype=bool), rng.random(n - distinct) < 0.01])  # each value once
                columns[f"{kind}_{label}_{spread}"] = pa.array(values[picks], kind, mask=nulls)
    table = pa.table(columns)
    options = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}
    out = io.BytesIO()
    parquet_parts.write([table], out, table.schema, options)
    back = pq.ParquetFile(io.BytesIO(out.getvalue()))
    assert back.read().equals(table)
    group = back.metadata.row_group(0)
    for k, name in enumerate(table.column_names):
        assert ("RLE_DICTIONARY" in group.column(k).encodings) == ("_cap_" in name), name


def test_what_did_not_pay_is_left_out_until_it_is_tried_again() -> None:
    """A column lz4 does not make smaller is written uncompressed, one whose dictionary overflowed PLAIN, from the
    batch after they were learnt to the next retry; the file is the same, written twice (the threads' order aside)."""
    n = 4096
    rng = np.random.default_rng(3)
    table = pa.table({"noise": pa.array(rng.integers(0, 2**63, n), pa.int64()),  # no dictionary, nor lz4
                      "repeats": pa.array(np.arange(n) % 3000 << 40, pa.int64()),  # no dictionary, lz4
                      "runs": pa.array(np.arange(n) // 512, pa.int64())})  # a dictionary, its indices too few for lz4
    options = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}
    native = parquet_parts.Native.make(table.schema, options, parquet_parts._empty(table.schema, options))
    assert native is not None
    first = native.plan()
    signed_dict = parquet_parts._SIGNED | parquet_parts._DICT_INTS
    assert first == [signed_dict] * 3
    part = native.encode(table, parquet_parts._Buffers(1 << 20), first)
    assert part is not None
    native.learn(first, part.sizes)
    raw = parquet_parts._RAW
    assert native.plan() == [parquet_parts._SIGNED | raw, parquet_parts._SIGNED, signed_dict | raw]
    for _ in range(parquet_parts.RETRY - 2):
        native.plan()
    assert native.plan() == first
    files = [written_with(table.schema, options, [table] * 40) for _ in range(2)]
    assert files[0] == files[1]
    back = pq.ParquetFile(io.BytesIO(files[0]))
    assert back.read().equals(pa.concat_tables([table] * 40))
    codecs = [back.metadata.row_group(g).column(0).compression for g in range(40)]
    learnt = parquet_parts.WORKERS + 1  # batches planned before the first is learnt from
    assert codecs == [("LZ4" if g < learnt or g % parquet_parts.RETRY == 0 else "UNCOMPRESSED") for g in range(40)]


def written_with(schema: pa.Schema, options: dict[str, Any], tables: list[pa.Table]) -> bytes:
    out = io.BytesIO()
    parquet_parts.write(tables, out, schema, options)
    return out.getvalue()


def test_stream_parquet_writes_with_the_c_encoder(batches: list[pl.DataFrame], tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    stream_parquet(iter(batches), str(target))
    assert pl.read_parquet(target).equals(pl.concat(batches))
    assert target.read_bytes() != written([b.to_arrow() for b in batches], False)  # not pyarrow's parts


def made_up(rng: np.random.Generator, n: int, null_share: float) -> pl.DataFrame:
    """`n` rows of the packet schema, each column's values from the extremes of its type and random ones, a share of
    them null (per column, 0 and 1 included); text from a few values, empty and long ones among them."""
    columns = {}
    for name, dtype in SCHEMA.items():
        share = rng.choice([0.0, 1.0, null_share, 0.5])
        if dtype == pl.Boolean:
            values: list[Any] = list(rng.integers(0, 2, n).astype(bool))
        elif dtype.is_integer():
            info = np.iinfo(str(dtype).lower())
            edges = [int(info.min), int(info.max), 0, 1, int(info.max) - 1, int(info.min) + 1]
            randoms = rng.integers(info.min, info.max, n, dtype=info.dtype, endpoint=True)
            values = [edges[rng.integers(0, len(edges))] if p == 0 else int(randoms[i]) if p == 1 else min(i, int(info.max))
                      for i, p in enumerate(rng.integers(0, 3, n))]
        else:
            words = ["", "é\u2603", "x" * 70_000, *(f"name{k}" for k in range(300))]
            values = [words[k] for k in rng.integers(0, len(words), n)]
        nulls = rng.random(n) < share
        columns[name] = pl.Series(name, [None if nulls[i] else v for i, v in enumerate(values)], dtype=dtype)
    return pl.DataFrame(columns)


@pytest.mark.parametrize("seed", range(6))
def test_made_up_tables_of_odd_values_read_back_as_pyarrow_writes_them(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tables = [made_up(rng, int(n), share) for n, share in zip(rng.integers(1, 700, 3), (0.01, 0.5, 0.99))]
    same_as_pyarrow(tables, prepare=to_arrow)


def test_sorted_columns_delta_encode_and_keep_their_statistics() -> None:
    """frame and ts ascending (as a capture has them), one of them wrapping around: deltas of every width."""
    n = 5000
    table = empty().vstack(made_up(np.random.default_rng(9), n, 0.0).with_columns(
        pl.Series("frame", np.arange(n, dtype=np.uint32) * 977 + 4_294_000_000, dtype=pl.UInt32),
        pl.Series("ts", np.cumsum(np.random.default_rng(1).integers(0, 2**40, n)) - 2**62, dtype=pl.Int64),
        pl.lit(3, dtype=pl.UInt16).alias("input")))
    data = same_as_pyarrow([table], prepare=to_arrow)
    column = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(6)
    assert column.encodings == ("RLE", "DELTA_BINARY_PACKED") and column.statistics.min == table["ts"].min()


@pytest.mark.parametrize("rows", [1, 2, 7, 8, 9, 16, 17, 129, 4096])
def test_all_null_all_valid_and_one_valued_columns(rows: int) -> None:
    """Every column null, every column valid (one value each), and each null but in one row (the delta encoder
    with a single value, the bitmap's runs cut by one bit)."""
    everything = made_up(np.random.default_rng(rows), rows, 0.0)
    nothing = pl.DataFrame({name: pl.Series(name, [None] * rows, dtype=dtype) for name, dtype in SCHEMA.items()})
    one = pl.DataFrame({name: pl.Series(name, [everything[name][0] if i == rows // 2 else None for i in range(rows)], dtype=dtype)
                        for name, dtype in SCHEMA.items()})
    same_as_pyarrow([everything, nothing, one], prepare=to_arrow)


def test_nulls_in_runs_and_alone() -> None:
    """Validity bitmaps of long runs (RLE runs) between odd bytes (bit-packed runs), ending mid-byte."""
    n = 10_007
    pattern = np.zeros(n, dtype=bool)
    pattern[100:5000] = True
    pattern[5003] = True
    pattern[6000:6009] = True
    pattern[7000::3] = True
    table = made_up(np.random.default_rng(5), n, 0.0).with_columns(
        pl.when(pl.Series(pattern)).then(pl.all()).otherwise(None).name.keep())
    same_as_pyarrow([table], prepare=to_arrow)


def test_a_dictionary_of_many_entries_and_long_runs_of_one() -> None:
    """Indices of 9 bits and more, in runs (RLE runs) and alone (bit-packed)."""
    n = 20_000
    names = [f"veth{k:04x}" for k in range(1000)]
    picks = [names[(i // 50) % 1000] if i % 3 else names[(i * 7919) % 1000] for i in range(n)]
    table = made_up(np.random.default_rng(2), n, 0.1).with_columns(pl.Series("iface", picks, dtype=pl.Categorical()))
    same_as_pyarrow([table], prepare=to_arrow)


def test_a_schema_of_every_kind_of_column() -> None:
    """Signed integers of every width (negative values in the small ones' dictionaries), unsigned ones, booleans, text
    as string and large_string, dictionaries of either with 8-, 16- and 32-bit indices."""
    rng = np.random.default_rng(4)
    n = 3000
    words = pa.array(["", "a", "bb", "é" * 5, "x" * 300])
    columns: dict[str, pa.Array] = {}
    for kind in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()):
        info = np.iinfo(kind.to_pandas_dtype())
        few = rng.integers(info.min, info.max, 5, dtype=info.dtype, endpoint=True)
        many = rng.integers(info.min, info.max, n, dtype=info.dtype, endpoint=True)
        for label, values in (("few", few[rng.integers(0, 5, n)]), ("many", many)):
            columns[f"{kind}_{label}"] = pa.array(values, kind, mask=rng.random(n) < 0.3)
    columns["bool"] = pa.array(rng.integers(0, 2, n).astype(bool), mask=rng.random(n) < 0.3)
    picks = rng.integers(0, len(words), n)
    for text in (pa.string(), pa.large_string()):
        columns[str(text)] = pa.array([words[int(k)].as_py() for k in picks], text, mask=rng.random(n) < 0.3)
        for index in (pa.int8(), pa.int16(), pa.uint32()):
            columns[f"{text}_{index}"] = pa.DictionaryArray.from_arrays(
                pa.array(picks, index, mask=rng.random(n) < 0.3), words.cast(text))
    table = pa.table(columns)
    options = {"compression": "lz4", "use_dictionary": True, "write_statistics": [n for n in columns if n.startswith(("int", "uint"))]}
    assert parquet_parts.Native.make(table.schema, options, parquet_parts._empty(table.schema, options)) is not None
    backs = []
    for native in (True, False):
        out = io.BytesIO()
        parquet_parts.write([table.slice(0, 1000), table.slice(1000).combine_chunks()], out, table.schema, options, native=native)
        backs.append(pq.read_table(io.BytesIO(out.getvalue())))
    assert backs[0].schema.equals(backs[1].schema, check_metadata=True) and backs[0].equals(backs[1])
    assert backs[0].to_pylist() == table.to_pylist()


def test_no_batch_and_empty_batches(batches: list[pl.DataFrame]) -> None:
    assert written([], True) == written([], False)
    assert pl.read_parquet(io.BytesIO(written([], True))).equals(empty())
    same_as_pyarrow([batches[0].slice(0, 0), batches[1], empty()], prepare=to_arrow)


def test_small_buffers_grow(batches: list[pl.DataFrame]) -> None:
    same_as_pyarrow(batches[:3], part_buffer=1024, prepare=to_arrow)


def test_tables_the_c_encoder_does_not_take_go_to_pyarrow(batches: list[pl.DataFrame]) -> None:
    """A column in two chunks, a slice starting mid-byte: pyarrow's parts among the C encoder's, in one file."""
    first, second = to_arrow(batches[0]), to_arrow(batches[1])
    chunked = pa.concat_tables([first, second])
    sliced = pa.concat_tables([first, second]).combine_chunks().slice(3, 40)
    data = same_as_pyarrow([first, chunked, sliced, second])
    assert pq.read_table(io.BytesIO(data)).num_rows == 37 * 4 + 40


@pytest.mark.parametrize("options", [
    {**PARQUET_OPTIONS, "compression": "none"},
    {**PARQUET_OPTIONS, "compression": "snappy"},
    {**PARQUET_OPTIONS, "write_statistics": True},
    {**PARQUET_OPTIONS, "use_dictionary": False},
    {"compression": "lz4"},
    {**PARQUET_OPTIONS, "data_page_size": 1 << 16},
])
def test_other_writer_options(batches: list[pl.DataFrame], options: dict[str, Any]) -> None:
    """Options the C encoder covers (no compression) it follows; the others pyarrow writes, byte for byte."""
    tables = [to_arrow(b) for b in batches[:4]]
    covered = parquet_parts.Native.make(ARROW, options, parquet_parts._empty(ARROW, options)) is not None
    assert covered == (options.get("compression") == "none")
    data = same_as_pyarrow(tables, options)
    assert (data == written(tables, False, options)) != covered


def test_without_liblz4_pyarrow_writes(batches: list[pl.DataFrame], monkeypatch: pytest.MonkeyPatch, in_c: ModuleType) -> None:
    monkeypatch.setattr(in_c, "LZ4", 0)
    tables = [to_arrow(b) for b in batches[:2]]
    assert written(tables, True) == written(tables, False)


# ---- the C encoder's checks, called directly ----------------------------------------------------------------

def specs_of(table: pa.Table) -> list[tuple[Any, ...]]:
    native = parquet_parts.Native.make(ARROW, PARQUET_OPTIONS, parquet_parts._empty(ARROW, PARQUET_OPTIONS))
    assert native is not None
    specs = native.specs(table)
    assert specs is not None
    return specs


def encode(module: ModuleType, specs: list[tuple[Any, ...]], rows: int) -> tuple[int, int, bytes, bytes]:
    result: tuple[int, int, bytes, bytes] = module.encode(specs, rows, 7, pa.allocate_buffer(1 << 24), pa.allocate_buffer(1 << 22))
    return result


def column(specs: list[tuple[Any, ...]], name: str) -> int:
    return next(i for i, spec in enumerate(specs) if spec[-1] == name)


def replaced(specs: list[tuple[Any, ...]], name: str, at: int, value: Any) -> list[tuple[Any, ...]]:
    k = column(specs, name)
    spec = list(specs[k])
    spec[at] = value
    return [*specs[:k], tuple(spec), *specs[k + 1:]]


def test_buffers_that_do_not_hold_the_rows_are_refused(in_c: ModuleType, batches: list[pl.DataFrame]) -> None:
    table = to_arrow(batches[0].with_columns(pl.lit("x").alias("info"), pl.lit("eth0", pl.Categorical()).alias("iface")))
    specs, rows = specs_of(table), table.num_rows
    assert encode(in_c, specs, rows)[0] > 0
    short, nothing = pa.py_buffer(b"\x00" * 8), pa.py_buffer(b"")
    offsets_down = pa.py_buffer(np.array([0, 5, 3] + [3] * rows, dtype=np.int64).tobytes())
    offsets_out = pa.py_buffer(np.array([0] * rows + [10**6], dtype=np.int64).tobytes())
    indices_out = pa.py_buffer(np.full(rows, 7, dtype=np.uint32).tobytes())
    for bad in (replaced(specs, "ts", 5, short), replaced(specs, "src", 4, nothing), replaced(specs, "truncated", 5, nothing),
                replaced(specs, "info", 6, offsets_down), replaced(specs, "info", 6, offsets_out),
                replaced(specs, "info", 6, short), replaced(specs, "iface", 5, indices_out),
                replaced(specs, "iface", 6, offsets_down), replaced(specs, "iface", 8, 10**6),
                replaced(specs, "iface", 8, -1), replaced(specs, "ts", 1, 3), replaced(specs, "ts", 0, 9),
                replaced(specs, "iface", 2, 2)):
        with pytest.raises(ValueError):
            encode(in_c, bad, rows)
    for rows_given in (0, -1, 1 << 31):
        with pytest.raises(ValueError):
            encode(in_c, specs, rows_given)
    with pytest.raises(ValueError):
        in_c.encode(specs, rows, 3, pa.allocate_buffer(1 << 24), pa.allocate_buffer(1 << 22))  # no such codec
    with pytest.raises(TypeError):
        in_c.encode([(1, 2)], rows, 7, pa.allocate_buffer(1 << 24), pa.allocate_buffer(1 << 22))


def test_too_small_buffers_are_told_what_they_need(in_c: ModuleType, batches: list[pl.DataFrame]) -> None:
    table = to_arrow(batches[0])
    specs = specs_of(table)
    status, need, _, _ = in_c.encode(specs, table.num_rows, 7, pa.allocate_buffer(100), pa.allocate_buffer(1 << 22))
    assert status == -1 and need > 100
    status, need, _, _ = in_c.encode(specs, table.num_rows, 7, pa.allocate_buffer(need), pa.allocate_buffer(10))
    assert status == -2 and need > 10
    body, end, _, _ = in_c.encode(specs, table.num_rows, 7, pa.allocate_buffer(1 << 20), pa.allocate_buffer(need))
    assert 0 < body < end


def test_the_offsets_c_says_are_those_of_the_row_group(in_c: ModuleType, batches: list[pl.DataFrame]) -> None:
    """Where `encode` says the RowGroup's file offsets lie is where a walk of its thrift finds those not 0."""
    table = to_arrow(batches[0])
    out = pa.allocate_buffer(1 << 20)
    body, end, spans, _ = in_c.encode(specs_of(table), table.num_rows, 7, out, pa.allocate_buffer(1 << 22))
    group = bytes(memoryview(out)[body:end])
    walked: list[tuple[int, int, str]] = []
    parquet_parts._Thrift(group).spans(parquet_parts._ROW_GROUP, walked)
    told = parquet_parts.Part.of_row_group(memoryview(out)[:body], group, spans, table.num_rows).groups[0][2]
    assert told == [(start, stop, what) for start, stop, what in walked if parquet_parts._Thrift(group, start).zigzag()]
    pages = 78 + 11 + 1  # each column's data page, the 11 dictionary columns' dictionary page, the group's
    assert pages <= len(told) <= pages + 50  # and integer columns' dictionary pages


@pytest.mark.parametrize("distinct", [1, 5, 300, 2048, 2049])
def test_categorical_columns_from_their_codes_are_what_polars_makes(distinct: int) -> None:
    """A categorical column made from its codes (`_parquet.codes`) is polars' own Arrow array: its distinct values in
    order of first appearance, nulls alone, in runs and everywhere; beyond the C's 2048 values polars converts it."""
    rng = np.random.default_rng(distinct)
    rows = 5000
    names = [f"veth{k}" for k in rng.permutation(distinct)]
    values: list[str | None] = [names[k] for k in rng.integers(0, distinct, rows)]
    values[:distinct] = names  # every one of them
    for start, stop in ((100, 180), (700, 701), (4990, 5000)):
        values[start:stop] = [None] * (stop - start)
    frames = [pl.Series("iface", values, pl.Categorical()), pl.Series("iface", [None, "a", None] * 100, pl.Categorical()),
              pl.Series("iface", sorted(names * 3), pl.Categorical()).slice(1)]
    for series in frames:
        made = parquet_out._categorical(series, ARROW.field("iface").type)
        if distinct > 2048 and series.n_unique() > 2048:
            assert made is None
        else:
            assert made is not None and made.equals(series.to_arrow()), series.head(3)


def test_codes_are_checked_against_the_rows(in_c: ModuleType) -> None:
    codes = pa.py_buffer(np.arange(16, dtype=np.uint32).tobytes())
    out = pa.allocate_buffer(64)
    assert in_c.codes(codes, None, 16, out) == codes.to_pybytes()
    assert np.frombuffer(out, dtype=np.uint32).tolist() == list(range(16))
    for values, validity, rows, indices in ((codes, None, 17, out), (codes, None, 16, pa.allocate_buffer(60)),
                                            (codes, pa.py_buffer(b"\xff"), 16, out), (codes, None, -1, out)):
        with pytest.raises(ValueError):
            in_c.codes(values, validity, rows, indices)
    with pytest.raises(TypeError):
        in_c.codes(codes, None, 16, b"\x00" * 64)  # not writable


@pytest.mark.parametrize("top", [100, 1 << 32])
def test_codes_small_and_large_as_first_seen(in_c: ModuleType, top: int) -> None:
    """Codes below 4096 (looked up directly) and above (hashed) become indices in order of first appearance; rows
    under a null 0, whole words of nulls among them."""
    rng = np.random.default_rng(top % 97)
    rows = 1000
    values = np.concatenate([rng.integers(0, min(top, 4096), 50), rng.integers(0, top, 50)]).astype(np.uint32)
    codes = values[rng.integers(0, 100, rows)]
    valid = rng.random(rows) < 0.7
    valid[128:320] = False
    order: dict[int, int] = {}
    want = [order.setdefault(int(c), len(order)) if ok else 0 for c, ok in zip(codes, valid)]
    out = pa.allocate_buffer(4 * rows)
    distinct = in_c.codes(pa.py_buffer(codes.tobytes()), pa.py_buffer(np.packbits(valid, bitorder="little").tobytes()),
                          rows, out)
    assert np.frombuffer(out, dtype=np.uint32).tolist() == want
    assert np.frombuffer(distinct, dtype=np.uint32).tolist() == list(order)
