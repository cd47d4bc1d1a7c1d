import numpy as np

# what tells network models apart (cniscope.models.evidence: `scan`, `python_scan` its polars twin)
def scan(columns: tuple[object | None, ...], rows: int, iface_kinds: np.ndarray, ports: np.ndarray, macs: np.ndarray,
         prefixes: np.ndarray, gateways: np.ndarray, every: bool, port_rows: np.ndarray, mac_rows: np.ndarray,
         prefix_rows: np.ndarray, gateway_rows: np.ndarray, /) -> tuple[int, bytes, bytes, bytes, bytes]: ...
def code_counts(column: object, rows: int, /) -> bytes: ...
