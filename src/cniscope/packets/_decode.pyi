import numpy as np

# the columns `decode` fills, in the order of `values` (IPv6 addresses: int64 buffer positions), `valid` (a bitmap
# each, uint64 words: bit j of word k is row 64 k + j; each word of a column kept written) and `counts` (int64: the rows
# that have a value, set here); `ifindex`: the interface index of each LINUX_SLL2 frame captured to its 8th byte, -1 for
# the others; `zeroed`: the `values` are zeros already, and the blocks of 64 rows without a column's value are left
# unwritten
COLUMNS: tuple[str, ...]

def decode(data: np.ndarray, offset: np.ndarray, caplen: np.ndarray, linktype: np.ndarray, kinds: np.ndarray,
           values: list[np.ndarray], valid: np.ndarray, counts: np.ndarray, ifindex: np.ndarray | None = None,
           zeroed: bool = False, /) -> list[tuple[int, str]]: ...

# the IPv6 addresses at `position` (int64 a row) in `data`, in the rows `valid` (a uint64 word per 64 rows) sets, as
# int32 `codes` (written in those rows) into their distinct texts in text order: (int32 offsets, UTF-8 bytes)
def ipv6_column(data: np.ndarray, position: np.ndarray, valid: np.ndarray, codes: np.ndarray, /) -> tuple[bytes, bytes]: ...

# an `arrow.Array` (format, length, null count, buffers, dictionary) as Arrow C data interface capsules, its buffers
# pointed at: (schema, array)
def export(name: bytes, array: object, /) -> tuple[object, object]: ...
