"""One parquet file written by several threads: each batch encoded on its own as a *part* (a complete parquet file
of one row group), the parts joined in order into one file.

Why: pyarrow's `ParquetWriter` encodes on one thread (Arrow C++'s `use_threads` is not exposed), and at 10M
packets that thread was `read --format parquet`'s critical path (5.8 s CPU of its 10.6) while the decoders
waited. Encoded apart, two batches encode at once.

How the parts join: a row group's bytes do not depend on where they sit in the file (page headers hold no file
offsets), only the footer does. So the file is "PAR1", each part's row-group bytes one after the other, and the
footer of the first part with the row groups of every part, each with its byte offsets shifted by where its part
landed and its ordinal renumbered: the same bytes one `ParquetWriter` writes (tests/report/test_parquet_parts.py
compares them). The footer is thrift's compact protocol; `_Thrift` walks it and nothing else of thrift is needed.
"""

from __future__ import annotations

import queue
import struct
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

MAGIC = b"PAR1"
PART_BUFFER = 32 << 20  # bytes reserved for a part (a batch of 65536 packets encodes to ~3 MB); a larger one grows its own
WORKERS = 2
# Written to the file 64 KiB at a time, not a part (~3 MB) at once: the kernel sizes the page-cache folios of a write
# by its length, and on this VM (Linux 6.18, ext4) folios above 128 KiB came from memory the host had taken back, first
# touched at 4 ns a byte: 1.5-1.8 s of system time for the 451 MB of the 10M pcap in 3 MB writes, 0.04-0.08 s in
# 64-128 KiB writes (measured in `read`, load 5).
WRITE = 1 << 16

# thrift compact types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
_SHIFT, _ORDINAL = "shift", "ordinal"
# the fields of a RowGroup (parquet.thrift) that say where in the file: byte offsets, and the row group's ordinal
_COLUMN_META = {9: _SHIFT, 10: _SHIFT, 11: _SHIFT, 14: _SHIFT}  # data, index, dictionary page; bloom filter
_COLUMN_CHUNK = {2: _SHIFT, 3: _COLUMN_META, 4: _SHIFT, 6: _SHIFT}  # file_offset, meta_data, offset and column index
_ROW_GROUP: dict[int, Any] = {1: _COLUMN_CHUNK, 5: _SHIFT, 7: _ORDINAL}  # columns, file_offset, ordinal
_NUM_ROWS, _ROW_GROUPS = 3, 4  # of FileMetaData


class _Thrift:
    """A cursor over thrift compact protocol bytes."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def varint(self) -> int:
        shift = value = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def list_header(self) -> tuple[int, int]:
        """(size, element type)"""
        byte = self.data[self.pos]
        self.pos += 1
        size = byte >> 4
        return (self.varint() if size == 15 else size), byte & 0x0F

    def fields(self) -> Iterable[tuple[int, int]]:
        """(field id, type) of each field of the struct at the cursor, the cursor on its value; past the stop byte after."""
        last = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            if byte == 0:
                return
            delta, kind = byte >> 4, byte & 0x0F
            last = last + delta if delta else self.zigzag()
            yield last, kind

    def skip(self, kind: int) -> None:
        if kind in (_TRUE, _FALSE):  # a field's value is in its type; a list element is a byte
            return
        if kind == _BYTE:
            self.pos += 1
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self.pos += 8
        elif kind == _BINARY:
            size = self.varint()
            self.pos += size
        elif kind in (_LIST, _SET):
            size, element = self.list_header()
            if element in (_TRUE, _FALSE):
                self.pos += size
            else:
                for _ in range(size):
                    self.skip(element)
        elif kind == _MAP:
            size = self.varint()
            if size:
                types = self.data[self.pos]
                self.pos += 1
                for _ in range(size):
                    self.skip(types >> 4)
                    self.skip(types & 0x0F)
        elif kind == _STRUCT:
            for _, field in self.fields():
                self.skip(field)
        else:
            raise ValueError(f"parquet footer: unknown thrift type {kind} at byte {self.pos}")

    def spans(self, spec: dict[int, Any], out: list[tuple[int, int, str]]) -> None:
        """The struct at the cursor, walked: the (start, end, what) of each integer field that `spec` names."""
        for field, kind in self.fields():
            what = spec.get(field)
            if isinstance(what, str) and kind in (_I16, _I32, _I64):
                start = self.pos
                self.varint()
                out.append((start, self.pos, what))
            elif isinstance(what, dict) and kind == _STRUCT:
                self.spans(what, out)
            elif isinstance(what, dict) and kind == _LIST:
                size, element = self.list_header()
                for _ in range(size):
                    if element == _STRUCT:
                        self.spans(what, out)
                    else:
                        self.skip(element)
            else:
                self.skip(kind)


def _varint(n: int) -> bytes:
    """An unsigned integer as thrift's compact protocol writes it: 7 bits a byte, low first."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag_varint(value: int) -> bytes:
    return _varint((value << 1) ^ (value >> 63))


class Part:
    """One encoded part: its row-group bytes (`body`, what follows "PAR1" up to the footer) and its footer, walked."""

    def __init__(self, data: memoryview) -> None:
        size = struct.unpack_from("<i", data, len(data) - 8)[0]
        if bytes(data[:4]) != MAGIC or bytes(data[-4:]) != MAGIC:
            raise ValueError("parquet part: no PAR1 magic")
        end = len(data) - 8 - size
        self.body = data[4:end]
        self.footer = bytes(data[end:end + size])
        cursor = _Thrift(self.footer)
        self.num_rows: tuple[int, int, int] = (0, 0, 0)  # (start, end, value) of FileMetaData.num_rows
        self.groups: list[tuple[int, int, list[tuple[int, int, str]]]] = []  # (start, end, spans) of each RowGroup
        self.groups_span = (0, 0)  # FileMetaData.row_groups: from its list header to its end
        for field, kind in cursor.fields():
            if field == _NUM_ROWS and kind == _I64:
                start = cursor.pos
                rows = cursor.zigzag()
                self.num_rows = (start, cursor.pos, rows)
            elif field == _ROW_GROUPS and kind == _LIST:
                begin = cursor.pos
                size, _ = cursor.list_header()
                for _ in range(size):
                    first, spans = cursor.pos, list[tuple[int, int, str]]()
                    cursor.spans(_ROW_GROUP, spans)
                    self.groups.append((first, cursor.pos, spans))
                self.groups_span = (begin, cursor.pos)
            else:
                cursor.skip(kind)

    def row_groups(self, shift: int, ordinal: int) -> Iterable[bytes]:
        """Each row group's thrift bytes, its offsets moved `shift` bytes on, numbered from `ordinal`."""
        footer = self.footer
        for index, (start, end, spans) in enumerate(self.groups):
            pieces, at = list[bytes](), start
            for begin, stop, what in spans:
                value = _Thrift(footer, begin).zigzag()
                if what == _ORDINAL:
                    value = ordinal + index
                elif value > 0:  # 0: an offset the writer left unset
                    value += shift
                pieces += (footer[at:begin], _zigzag_varint(value))
                at = stop
            pieces.append(footer[at:end])
            yield b"".join(pieces)


def _list_header(size: int, element: int) -> bytes:
    if size < 15:
        return bytes([size << 4 | element])
    return bytes([0xF0 | element]) + _varint(size)


class Joiner:
    """Parts appended in order to `target` (a binary file, positioned at its start); `close` writes the footer."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.position = len(MAGIC)
        self.rows = 0
        self.groups: list[bytes] = []
        self.first: Part | None = None
        target.write(MAGIC)

    def append(self, part: Part) -> None:
        """Write the part's row groups (in pieces of `WRITE` bytes), keep its footer's."""
        self.first = self.first or part
        self.groups.extend(part.row_groups(self.position - len(MAGIC), len(self.groups)))
        self.rows += part.num_rows[2]
        self._write(part.body)
        self.position += len(part.body)
        part.body = memoryview(b"")  # its buffer goes on to the next part

    def close(self, schema: pa.Schema, options: dict[str, Any]) -> None:
        """The footer: the first part's, with every part's row groups and the sum of their rows; with no part, the
        file one writer writes with no row group (the same `schema` and `options` as the parts)."""
        if self.first is None:
            empty = pa.BufferOutputStream()
            with pq.ParquetWriter(empty, schema, **options):
                pass
            self._write(memoryview(empty.getvalue())[len(MAGIC):])  # its "PAR1" is written already
            return
        footer = self.first.footer
        start, end, _ = self.first.num_rows
        begin, stop = self.first.groups_span
        data = b"".join([footer[:start], _zigzag_varint(self.rows), footer[end:begin],
                         _list_header(len(self.groups), _STRUCT), *self.groups, footer[stop:]])
        self._write(memoryview(data + struct.pack("<i", len(data)) + MAGIC))

    def _write(self, data: memoryview) -> None:
        for at in range(0, len(data), WRITE):
            self.target.write(data[at:at + WRITE])


def write(tables: Iterable[Any], target: IO[bytes], schema: pa.Schema, options: dict[str, Any],
          workers: int = WORKERS, part_buffer: int = PART_BUFFER, prepare: Callable[[Any], pa.Table] | None = None) -> None:
    """`tables` as one parquet file at `target`, each a row group, `workers` of them encoding at once.

    `prepare` (on the worker's thread) makes each item of `tables` an arrow table; at most `workers` + 1 items
    are held at a time.
    """
    free: queue.SimpleQueue[pa.Buffer] = queue.SimpleQueue()
    for _ in range(workers + 1):
        free.put(pa.allocate_buffer(part_buffer))

    def encode(item: Any, buffer: pa.Buffer) -> tuple[Part, pa.Buffer]:
        table = prepare(item) if prepare is not None else item
        sink: pa.NativeFile = pa.FixedSizeBufferWriter(buffer)
        try:
            with pq.ParquetWriter(sink, schema, **options) as writer:
                writer.write_table(table)
            return Part(memoryview(buffer)[:sink.tell()]), buffer
        except OSError:  # larger than the buffer: in a buffer of its own
            grown = pa.BufferOutputStream()
            with pq.ParquetWriter(grown, schema, **options) as writer:
                writer.write_table(table)
            return Part(memoryview(grown.getvalue())), buffer

    joiner = Joiner(target)
    pending: deque[Future[tuple[Part, pa.Buffer]]] = deque()

    def join_next() -> None:
        part, buffer = pending.popleft().result()
        joiner.append(part)
        free.put(buffer)

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="parquet") as pool:
            try:
                for item in tables:
                    pending.append(pool.submit(encode, item, free.get()))
                    if len(pending) > workers:
                        join_next()
            finally:  # reading stopped (Ctrl-C, an error): what was read is still written
                while pending:
                    join_next()
    finally:  # the footer, so the file opens with every row group it holds, as a writer closed early leaves it
        joiner.close(schema, options)
