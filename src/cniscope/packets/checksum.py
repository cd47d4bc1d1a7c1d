"""TCP/UDP checksum verification, per packet (Python) and per chunk of rows (numpy).

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
  as little-endian uint32 words on a 4-byte grid, sums every segment's words
  with one `np.add.reduceat` (the segments lie in buffer order, so the starts
  and ends interleave), takes off the few bytes of the grid words that lie
  outside the segment, and turns the grid's byte weights into the segment's
  (a byte at buffer position q weighs 256**(q % 2) on the grid; in the segment
  it weighs 256 when it is at an even distance from the segment's start).

A checksum is only judged when the whole segment was captured and is not a
fragment; a UDP checksum of 0 over IPv4 means "none" (RFC 768).
"""

from __future__ import annotations

import numpy as np

_MOD = 0xFFFF  # ones' complement arithmetic on 16 bits is arithmetic modulo 65535


def pseudo_v4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + bytes((0, proto)) + length.to_bytes(2, "big")


def pseudo_v6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + length.to_bytes(4, "big") + bytes((0, 0, 0, proto))


def segment_ok(pseudo: bytes, segment: bytes) -> bool:
    """Whether the checksum in `segment` (the whole TCP/UDP segment) is right; `pseudo` has an even length."""
    data = pseudo + segment + (b"\0" if len(segment) % 2 else b"")
    return int.from_bytes(data, "big") % _MOD == 0


def segment_sums(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per segment `data[start : start + length]`: its 16-bit word sum modulo 65535 (int64), and whether it was summed.

    Segments that overlap another one, or whose 4-byte grid runs past the buffer's last whole word,
    are not summed (False; their sum is 0): the caller decodes those rows another way.
    """
    n = start.shape[0]
    sums = np.zeros(n, dtype=np.int64)
    end = start + length
    lo = start & ~3
    hi = (end + 3) & ~3
    done = (lo >= 0) & (hi <= (data.shape[0] & ~3)) & (length > 0)
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
    if order.shape[0] == 0:
        return sums, done
    base = int(lo[order[0]])
    words = data[base : int(hi[order[-1]])].view("<u4")
    bounds = np.empty(2 * order.shape[0], dtype=np.int64)
    bounds[0::2] = (lo[order] - base) >> 2
    bounds[1::2] = (hi[order] - base) >> 2
    total = np.add.reduceat(words, bounds[:-1], dtype=np.uint64)[0::2]  # the odd entries sum the gaps between segments
    s, e, first, last = start[order], end[order], lo[order], hi[order]
    for k in range(3):  # grid bytes before the segment and after it (at most 3 each)
        before = first + k
        total -= np.where(before < s, data[np.minimum(before, s)].astype(np.uint64) << np.uint64(8 * k), np.uint64(0))
        after = e + k
        shift = (after & 3).astype(np.uint64) * np.uint64(8)
        total -= np.where(after < last, data[np.minimum(after, last - 1)].astype(np.uint64) << shift, np.uint64(0))
    grid = (total % np.uint64(_MOD)).astype(np.int64)
    sums[order] = np.where(s & 1, grid, (grid << 8) % _MOD)
    return sums, done
