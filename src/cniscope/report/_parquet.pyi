# a parquet row group encoded in C (cniscope.report.parquet_parts.Native)

# whether liblz4 was found: LZ4_RAW (7) is offered besides UNCOMPRESSED (0)
LZ4: int

# columns: (kind, width, offset width, flags, validity, values, offsets, data, dictionary entries, name) each, the
# buffers Arrow's (or None); -> (body, end, spans, sizes): the column chunks in out[:body], the RowGroup's thrift in
# out[body:end], where its file offsets' varints lie in it (int64 start, end pairs), each column chunk's (dictionary
# or not, uncompressed bytes, compressed bytes) as int64s; or (-1, bytes, b"", b"") where `out` is too small, (-2,
# bytes, b"", b"") where `scratch` is
def encode(columns: list[tuple[object, ...]], rows: int, codec: int, out: object, scratch: object, /) -> tuple[int, int, bytes, bytes]: ...

# a categorical column's codes (uint32 a row, `validity` its bitmap or None) as indices into its distinct codes in order
# of first appearance, written to `indices` (uint32 a row, 0 under a null); -> those codes (uint32s), or None where there
# are more than 2048
def codes(values: object, validity: object, rows: int, indices: object, /) -> bytes | None: ...
