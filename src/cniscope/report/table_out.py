"""Write the packet table for people and tools: `cniscope read --format table|json|csv|parquet`.

- table: the useful columns for reading by eye, addresses as dotted text, MACs
  as colon text, TCP flags as tcpdump's letters, time as UTC HH:MM:SS.ffffff
  (rich when writing to a terminal, plain aligned text otherwise).
- json: JSON Lines, one object per row with every column of the schema (see
  cniscope.packets.schema), null where the column is null. IPv4 addresses
  (`src`, `dst`, `outer_*`, `quoted_*`, `arp_*pa`) and MACs are text, every
  other value as in the table.
- csv: the same columns and values as json, with a header line.
- parquet: the table exactly as the schema declares it (addresses as integers),
  written batch by batch (`stream_parquet`), so inputs larger than memory work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import IO, Any, TextIO

import numpy as np
import polars as pl
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from cniscope.errors import OutputError
from cniscope.packets import arrow
from cniscope.packets.arrow import Array
from cniscope.packets.chunks import Arrays
from cniscope.packets.schema import COLUMNS, DIRECTION_LABELS, Tunnel, empty, mac_text, tcp_flags_text
from cniscope.report import parquet_parts
from cniscope.terminal import CONTROL, printable

IP4_COLUMNS = ("outer_src", "outer_dst", "src", "dst", "quoted_src", "quoted_dst", "arp_spa", "arp_tpa")
MAC_COLUMNS = ("eth_src", "eth_dst", "inner_eth_src", "inner_eth_dst", "arp_sha")
# lz4 and dictionaries for text columns only: 2x faster to write than pyarrow's defaults, as small. frame and ts
# (ascending) as deltas: the file 16% smaller (91 -> 76 MB at 2M), less for lz4 to do; a batch's values a column
# handed to the encoder at once, not 1024 at a time: together 7% less CPU (2M pcap, in parts, load 5)
PARQUET_OPTIONS: dict[str, object] = {
    "compression": "lz4",
    "use_dictionary": [c.name for c in COLUMNS if c.dtype in (pl.Utf8, pl.Categorical)],
    "column_encoding": {"frame": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"},
    "write_batch_size": 1 << 16,
    "write_statistics": ["input", "frame", "ts"],
}
TABLE_ROWS_RICH = 5000  # above this a terminal gets the plain layout: rich measures every cell first


def ip4_expr(name: str) -> pl.Expr:
    col = pl.col(name).cast(pl.Int64)
    return pl.concat_str([(col // (1 << s) % 256).cast(pl.Utf8) for s in (24, 16, 8, 0)], separator=".").alias(name)


def _mapped(series: pl.Series, text: Callable[[int], str | None]) -> pl.Series:
    """Format a column through its distinct values (MACs, flags: few distinct, many rows)."""
    keys = series.drop_nulls().unique().to_list()
    return series.replace_strict(keys, [text(k) for k in keys], default=None, return_dtype=pl.Utf8)


def textual(table: pl.DataFrame) -> pl.DataFrame:
    """Every column, with IPv4 addresses and MACs as text, control characters escaped (json and csv)."""
    table = table.with_columns(*(ip4_expr(name) for name in IP4_COLUMNS), pl.col(pl.Categorical).cast(pl.Utf8))
    return _escaped(table.with_columns([_mapped(table[name], mac_text).alias(name) for name in MAC_COLUMNS]))


def _words(*pairs: tuple[str, str]) -> pl.Expr:
    """'seq 1 ack 2' from (label, column) pairs, leaving out the null ones."""
    return pl.concat_str([pl.concat_str([pl.lit(label), pl.col(name).cast(pl.Utf8)]) for label, name in pairs],
                         separator=" ", ignore_nulls=True)


def readable(table: pl.DataFrame) -> pl.DataFrame:
    """The columns of the `table` format, as text."""
    src = ip4_expr("src")
    dst = ip4_expr("dst")
    sport = pl.col("sport").cast(pl.Utf8)
    dport = pl.col("dport").cast(pl.Utf8)
    ts = pl.col("ts")
    seconds = (ts // 1_000_000_000) % 86400
    time = pl.concat_str([
        (seconds // 3600).cast(pl.Utf8).str.zfill(2), pl.lit(":"),
        (seconds // 60 % 60).cast(pl.Utf8).str.zfill(2), pl.lit(":"),
        (seconds % 60).cast(pl.Utf8).str.zfill(2), pl.lit("."),
        (ts % 1_000_000_000 // 1000).cast(pl.Utf8).str.zfill(6),
    ])
    proto = (
        pl.when(pl.col("arp_op").is_not_null()).then(pl.lit("ARP"))
        .when(pl.col("proto") == 6).then(pl.lit("TCP"))
        .when(pl.col("proto") == 17).then(pl.lit("UDP"))
        .when(pl.col("proto") == 1).then(pl.lit("ICMP"))
        .when(pl.col("proto") == 58).then(pl.lit("ICMP6"))
        .otherwise(pl.col("proto").cast(pl.Utf8))
    )
    host_src = pl.coalesce(src, pl.col("src6"), pl.col("src_name"), ip4_expr("arp_spa"))
    host_dst = pl.coalesce(dst, pl.col("dst6"), pl.col("dst_name"), ip4_expr("arp_tpa"))
    by_kind = (
        pl.when(pl.col("proto") == 6).then(_words(("seq ", "seq"), ("ack ", "ack"), ("win ", "win")))
        .when(pl.col("icmp_type").is_not_null()).then(_words(("type ", "icmp_type"), ("code ", "icmp_code"),
                                                             ("id ", "icmp_id"), ("seq ", "icmp_seq")))
        .when(pl.col("dns_id").is_not_null()).then(_words(("dns ", "dns_id"),))
    )
    detail = pl.coalesce(pl.concat_str([pl.lit("error: "), pl.col("error")]), pl.col("info"), by_kind)
    several = table["input"].n_unique() > 1  # the input column only when there is a choice
    out = table.select(
        (pl.col("input").cast(pl.Utf8) if several else pl.lit(None, dtype=pl.Utf8)).alias("input"),
        pl.col("frame").cast(pl.Utf8).alias("frame"),
        pl.col("node").cast(pl.Utf8),
        pl.col("iface").cast(pl.Utf8),
        pl.col("direction").replace_strict({int(k): v for k, v in DIRECTION_LABELS.items()}, default=None,
                                           return_dtype=pl.Utf8).alias("dir"),
        time.alias("time"),
        proto.alias("proto"),
        pl.concat_str([host_src, sport], separator=":", ignore_nulls=True).alias("source"),
        pl.concat_str([host_dst, dport], separator=":", ignore_nulls=True).alias("destination"),
        pl.col("tcp_flags").alias("flags"),
        detail.alias("detail"),
        pl.col("payload_len").cast(pl.Utf8).alias("len"),
        pl.col("tunnel").replace_strict({int(t): ("" if t is Tunnel.NONE else t.label) for t in Tunnel}, default=None,
                                        return_dtype=pl.Utf8).alias("tunnel"),
    )
    return out.with_columns(_mapped(out["flags"], tcp_flags_text).alias("flags")).fill_null("")


class _Output:
    """A file being written. An OS error (disk full, no permission) becomes an OutputError
    naming the file; a broken pipe stays one, for main() to end quietly."""

    def __init__(self, file: IO[Any], name: str) -> None:
        self.file = file
        self.name = name

    def _guarded(self, action: Callable[..., Any], *args: Any) -> Any:
        try:
            return action(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write {self.name}: {exc.strerror or exc}") from None

    def write(self, data: Any) -> Any:
        return self._guarded(self.file.write, data)

    def flush(self) -> None:
        self._guarded(self.file.flush)

    def close(self) -> None:
        self._guarded(self.file.close)

    def __getattr__(self, name: str) -> Any:  # tell, closed, isatty ... as the file has them
        return getattr(self.file, name)


@contextmanager
def _output(output: str | None, binary: bool = False) -> Iterator[Any]:
    """`output` opened for writing (None: standard output), guarded as _Output."""
    if output is None:
        yield _Output(sys.stdout.buffer if binary else sys.stdout, "standard output")
        return
    try:
        file = open(output, "wb") if binary else open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror}") from None
    guarded = _Output(file, output)
    try:
        yield guarded
    finally:
        guarded.close()


def write(table: pl.DataFrame, fmt: str, output: str | None) -> None:
    """Write the whole table in `fmt` (table, json, csv) to `output`, or standard output when None."""
    with _output(output) as target:
        _write_to(table, fmt, target, output is None and sys.stdout.isatty())


def _write_to(table: pl.DataFrame, fmt: str, stream: TextIO, terminal: bool) -> None:
    if fmt == "json":
        stream.write(textual(table).write_ndjson())
    elif fmt == "csv":
        stream.write(textual(table).write_csv())
    elif fmt == "table":
        rows = _escaped(readable(table))
        if terminal and rows.height <= TABLE_ROWS_RICH:
            _rich(rows, stream)
        else:
            stream.write(plain(rows))
    else:
        raise ValueError(f"unknown table format {fmt!r}")


def _escaped(rows: pl.DataFrame) -> pl.DataFrame:
    """Text columns with their control characters escaped (names from a capture may hold terminal escapes)."""
    dirty = [c for c, kind in rows.schema.items()
             if kind == pl.Utf8 and rows.height and rows[c].str.contains(CONTROL.pattern).any()]
    return rows.with_columns(pl.col(c).map_elements(printable, return_dtype=pl.Utf8) for c in dirty)


def _shown(rows: pl.DataFrame) -> list[str]:
    """The columns with something in them (all of them when there are no rows)."""
    return [c for c in rows.columns if rows.height == 0 or rows[c].str.len_chars().max()]


def plain(rows: pl.DataFrame) -> str:
    """Aligned columns, two spaces apart, empty columns left out."""
    columns = _shown(rows)
    widths: dict[str, int] = {c: max(len(c), rows.select(pl.col(c).str.len_chars().max()).item() or 0) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    padded = rows.select([pl.col(c).str.pad_end(widths[c]) for c in columns])
    lines.extend(padded.select(pl.concat_str(columns, separator="  ").str.strip_chars_end()).to_series().to_list())
    return "\n".join(lines) + "\n"


def _rich(rows: pl.DataFrame, stream: TextIO) -> None:
    """A rich table, never narrower than its widest row: a cut address is worse than a wrapped line."""
    columns = _shown(rows)
    view = Table(box=None, pad_edge=False, header_style="bold")
    for name in columns:
        view.add_column(name, no_wrap=True, justify="right" if name in ("frame", "len") else "left")
    for row in rows.select(columns).iter_rows():
        view.add_row(*row)
    console = Console(file=stream)
    console.width = max(console.width, *map(len, plain(rows).splitlines()))
    console.print(view)


def stream(tables: Iterable[pl.DataFrame], fmt: str, output: str | None) -> None:
    """Write the batches of the packet table as they come into `fmt` (json or csv) at `output` (None: standard output)."""
    with _output(output) as target:
        _stream_text(tables, fmt, target)


def _stream_text(tables: Iterable[pl.DataFrame], fmt: str, target: TextIO) -> None:
    header = True
    for table in tables:
        if fmt == "json":
            target.write(textual(table).write_ndjson())
        elif fmt == "csv":
            target.write(textual(table).write_csv(include_header=header))
            header = False
        else:
            raise ValueError(f"cannot stream format {fmt!r}")
    if fmt == "csv" and header:
        target.write(textual(empty()).write_csv())


def stream_parquet(tables: Iterable[pl.DataFrame | pa.Table], output: str) -> None:
    """Write the batches of the packet table as they come into one parquet file, a row group each: Arrow tables
    (`arrow_table`) as they are, polars ones (text inputs) converted (`to_arrow`).

    Two batches encode at once (`parquet_parts`: pyarrow's writer is one thread), while the next ones are read and
    decoded; at most three batches are held here.
    """
    with _output(output, binary=True) as target:
        parquet_parts.write(tables, target, _arrow_schema(), PARQUET_OPTIONS, prepare=_prepared)


def _prepared(table: pl.DataFrame | pa.Table) -> pa.Table:
    return table if isinstance(table, pa.Table) else to_arrow(table)


@lru_cache(maxsize=1)
def _arrow_schema() -> pa.Schema:
    return empty().to_arrow().schema


def arrow_table(decoded: list[Arrays], input_index: int) -> pa.Table:
    """A binary batch's table from its chunks' tagged arrays (`ingest.batches_as`), without polars: what `to_arrow`
    makes of the polars table `decode.table` makes of them (the same schema, a categorical column's dictionary in
    order of first appearance), the buffers taken over without a copy. Polars' table and its conversion back were 11%
    of `read --format parquet`'s CPU at 10M pcapng."""
    schema = _arrow_schema()
    batches = []
    for arrays in decoded:
        rows = arrays["caplen"].length if "caplen" in arrays else next(iter(arrays.values())).length
        batches.append(pa.RecordBatch.from_arrays(
            [_input(rows, input_index) if field.name == "input" else _arrow(arrays.get(field.name), field.type, rows)
             for field in schema], schema=schema))
    return pa.Table.from_batches(batches, schema)


def _arrow(array: Array | None, kind: pa.DataType, rows: int) -> pa.Array:
    """One column as pyarrow's array of type `kind`: null where no row has it."""
    if array is None or array.null_count == rows:
        return _nulls(rows, kind)
    if array.dictionary is not None:
        return _dictionary(array, kind, rows)
    bitmap = None if array.buffers[0] is None else pa.py_buffer(array.buffers[0])
    if array.fmt == b"u":  # Arrow's large strings: offsets of 64 bits
        _, offsets, data = array.buffers
        assert offsets is not None and data is not None
        return pa.Array.from_buffers(kind, rows, [bitmap, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data)],
                                     array.null_count)
    values = array.buffers[1]
    assert values is not None
    return pa.Array.from_buffers(kind, rows, [bitmap, pa.py_buffer(values)], array.null_count)


@lru_cache(maxsize=4)
def _input(rows: int, index: int) -> pa.Array:
    """The input's index in every row, made once for every batch of its size and input."""
    return pa.array(np.full(rows, index, dtype=np.uint16))


def _dictionary(array: Array, kind: pa.DataType, rows: int) -> pa.Array:
    """A text column as polars gives it to Arrow: its distinct texts in order of first appearance, a null text (an
    interface without a name) a null row, a text named twice (two sections' eth0) one value."""
    assert array.dictionary is not None
    (bitmap, codes), nulls, texts = array.buffers, array.null_count, arrow.texts(array.dictionary)
    assert codes is not None
    unique = dict.fromkeys(t for t in texts if t is not None)
    if len(unique) < len(texts):  # codes into the distinct texts, -1 for a null one
        place = {text: k for k, text in enumerate(unique)}
        remap = np.array([-1 if t is None else place[t] for t in texts], dtype=np.int32)
        codes = remap.take(np.maximum(codes, 0))
        valid = codes >= 0 if bitmap is None else _bits(bitmap, rows) & (codes >= 0)
        bitmap, nulls = arrow.validity(valid)
        if nulls == rows:
            return _nulls(rows, kind)
        texts = list(unique)
    indices, first = _first_seen(codes, bitmap, len(texts))
    return pa.DictionaryArray.from_buffers(kind, rows, [None if bitmap is None else pa.py_buffer(bitmap), indices],
                                           pa.array([texts[k] for k in first], kind.value_type), nulls)


def _bits(bitmap: np.ndarray, rows: int) -> np.ndarray:
    """A validity bitmap's rows as booleans."""
    return np.unpackbits(bitmap.view(np.uint8), count=rows, bitorder="little").view(np.bool_)


def _first_seen(codes: np.ndarray, bitmap: np.ndarray | None, distinct: int) -> tuple[pa.Buffer, list[int]]:
    """Each row's index into the distinct codes in order of first appearance (0 under a null), and those codes: in C
    (`_parquet.codes`) where it is built and they are few enough, else here."""
    compiled = parquet_parts._parquet
    rows = codes.shape[0]
    indices = pa.allocate_buffer(4 * rows)
    if compiled is not None:
        first = compiled.codes(codes, bitmap, rows, indices)
        if first is not None:
            return indices, np.frombuffer(first, dtype=np.uint32).tolist()
    valid = slice(None) if bitmap is None else _bits(bitmap, rows)
    present = codes[valid]
    seen, at = np.unique(present, return_index=True)
    order = seen[np.argsort(at)]
    rank = np.zeros(distinct, dtype=np.uint32)
    rank[order] = np.arange(order.shape[0], dtype=np.uint32)
    out = np.frombuffer(indices, dtype=np.uint32)
    out[:] = 0
    out[valid] = rank[present]
    return indices, order.tolist()


def to_arrow(table: pl.DataFrame) -> pa.Table:
    """`table.to_arrow()`, its text columns made here: an all-null one as such, a categorical one from its codes
    (`_categorical`). polars converts a categorical column a row at a time, its nulls included (src6, dst6 and iface
    2.4 ms a batch of 131072 rows, the other 67 columns 0.3 ms; 4-12 ms a batch of 65536 with every categorical)."""
    rows = table.height
    schema = _arrow_schema()
    made: dict[str, pa.Array] = {}
    for name, kind in table.schema.items():
        if kind in (pl.Categorical, pl.Utf8) and table[name].null_count() == rows:
            made[name] = _nulls(rows, schema.field(name).type)
        elif kind == pl.Categorical and (array := _categorical(table[name], schema.field(name).type)) is not None:
            made[name] = array
    if not made:
        return table.to_arrow()
    rest = table.drop(made).to_arrow()
    return pa.Table.from_arrays([made[field.name] if field.name in made else rest.column(field.name) for field in schema],
                                schema=schema)


def _categorical(column: pl.Series, kind: pa.DataType) -> pa.Array | None:
    """A categorical column as Arrow's dictionary array, as polars makes it (its distinct values in order of first
    appearance), from its codes: indices into its distinct codes in C (`_parquet.codes`), the texts of those codes
    from polars. None where the C encoder is not built, or there are too many values (`_parquet.codes`)."""
    compiled = parquet_parts._parquet
    codes = column.to_physical().to_arrow()
    if compiled is None or not isinstance(codes, pa.Array) or not pa.types.is_dictionary(kind):
        return None
    if codes.offset:  # a slice: its bitmap from bit 0
        codes = pa.concat_arrays([codes])
    rows = len(column)
    validity, values = codes.buffers()
    indices = pa.allocate_buffer(4 * rows)
    distinct = compiled.codes(values, validity, rows, indices)
    if distinct is None:
        return None
    texts = pl.Series(np.frombuffer(distinct, dtype=np.uint32)).cat.to(column.dtype).to_arrow().dictionary  # in order
    return pa.DictionaryArray.from_buffers(kind, rows, [validity, indices], texts.cast(kind.value_type), codes.null_count)


@lru_cache(maxsize=64)
def _nulls(rows: int, kind: pa.DataType) -> pa.Array:
    """An all-null column, made once for every batch of its size (Arrow arrays do not change): each was `rows` zeroed
    indices or offsets, new memory, ten of them a batch (2.6 MB at 65536 rows)."""
    return pa.nulls(rows, kind)
