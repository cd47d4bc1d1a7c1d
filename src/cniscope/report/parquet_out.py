"""`cniscope read --format parquet`: the packet table exactly as the schema declares it (addresses as integers),
written batch by batch, a row group each (`parquet_parts`), so inputs larger than memory work.

A binary input's batches come as pyarrow tables made straight from the decoded arrays (`arrow_table`, on the decoding
thread); a text input's as polars tables, converted here (`to_arrow`). Nothing here imports polars until a polars
table comes: for binary inputs the command never imports it (0.1 s of the main thread's start, before the first walk).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from cniscope.outputs import opened
from cniscope.packets import arrow
from cniscope.packets.arrow import Array
from cniscope.packets.chunks import Arrays
from cniscope.packets.columns import ARROW_TYPE
from cniscope.report import parquet_parts

if TYPE_CHECKING:
    import polars as pl

# lz4 and dictionaries for text columns only: 2x faster to write than pyarrow's defaults, as small. frame and ts
# (ascending) as deltas: the file 16% smaller (91 -> 76 MB at 2M), less for lz4 to do; a batch's values a column
# handed to the encoder at once, not 1024 at a time: together 7% less CPU (2M pcap, in parts, load 5)
PARQUET_OPTIONS: dict[str, object] = {
    "compression": "lz4",
    "use_dictionary": [name for name, fmt in ARROW_TYPE.items() if fmt in (b"u", b"i")],  # the text columns
    "column_encoding": {"frame": "DELTA_BINARY_PACKED", "ts": "DELTA_BINARY_PACKED"},
    "write_batch_size": 1 << 16,
    "write_statistics": ["input", "frame", "ts"],
}


def stream_parquet(tables: Iterable[pl.DataFrame | pa.Table], output: str) -> None:
    """Write the batches of the packet table as they come into one parquet file, a row group each: Arrow tables
    (`arrow_table`) as they are, polars ones (text inputs) converted (`to_arrow`).

    Two batches encode at once (`parquet_parts`: pyarrow's writer is one thread), while the next ones are read and
    decoded; at most three batches are held here.
    """
    with opened(output, binary=True) as target:
        parquet_parts.write(tables, target, _arrow_schema(), PARQUET_OPTIONS, prepare=_prepared)


def _prepared(table: pl.DataFrame | pa.Table) -> pa.Table:
    """A batch as the writer takes it: an Arrow table as it is, a polars one (a text input's) converted."""
    return table if isinstance(table, pa.Table) else to_arrow(table)


# each column's Arrow type in the file, by its format in the decoder's arrays (`columns.ARROW_TYPE`), as polars
# converts the table's: a categorical column a dictionary of uint32 indices into large strings, with the field
# metadata that has polars read it back as categorical (tests hold the schema to polars' own, metadata included)
_TYPES = {b"C": pa.uint8(), b"S": pa.uint16(), b"I": pa.uint32(), b"L": pa.uint64(), b"l": pa.int64(), b"b": pa.bool_(),
          b"u": pa.large_string(), b"i": pa.dictionary(pa.uint32(), pa.large_string())}
_CATEGORICAL = {b"_PL_CATEGORICAL2": b"0;0;u32;"}


@lru_cache(maxsize=1)
def _arrow_schema() -> pa.Schema:
    """The packet table's Arrow schema (`packets.schema`'s, as polars converts it), without polars."""
    return pa.schema([pa.field(name, _TYPES[fmt], metadata=_CATEGORICAL if fmt == b"i" else None)
                      for name, fmt in ARROW_TYPE.items()])


def arrow_table(decoded: list[Arrays], input_index: int) -> pa.Table:
    """A binary batch's table from its chunks' tagged arrays (`ingest.batches_as`), without polars: what `to_arrow`
    makes of the polars table `decode.table` makes of them (the same schema, a categorical column's dictionary in
    order of first appearance), the buffers taken over without a copy. Polars' table and its conversion back were 11%
    of `read --format parquet`'s CPU at 10M pcapng."""
    schema = _arrow_schema()
    batches = []
    for arrays in decoded:
        rows = next(iter(arrays.values())).length  # (every chunk has its frames' lengths and times)
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
    import polars as pl  # (the table is polars')

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
    import polars as pl  # (the column is polars')

    texts = pl.Series(np.frombuffer(distinct, dtype=np.uint32)).cat.to(column.dtype).to_arrow().dictionary  # in order
    return pa.DictionaryArray.from_buffers(kind, rows, [validity, indices], texts.cast(kind.value_type), codes.null_count)


@lru_cache(maxsize=64)
def _nulls(rows: int, kind: pa.DataType) -> pa.Array:
    """An all-null column, made once for every batch of its size (Arrow arrays do not change): each was `rows` zeroed
    indices or offsets, new memory, ten of them a batch (2.6 MB at 65536 rows)."""
    return pa.nulls(rows, kind)
