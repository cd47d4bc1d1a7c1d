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
