"""The Internet checksum: computed for headers written (`internet`), verified for TCP/UDP per packet (Python)
and per chunk of rows (numpy).

The Internet checksum (RFC 1071) is the ones' complement sum of 16-bit
big-endian words over the pseudo-header and the whole segment (an odd-length
segment is padded with a zero byte); a segment verifies when that sum, its
checksum field included, is ones' complement zero (0xFFFF). Since
2**16 == 1 modulo 65535, the ones' complement sum is the plain integer sum of
the words modulo 65535, and so is the sum of any grouping of the bytes whose
weights agree modulo 65535. Both paths use that:

- `segment_ok` reads pseudo-header + segment as one big-endian integer and
  takes it modulo 65535.
- `segment_sums` sums whole chunks of the buffer at once: it reads the buffer
  as little-endian uint64 words on an 8-byte grid and sums every segment's
  words with `np.add.reduceat` (the segments lie in buffer order, so the
  starts and ends interleave; reduceat runs about 3x faster on 64-bit words
  than on 32-bit ones). A uint64 sum wraps, so the high halves of the words
  are summed too (they cannot wrap), which gives back the low halves' sum
  exactly. Then it takes off the bytes of the first and last grid word that
  lie outside the segment, and turns the grid's byte weights into the
  segment's (a byte at buffer position q weighs 256**(q % 8), which is
  256**(q % 2) modulo 65535; in the segment it weighs 256 when it is at an
  even distance from the segment's start).

A checksum is only judged when the whole segment was captured and is not a
fragment; a UDP checksum of 0 over IPv4 means "none" (RFC 768).
"""

from __future__ import annotations

import struct

import numpy as np

_MOD = 0xFFFF  # ones' complement arithmetic on 16 bits is arithmetic modulo 65535
# little-endian uint64 masks: the first k bytes of a word (_BELOW[k]), and its bytes from k on (_ABOVE[k])
_BELOW = np.array([(1 << (8 * k)) - 1 for k in range(8)], dtype=np.uint64)
_ABOVE = np.array([((1 << 64) - 1) ^ ((1 << (8 * k)) - 1) for k in range(9)], dtype=np.uint64)


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


class Scratch:
    """A uint64 work array kept from one chunk to the next: allocating a fresh one of tens of MB per chunk
    (fresh pages, faulted in and zeroed by the kernel) took longer than the sums themselves."""

    def __init__(self) -> None:
        self.words = np.empty(0, dtype=np.uint64)

    def take(self, n: int) -> np.ndarray:
        if self.words.shape[0] < n:
            self.words = np.empty(n, dtype=np.uint64)
        return self.words[:n]


def segment_sums(
    data: np.ndarray, start: np.ndarray, length: np.ndarray, scratch: Scratch | None = None, gather_below: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """Per segment `data[start : start + length]`: its 16-bit word sum modulo 65535 (int64), and whether it was summed.

    When the segments hold less than `gather_below` of the words between the first and the last (short
    segments far apart: a small snap length), their words are gathered back to back first, so the sums do
    not run over the gaps.

    Segments closer than 8 bytes to another one, or whose 8-byte grid runs past the buffer's last whole word,
    are not summed (False; their sum is 0): the caller decodes those rows another way.
    """
    end = start + length
    lo = start & ~7
    hi = (end + 7) & ~7
    done = (lo >= 0) & (hi <= (data.shape[0] & ~7)) & (length > 0)
    order = np.flatnonzero(done)
    if order.shape[0] > 1 and (np.diff(lo[order]) < 0).any():
        order = order[np.argsort(lo[order], kind="stable")]
    if order.shape[0] > 1:
        overlap = hi[order[:-1]] > lo[order[1:]]
        if overlap.any():
            clash = np.zeros(order.shape[0], dtype=np.bool_)
            clash[:-1] |= overlap
            clash[1:] |= overlap
            done[order[clash]] = False
            order = order[~clash]
    sums = np.zeros(start.shape[0], dtype=np.int64)
    if order.shape[0] == 0:
        return sums, done
    every = order.shape[0] == start.shape[0] and order[-1] == order.shape[0] - 1  # all of them, in order: no gathers
    s, e, lo, hi = (a if every else a[order] for a in (start, end, lo, hi))
    base = int(lo[0])
    words = data[base : int(hi[-1])].view("<u8")
    first, stop = (lo - base) >> 3, (hi - base) >> 3  # each segment's words
    counts = stop - first
    total = int(counts.sum())
    if total < gather_below * words.shape[0]:
        at = np.cumsum(counts) - counts
        summed = words[np.repeat(first - at, counts) + np.arange(total)]
        step = 1
    else:
        at = np.empty(2 * s.shape[0] - 1, dtype=np.int64)
        at[0::2], at[1::2] = first, stop[:-1]  # the odd entries sum the gaps between segments
        summed, step = words, 2
    wrapped = np.add.reduceat(summed, at)[::step]
    halves = np.right_shift(summed, np.uint64(32), out=(scratch or Scratch()).take(summed.shape[0]))
    high = np.add.reduceat(halves, at)[::step]  # under 2**45 for a segment of 64 KB: exact
    low = wrapped - (high << np.uint64(32))  # exact too, modulo 2**64 as it must be
    mod = np.uint64(_MOD)
    # take off the grid bytes before the segment (the low bytes of its first word) and after it (the high bytes of its last)
    before = words[first] & _BELOW[s - lo]
    after = words[stop - 1] & _ABOVE[e - hi + 8]
    grid = ((high % mod + low % mod + 2 * _MOD - before % mod - after % mod) % mod).astype(np.int64)
    sums[order] = np.where(s & 1, grid, (grid << 8) % _MOD)
    return sums, done
