"""The Internet checksum: computed for headers written (`internet`), verified for TCP/UDP/ICMP segments (`segment_ok`).

The Internet checksum (RFC 1071) is the ones' complement sum of 16-bit
big-endian words over the pseudo-header and the whole segment (an odd-length
segment is padded with a zero byte); a segment verifies when that sum, its
checksum field included, is ones' complement zero (0xFFFF). Since
2**16 == 1 modulo 65535, the ones' complement sum is the plain integer sum of
the words modulo 65535, and so is the sum of any grouping of the bytes whose
weights agree modulo 65535: `segment_ok` reads pseudo-header + segment as one
big-endian integer and takes it modulo 65535; the C decoder (`_decode.c`)
sums little-endian 32-bit words, the byte-swapped sum, which is 256 times the
big-endian one modulo 65535.

A checksum is only judged when the whole segment was captured and is not a
fragment; a UDP checksum of 0 over IPv4 means "none" (RFC 768).
"""

from __future__ import annotations

import struct

_MOD = 0xFFFF  # ones' complement arithmetic on 16 bits is arithmetic modulo 65535


def pseudo_v4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + bytes((0, proto)) + length.to_bytes(2, "big")


def pseudo_v6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + length.to_bytes(4, "big") + bytes((0, 0, 0, proto))


def internet(data: bytes) -> int:
    """The checksum to write into a header (RFC 1071) whose bytes, checksum field 0, are `data` (with the
    pseudo-header in front for TCP, UDP and ICMPv6): the ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def segment_ok(pseudo: bytes, segment: bytes) -> bool:
    """Whether the checksum in `segment` (the whole TCP/UDP segment) is right; `pseudo` has an even length."""
    data = pseudo + segment + (b"\0" if len(segment) % 2 else b"")
    return int.from_bytes(data, "big") % _MOD == 0
