"""parquet_parts: batches encoded apart and joined make the file one pyarrow writer makes, byte for byte, where pyarrow
encodes the parts (`native=False`, or the C encoder not built); tests/report/test_parquet_c.py has the C encoder's."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cniscope import ingest
from cniscope.packets.schema import empty
from cniscope.report import parquet_parts
from cniscope.report.parquet_out import PARQUET_OPTIONS, to_arrow
from cniscope.sources import InputSpec
from cniscope.wire import pcap as pcap_file
from tests.frames import ethernet, icmp, ipv4, tcp, udp, vxlan

SCHEMA = empty().to_arrow().schema


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> list[pl.DataFrame]:
    """A capture of 700 packets of four kinds read 37 at a time: 19 batches (more than 15: thrift's long list
    header), the last short; node named, so one categorical column holds values."""
    frames = [
        ethernet(ipv4(tcp(seq=7, ack=9, flags="S."), src="10.244.1.2", dst="10.244.2.3")),
        ethernet(ipv4(icmp(type_=8, ident=3, seq=4), src="10.0.0.1", dst="10.0.0.2", proto=1)),
        ethernet(ipv4(udp(vxlan(ethernet(ipv4(tcp(seq=11, flags="P."), src="10.244.1.2", dst="10.244.2.3"))),
                      sport=50000, dport=8472), src="192.168.0.11", dst="192.168.0.12", proto=17)),
        b"\x02" * 9,  # cut short: the error column holds a value
    ]
    n = 700
    path = tmp_path_factory.mktemp("parts") / "mixed.pcap"
    path.write_bytes(pcap_file.encode([frames[i % 4] for i in range(n)], [1_700_000_000_000_000_000 + i for i in range(n)],
                                      1, nanos=True))
    found = list(ingest.batches([InputSpec(str(path), node="node1")], [], batch_size=37))
    assert len(found) == 19 and found[-1].height == n - 18 * 37
    return found


def one_writer(tables: list[pa.Table]) -> bytes:
    out = io.BytesIO()
    with pq.ParquetWriter(out, SCHEMA, **PARQUET_OPTIONS) as writer:
        for table in tables:
            writer.write_table(table)
    return out.getvalue()


def joined(tables: list[Any], **options: Any) -> bytes:
    out = io.BytesIO()
    parquet_parts.write(tables, out, SCHEMA, PARQUET_OPTIONS, native=False, **options)
    return out.getvalue()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_joined_parts_are_the_bytes_one_writer_writes(batches: list[pl.DataFrame], workers: int) -> None:
    tables = [b.to_arrow() for b in batches]
    data = joined(tables, workers=workers)
    assert data == one_writer(tables)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [b.height for b in batches]
    assert pl.read_parquet(io.BytesIO(data)).equals(pl.concat(batches))


def test_a_part_larger_than_its_buffer(batches: list[pl.DataFrame]) -> None:
    tables = [b.to_arrow() for b in batches]
    assert joined(tables, part_buffer=4096) == one_writer(tables)


def test_empty_batches_and_no_batch(batches: list[pl.DataFrame]) -> None:
    tables = [batches[0].to_arrow().slice(0, 0), batches[1].to_arrow(), batches[2].to_arrow().slice(0, 0)]
    assert joined(tables) == one_writer(tables)
    assert joined([]) == one_writer([])
    assert pl.read_parquet(io.BytesIO(joined([]))).equals(empty())


def test_offsets_beyond_one_byte_of_varint(batches: list[pl.DataFrame]) -> None:
    """Parts of a megabyte each: the shifted offsets take more bytes than the parts' own."""
    rows = sum(b.height for b in batches)
    noise = pl.Series("info", [os.urandom(750).hex() for _ in range(rows)])  # 1 MB a part that lz4 cannot shrink
    big = pl.concat(batches).with_columns(noise)
    tables = [big.to_arrow()] * 4
    data = joined(tables)
    assert len(data) > 4 << 20 and data == one_writer(tables)


def test_prepare_runs_on_each_item_and_few_are_held(batches: list[pl.DataFrame]) -> None:
    """`prepare` makes each item a table; at most workers + 1 items are alive at once (plus the one being made)."""
    alive: list[int] = []
    peak = [0]

    class Item:
        def __init__(self, table: pl.DataFrame) -> None:
            self.table = table
            alive.append(1)
            peak[0] = max(peak[0], len(alive))

        def __del__(self) -> None:
            alive.pop()

    def items() -> Any:
        for table in batches:
            yield Item(table)

    data = joined(items(), workers=2, prepare=lambda item: to_arrow(item.table))
    assert data == one_writer([b.to_arrow() for b in batches])
    assert 2 <= peak[0] <= 2 + 1 + 1 and not alive


@pytest.mark.parametrize("read", [0, 3])
def test_reading_stopped_leaves_a_file_with_what_was_read(batches: list[pl.DataFrame], read: int) -> None:
    """Ctrl-C (or an error) while batches are read: the file still ends with its footer, as a writer closed early
    leaves it, and holds every batch read before."""
    def interrupted() -> Any:
        yield from (b.to_arrow() for b in batches[:read])
        raise KeyboardInterrupt

    out = io.BytesIO()
    with pytest.raises(KeyboardInterrupt):
        parquet_parts.write(interrupted(), out, SCHEMA, PARQUET_OPTIONS, native=False)
    assert out.getvalue() == one_writer([b.to_arrow() for b in batches[:read]])
    assert pl.read_parquet(io.BytesIO(out.getvalue())).height == sum(b.height for b in batches[:read])


def test_to_arrow_is_polars_to_arrow(batches: list[pl.DataFrame]) -> None:
    for table in (batches[0], batches[-1], batches[0].slice(0, 0)):
        assert to_arrow(table).equals(table.to_arrow())
    assert to_arrow(batches[0]).schema.equals(SCHEMA)


def test_stream_parquet_file_without_the_c_encoder(batches: list[pl.DataFrame], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Where `_parquet` was not built, `read --format parquet` writes what one pyarrow writer does."""
    from cniscope.report.parquet_out import stream_parquet

    monkeypatch.setattr(parquet_parts, "_parquet", None)
    target = tmp_path / "out.parquet"
    stream_parquet(iter(batches), str(target))
    assert target.read_bytes() == one_writer([b.to_arrow() for b in batches])


def test_a_row_group_ordinal_is_renumbered(batches: list[pl.DataFrame]) -> None:
    """pyarrow 26 writes no RowGroup.ordinal (field 7); a writer that does numbered each part's group 0."""
    out = pa.BufferOutputStream()
    pq.write_table(batches[0].to_arrow(), out, **PARQUET_OPTIONS)
    part = parquet_parts.Part.of_file(memoryview(out.getvalue()))
    start, end, _ = part.groups[0]
    assert part.footer[end - 1] == 0  # the row group's stop byte; its last field is 6 (total_compressed_size)
    footer = part.footer[:end - 1] + b"\x14\x00" + part.footer[end - 1:]  # field 6 + 1, i16, ordinal 0
    data = b"PAR1" + bytes(part.body) + footer + len(footer).to_bytes(4, "little") + b"PAR1"
    group = next(iter(parquet_parts.Part.of_file(memoryview(data)).row_groups(shift=1000, ordinal=5)))
    assert group.endswith(b"\x14\x0a\x00")  # ordinal 5 (zigzag 10)
    assert group != part.footer[start:end] and len(group) > end - start  # and its offsets moved
