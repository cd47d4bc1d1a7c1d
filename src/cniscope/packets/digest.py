"""The payload digest: a 64-bit value that tells apart packets whose headers match.

    digest = mix(mix(a ^ (payload_len * GOLDEN)) ^ b)

where `a` and `b` are the first and second 8 bytes of the L4 payload read as
little-endian integers (bytes past `payload_len` count as zero) and `mix` is
the splitmix64 finalizer. It covers the payload length and its first 16 bytes,
so any capture that holds those bytes (snap length >= headers + 16) gives the
same digest for the same packet; it is null when they were not captured or the
payload is empty. It is a fingerprint for matching sightings, not a checksum.
"""

from __future__ import annotations

import numpy as np

DIGEST_BYTES = 16
GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1


def _mix_py(x: int) -> int:
    x ^= x >> 30
    x = (x * _M1) & _MASK
    x ^= x >> 27
    x = (x * _M2) & _MASK
    return x ^ (x >> 31)


def digest_py(head: bytes, payload_len: int) -> int:
    """`head` is the payload's first min(16, payload_len) bytes."""
    head = head[:DIGEST_BYTES].ljust(DIGEST_BYTES, b"\0")
    a = int.from_bytes(head[:8], "little")
    b = int.from_bytes(head[8:], "little")
    return _mix_py(_mix_py(a ^ ((payload_len * GOLDEN) & _MASK)) ^ b)


def _mix_np(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(_M1)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(_M2)
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


def digest_np(windows: np.ndarray, payload_len: np.ndarray) -> np.ndarray:
    """`windows`: V16 array of the bytes at each payload start; `payload_len`: int64 per row."""
    n = windows.shape[0]
    raw = windows.view(np.uint8).reshape(n, DIGEST_BYTES)
    short = payload_len < DIGEST_BYTES
    if short.any():
        raw = raw.copy()
        keep = np.arange(DIGEST_BYTES) < payload_len[short, None]
        raw[short] *= keep
    words = raw.view("<u8").reshape(n, 2)
    a, b = words[:, 0], words[:, 1]
    with np.errstate(over="ignore"):
        return _mix_np(_mix_np(a ^ (payload_len.astype(np.uint64) * np.uint64(GOLDEN))) ^ b)
