"""One parquet file written by several threads: each batch encoded on its own as a *part* (one row group), the
parts joined in order into one file.

Why: pyarrow's `ParquetWriter` encodes on one thread (Arrow C++'s `use_threads` is not exposed), and at 10M
packets that thread was `read --format parquet`'s critical path (5.8 s CPU of its 10.6) while the decoders
waited. Encoded apart, two batches encode at once.

Who encodes: `_parquet.c` (`Native`), straight from the Arrow buffers, with the GIL released: each column one data
page (PLAIN, DELTA_BINARY_PACKED where the options ask, a dictionary column's indices; integers through a
dictionary of their values where they have few), the definition levels the validity bitmap's bytes as they are,
LZ4_RAW by liblz4 where it paid in the column's last row groups (`Native.plan`); 15 ms of CPU a batch of 65536 packets where pyarrow's writer takes 42-56 (10M pcap). The file reads back to the same Arrow table as pyarrow's (tests/report/test_parquet_c.py),
with the same min/max statistics; its bytes differ. pyarrow's writer encodes the part, as a file of its own, where
the C encoder is not built, liblz4 is not found, a type or writer option is not one it covers, or a table is not
in one chunk a column.

How the parts join: a row group's bytes do not depend on where they sit in the file (page headers hold no file
offsets), only the footer does. So the file is "PAR1", each part's row-group bytes one after the other, and the
footer pyarrow writes for the same schema and options with no row group, given the row groups of every part, each
with its byte offsets shifted by where its part landed and its ordinal renumbered. Where pyarrow encodes every part,
these are the bytes one `ParquetWriter` writes (tests/report/test_parquet_parts.py compares them). The footer is
thrift's compact protocol; `_Thrift` walks it and nothing else of thrift is needed.
"""

from __future__ import annotations

import importlib
import io
import queue
import struct
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq


def _compiled() -> ModuleType | None:
    try:
        return importlib.import_module("cniscope.report._parquet")
    except ImportError:
        return None


_parquet = _compiled()  # the C encoder; None where it was not built (pyarrow encodes every part)

MAGIC = b"PAR1"
PART_BUFFER = 32 << 20  # bytes reserved for a part (a batch of 65536 packets encodes to ~3 MB); a larger one grows its own
SCRATCH = 4 << 20  # bytes of the C encoder's scratch (a batch of 65536 packets needs ~2.2 MB); a larger one grows its own
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
    """Encoded row groups: their bytes (`body`, what follows "PAR1" in a file of their own, up to its footer) and
    their RowGroup structs' thrift bytes (in `footer`, `groups`: (start, end, spans) of each)."""

    def __init__(self, body: memoryview, footer: bytes, groups: list[tuple[int, int, list[tuple[int, int, str]]]], rows: int) -> None:
        self.body = body
        self.footer = footer
        self.groups = groups
        self.num_rows: tuple[int, int, int] = (0, 0, rows)  # (start, end, value) of FileMetaData.num_rows in a file's footer
        self.groups_span = (0, 0)  # FileMetaData.row_groups in a file's footer: from its list header to its end
        self.sizes = b""  # encoded in C: what `Native.learn` learns from

    @classmethod
    def of_file(cls, data: memoryview) -> Part:
        """A whole parquet file's row groups, its footer walked."""
        size = struct.unpack_from("<i", data, len(data) - 8)[0]
        if bytes(data[:4]) != MAGIC or bytes(data[-4:]) != MAGIC:
            raise ValueError("parquet part: no PAR1 magic")
        end = len(data) - 8 - size
        part = cls(data[4:end], bytes(data[end:end + size]), [], 0)
        cursor = _Thrift(part.footer)
        for field, kind in cursor.fields():
            if field == _NUM_ROWS and kind == _I64:
                start = cursor.pos
                rows = cursor.zigzag()
                part.num_rows = (start, cursor.pos, rows)
            elif field == _ROW_GROUPS and kind == _LIST:
                begin = cursor.pos
                count, _ = cursor.list_header()
                for _ in range(count):
                    first, spans = cursor.pos, list[tuple[int, int, str]]()
                    cursor.spans(_ROW_GROUP, spans)
                    part.groups.append((first, cursor.pos, spans))
                part.groups_span = (begin, cursor.pos)
            else:
                cursor.skip(kind)
        return part

    @classmethod
    def of_row_group(cls, body: memoryview, group: bytes, spans: bytes, rows: int) -> Part:
        """One row group encoded in C: its bytes, its RowGroup struct's (offsets as if `body` followed "PAR1") and
        where in them its offsets lie (int64 start, end pairs)."""
        return cls(body, group, [(0, len(group), [(start, end, _SHIFT) for start, end in struct.iter_unpack("<qq", spans)])], rows)

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
    """Parts appended in order to `target` (a binary file, positioned at its start); `close` writes the footer:
    `empty`'s (the file one writer writes with no row group, same schema and options) with every part's row groups."""

    def __init__(self, target: IO[bytes], empty: Part) -> None:
        self.target = target
        self.empty = empty
        self.position = len(MAGIC)
        self.rows = 0
        self.groups: list[bytes] = []
        target.write(MAGIC)

    def append(self, part: Part) -> None:
        """Write the part's row groups (in pieces of `WRITE` bytes), keep their thrift."""
        self.groups.extend(part.row_groups(self.position - len(MAGIC), len(self.groups)))
        self.rows += part.num_rows[2]
        self._write(part.body)
        self.position += len(part.body)
        part.body = memoryview(b"")  # its buffer goes on to the next part

    def close(self) -> None:
        footer = self.empty.footer
        start, end, _ = self.empty.num_rows
        begin, stop = self.empty.groups_span
        data = b"".join([footer[:start], _zigzag_varint(self.rows), footer[end:begin],
                         _list_header(len(self.groups), _STRUCT), *self.groups, footer[stop:]])
        self._write(memoryview(data + struct.pack("<i", len(data)) + MAGIC))

    def _write(self, data: memoryview) -> None:
        for at in range(0, len(data), WRITE):
            self.target.write(data[at:at + WRITE])


def _empty(schema: pa.Schema, options: dict[str, Any]) -> Part:
    out = pa.BufferOutputStream()
    with pq.ParquetWriter(out, schema, **options):
        pass
    return Part.of_file(memoryview(out.getvalue()))


# the C encoder's column kinds (_parquet.c) and flags
_INT32, _INT64, _BOOL, _DICT, _TEXT = range(5)
_SIGNED, _STATS, _DELTA, _DICT_INTS, _RAW = 1, 2, 4, 8, 16
# What did not pay in a column's last row group is left out of the next ones: lz4 where it made the chunk less than
# 35% smaller (`PAYS`), the dictionary of an integer column that had too many values; every `RETRY`th batch tries
# both again (the data may change). 10M pcapng: lz4 left out of ts, the ports, the dictionaries' indices (the
# lengths' too: lz4 took 0.4 ms a column a batch of 128k to make them 30% smaller; 0.8, 20%, before: the encoder
# 1.4 ms a batch slower, the file 4% smaller); kept for seq, ack, the TCP timestamps (40-45% smaller), ip_id and
# the payload digest (55%).
PAYS = 0.65
RETRY = 16
_CODECS = {"none": 0, "uncompressed": 0, "lz4": 7, "lz4_raw": 7}  # parquet's CompressionCodec
_PHYSICAL = {_INT32: "INT32", _INT64: "INT64", _BOOL: "BOOLEAN", _DICT: "BYTE_ARRAY", _TEXT: "BYTE_ARRAY"}
_KNOWN_OPTIONS = {"compression", "use_dictionary", "column_encoding", "write_batch_size", "write_statistics"}


class Native:
    """How `_parquet.encode` writes each column of a schema, with what pyarrow's writer options ask: a dictionary
    column as a dictionary page and its indices, a text column PLAIN, an integer one PLAIN or delta-encoded (through
    a dictionary of its values where it has few), with min/max statistics where asked. `make` gives None where a type
    or an option is not covered."""

    def __init__(self, schema: pa.Schema, codec: int, columns: list[tuple[int, int, int, int, str]]) -> None:
        self.schema = schema
        self.codec = codec
        self.columns = columns  # (kind, width, offset width, flags, name)
        self.spared = [0] * len(columns)  # each column's flags to leave out (_DICT_INTS) or add (_RAW), learned
        self.planned = 0

    def plan(self) -> list[int]:
        """Each column's flags for the next batch: what paid in the row groups learnt from (`learn`), all of it every
        `RETRY` batches. Planned and learnt on one thread, in order: the file is the same whatever the threads do."""
        self.planned += 1
        if self.planned % RETRY == 1:
            return [flags for _, _, _, flags, _ in self.columns]
        return [flags & ~(spared & _DICT_INTS) | spared & _RAW for (_, _, _, flags, _), spared in zip(self.columns, self.spared)]

    def learn(self, flags: list[int], sizes: bytes) -> None:
        """What paid in a row group encoded with `flags`: a dictionary tried (`sizes`: its column chunks' (dictionary
        or not, uncompressed, compressed bytes)) and not made is not tried again, nor lz4 where it did not pay."""
        for k, (dictionary, uncompressed, compressed) in enumerate(struct.iter_unpack("<qqq", sizes)):
            spared = self.spared[k]
            if flags[k] & _DICT_INTS:
                spared = spared & ~_DICT_INTS | (0 if dictionary else _DICT_INTS)
            if self.codec and not flags[k] & _RAW:
                spared = spared & ~_RAW | (_RAW if compressed > PAYS * uncompressed else 0)
            self.spared[k] = spared

    @classmethod
    def make(cls, schema: pa.Schema, options: dict[str, Any], empty: Part) -> Native | None:
        compression = options.get("compression", "snappy")
        if _parquet is None or set(options) - _KNOWN_OPTIONS or not isinstance(compression, str):
            return None
        codec = _CODECS.get(compression.lower())
        if codec is None or (codec and not _parquet.LZ4):
            return None
        stats, dictionary = options.get("write_statistics", True), options.get("use_dictionary", True)
        encodings: dict[str, str] = options.get("column_encoding") or {}
        columns = []
        parquet = pq.ParquetFile(io.BytesIO(MAGIC + empty.footer + struct.pack("<i", len(empty.footer)) + MAGIC)).schema
        for index, field in enumerate(schema):
            column = _column(field.type)
            if column is None or not field.nullable:
                return None
            kind, width, offsets, flags = column
            flags |= _STATS if stats is True or (stats and field.name in stats) else 0
            encoding = encodings.get(field.name, "PLAIN")
            flags |= _DELTA if encoding == "DELTA_BINARY_PACKED" else _DICT_INTS if kind in (_INT32, _INT64) else 0
            wants_dictionary = dictionary is True or (dictionary and field.name in dictionary)
            described = parquet.column(index)
            if ((flags & _STATS and kind not in (_INT32, _INT64)) or encoding not in ("PLAIN", "DELTA_BINARY_PACKED")
                    or (flags & _DELTA and kind not in (_INT32, _INT64)) or (kind == _DICT and not wants_dictionary)
                    or described.physical_type != _PHYSICAL[kind] or described.max_definition_level != 1
                    or described.max_repetition_level != 0):
                return None
            columns.append((kind, width, offsets, flags, field.name))
        return cls(schema, codec, columns)

    def specs(self, table: pa.Table, plan: list[int] | None = None) -> list[tuple[Any, ...]] | None:
        """Each column's kind, flags (`plan`'s, else as `make` made them) and Arrow buffers, as `_parquet.encode` takes
        them; None where a column is not in one chunk from its start (pyarrow writes those)."""
        if table.num_rows == 0 or not table.schema.equals(self.schema):
            return None
        specs: list[tuple[Any, ...]] = []
        plan = plan or [flags for _, _, _, flags, _ in self.columns]
        for chunked, (kind, width, offsets, _, name), flags in zip(table.columns, self.columns, plan):
            if chunked.num_chunks != 1:
                return None
            array = chunked.chunk(0)
            if array.offset:
                return None
            buffers = array.buffers()
            if kind == _DICT:
                values = array.dictionary
                if values.offset or values.null_count:
                    return None
                _, offsets_of, data = values.buffers()
                specs.append((kind, width, offsets, flags, buffers[0], buffers[1], offsets_of, data, len(values), name))
            elif kind == _TEXT:
                specs.append((kind, width, offsets, flags, buffers[0], None, buffers[1], buffers[2], 0, name))
            else:
                specs.append((kind, width, offsets, flags, buffers[0], buffers[1], None, None, 0, name))
        return specs

    def encode(self, table: pa.Table, buffers: _Buffers, plan: list[int] | None = None) -> Part | None:
        """The table as one row group in `buffers.out` (grown where it is too small), each column with its flags of
        `plan` (default: as `make` made them), or None: pyarrow writes it."""
        specs = self.specs(table, plan)
        if specs is None or _parquet is None:  # (`make` made none without it)
            return None
        while True:
            try:
                body, end, spans, sizes = _parquet.encode(specs, table.num_rows, self.codec, buffers.out, buffers.scratch)
            except ValueError:  # a page over 2 GB, or buffers Arrow would not make: pyarrow's to write or refuse
                return None
            if body == -1:
                buffers.out = pa.allocate_buffer(end)
            elif body == -2:
                buffers.scratch = pa.allocate_buffer(end)
            else:
                view = memoryview(buffers.out)
                part = Part.of_row_group(view[:body], bytes(view[body:end]), spans, table.num_rows)
                part.sizes = sizes
                return part


def _column(kind: pa.DataType) -> tuple[int, int, int, int] | None:
    """(kind, byte width of the values or indices, byte width of the offsets, flags) of an Arrow type; None: not covered."""
    if pa.types.is_boolean(kind):
        return _BOOL, 1, 0, 0
    if pa.types.is_integer(kind):
        return (_INT32 if kind.bit_width <= 32 else _INT64), kind.bit_width // 8, 0, _SIGNED if pa.types.is_signed_integer(kind) else 0
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _TEXT, 0, 8 if pa.types.is_large_string(kind) else 4, 0
    if pa.types.is_dictionary(kind) and (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
        index = kind.index_type
        signed = _SIGNED if pa.types.is_signed_integer(index) else 0
        return _DICT, index.bit_width // 8, 8 if pa.types.is_large_string(kind.value_type) else 4, signed
    return None


class _Buffers:
    """Where a worker encodes a part: `out` (the part) and `scratch` (the C encoder's pages before compression)."""

    def __init__(self, size: int) -> None:
        self.out = pa.allocate_buffer(size)
        self.scratch = pa.allocate_buffer(SCRATCH)


def write(tables: Iterable[Any], target: IO[bytes], schema: pa.Schema, options: dict[str, Any],
          workers: int = WORKERS, part_buffer: int = PART_BUFFER, prepare: Callable[[Any], pa.Table] | None = None,
          native: bool = True) -> None:
    """`tables` as one parquet file at `target`, each a row group, `workers` of them encoding at once.

    `prepare` (on the worker's thread) makes each item of `tables` an arrow table; at most `workers` + 1 items
    are held at a time. `native`: the C encoder where it is built and covers the schema and options (else, and
    for a table it does not take, pyarrow's writer).
    """
    empty = _empty(schema, options)
    encoder = Native.make(schema, options, empty) if native else None
    free: queue.SimpleQueue[_Buffers] = queue.SimpleQueue()
    for _ in range(workers + 1):
        free.put(_Buffers(part_buffer))

    def encode(item: Any, buffers: _Buffers, plan: list[int]) -> tuple[Part, _Buffers]:
        table = prepare(item) if prepare is not None else item
        part = encoder.encode(table, buffers, plan) if encoder is not None else None
        return part or _pyarrow_part(table, buffers, schema, options), buffers

    joiner = Joiner(target, empty)
    pending: deque[tuple[Future[tuple[Part, _Buffers]], list[int]]] = deque()

    def join_next() -> None:
        future, plan = pending.popleft()
        part, buffers = future.result()
        if encoder is not None and part.sizes:
            encoder.learn(plan, part.sizes)
        joiner.append(part)
        free.put(buffers)

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="parquet") as pool:
            try:
                for item in tables:
                    plan = encoder.plan() if encoder is not None else []
                    pending.append((pool.submit(encode, item, free.get(), plan), plan))
                    if len(pending) > workers:
                        join_next()
            finally:  # reading stopped (Ctrl-C, an error): what was read is still written
                while pending:
                    join_next()
    finally:  # the footer, so the file opens with every row group it holds, as a writer closed early leaves it
        joiner.close()


def _pyarrow_part(table: pa.Table, buffers: _Buffers, schema: pa.Schema, options: dict[str, Any]) -> Part:
    """The table encoded by pyarrow's writer as a file of its own, in `buffers.out` where it fits."""
    sink: pa.NativeFile = pa.FixedSizeBufferWriter(buffers.out)
    try:
        with pq.ParquetWriter(sink, schema, **options) as writer:
            writer.write_table(table)
        return Part.of_file(memoryview(buffers.out)[:sink.tell()])
    except OSError:  # larger than the buffer: in a buffer of its own
        grown = pa.BufferOutputStream()
        with pq.ParquetWriter(grown, schema, **options) as writer:
            writer.write_table(table)
        return Part.of_file(memoryview(grown.getvalue()))
