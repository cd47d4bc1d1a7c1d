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
  written batch by batch (`parquet_out`, which imports no polars), so inputs larger than memory work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TextIO

import polars as pl
from rich.console import Console
from rich.table import Table

from cniscope.outputs import opened
from cniscope.packets.schema import DIRECTION_LABELS, Tunnel, empty, mac_text, tcp_flags_text
from cniscope.terminal import CONTROL, printable

IP4_COLUMNS = ("outer_src", "outer_dst", "src", "dst", "quoted_src", "quoted_dst", "arp_spa", "arp_tpa")
MAC_COLUMNS = ("eth_src", "eth_dst", "inner_eth_src", "inner_eth_dst", "arp_sha")
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


def write(table: pl.DataFrame, fmt: str, output: str | None) -> None:
    """Write the whole table in `fmt` (table, json, csv) to `output`, or standard output when None."""
    with opened(output) as target:
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
    with opened(output) as target:
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
