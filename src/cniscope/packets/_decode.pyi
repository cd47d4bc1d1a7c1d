import numpy as np

# the columns `decode` fills, in the order of `values` and `valid` (IPv6 addresses: int64 buffer positions)
COLUMNS: tuple[str, ...]

def decode(data: np.ndarray, offset: np.ndarray, caplen: np.ndarray, linktype: np.ndarray, kinds: np.ndarray,
           values: list[np.ndarray], valid: list[np.ndarray], counts: np.ndarray, /) -> list[tuple[int, str]]: ...
