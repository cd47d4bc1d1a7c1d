"""The record walk in C gives what the Python walk gives, on sound and damaged bytes of both byte orders.

The C source in the tree is compiled here (with the compiler `make install` brings), whether or not the
installed package carries a build of it, so that what is tested is what the tree holds.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cniscope.wire import pcap as wire_pcap
from cniscope.wire import pcapng, walk
from tests.compiled import compile_c

SOURCE = Path(walk.__file__).with_name("_walk.c")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("walk"))


def pcap_bytes(rng: random.Random, big: bool) -> bytes:
    """Records of random captured lengths (some absurd), then possibly a cut tail."""
    order = ">" if big else "<"
    parts = [b"\0" * 24]
    for _ in range(rng.randrange(0, 40)):
        caplen = rng.choice([0, 1, 15, 60, 300, rng.randrange(0, 1 << 32)]) if rng.random() < 0.1 else rng.randrange(0, 120)
        parts.append(struct.pack(order + "IIII", 1, 2, caplen, caplen) + bytes(min(caplen, 200)))
    data = b"".join(parts)
    return data[: rng.randrange(24, len(data) + 1)]


def pcapng_bytes(rng: random.Random, big: bool) -> bytes:
    """Enhanced packet blocks, with other blocks, zero or odd lengths and cut ends among them."""
    order = ">" if big else "<"
    parts = []
    for _ in range(rng.randrange(0, 40)):
        kind = pcapng.EPB if rng.random() < 0.8 else rng.choice([pcapng.IDB, pcapng.SPB, pcapng.SHB, 0xDEAD])
        length = rng.choice([0, 3, 12, rng.randrange(0, 1 << 32)]) if rng.random() < 0.05 else 32 + 4 * rng.randrange(0, 20)
        parts.append(struct.pack(order + "II", kind, length) + bytes(max(0, min(length, 200) - 8)))
    data = b"".join(parts)
    return data[: rng.randrange(0, len(data) + 1)]


@pytest.mark.parametrize("big", [False, True])
def test_pcap_walks_agree(compiled: ModuleType, big: bool) -> None:
    rng = random.Random(12 + big)
    for _ in range(400):
        data = np.frombuffer(pcap_bytes(rng, big), dtype=np.uint8)
        stop = rng.randrange(24, len(data) + 2)
        end = min(len(data), stop + rng.randrange(0, 400))
        limit = rng.choice([1, 3, 64])
        pos = 24
        while True:
            ours, theirs = np.full(limit, -1, np.int64), np.full(limit, -1, np.int64)
            our_words, their_words = np.full((limit, 4), 7, np.uint32), np.full((limit, 4), 9, np.uint32)
            got = compiled.pcap_records(data, pos, stop, end, limit, big, ours, our_words)
            want = walk.python_pcap_records(data, pos, stop, end, limit, big, theirs, their_words)
            assert got == want and (ours == theirs).all(), (data.tobytes().hex(), pos, stop, end, limit)
            assert (our_words[: got[0]] == their_words[: got[0]]).all(), (data.tobytes().hex(), pos, stop, end, limit)
            assert compiled.pcap_records(data, pos, stop, end, limit, big, ours) == got  # the words are optional
            if got[0] < limit or got[1] >= stop:
                break
            pos = got[1]


@pytest.mark.parametrize("big", [False, True])
def test_pcapng_walks_agree(compiled: ModuleType, big: bool) -> None:
    rng = random.Random(120 + big)
    for _ in range(400):
        data = np.frombuffer(pcapng_bytes(rng, big), dtype=np.uint8)
        end = rng.randrange(0, len(data) + 1)
        limit = rng.choice([1, 3, 64])
        ours, theirs = np.full(limit, -1, np.int64), np.full(limit, -1, np.int64)
        our_fields, their_fields = np.full((limit, 8), 7, np.uint32), np.full((limit, 8), 9, np.uint32)
        got = compiled.pcapng_blocks(data, 0, end, limit, big, pcapng.EPB, ours, our_fields)
        want = walk.python_pcapng_blocks(data, 0, end, limit, big, pcapng.EPB, theirs, their_fields)
        assert got == want and (ours == theirs).all(), (data.tobytes().hex(), end, limit)
        found = got[0]
        assert (our_fields[:found] == their_fields[:found]).all(), (data.tobytes().hex(), end, limit)
        for row, at in zip(our_fields[:found].tolist(), ours[:found].tolist()):  # the words as the bytes hold them
            words = struct.unpack_from((">" if big else "<") + "7I", data, at) if at + 28 <= end else (0,) * 7
            assert row[:7] == list(words)


@pytest.mark.parametrize("big", [False, True])
def test_pcapng_checks_agree(compiled: ModuleType, big: bool) -> None:
    """The C check of walked packet blocks gives what the reader's numpy check gives: how many are good (up to the
    first bad one), and their packets' offsets, lengths, interfaces, timestamps and options."""
    from cniscope.sources.pcapng import _check_numpy

    rng = random.Random(1200 + big)
    for _ in range(400):
        n = rng.randrange(1, 40)
        block, fields, at = np.zeros(n, dtype=np.int64), np.zeros((n, 8), dtype=np.uint32), rng.randrange(0, 100)
        rate = rng.choice([0.0, 0.01, 0.05, 0.2])  # how often a block is damaged, each way
        for row, k in zip(fields, range(n)):  # one after the other, as walked
            kind = rng.choice([pcapng.EPB] * 6 + [pcapng.SPB, pcapng.OPB])
            caplen = rng.choice([rng.randrange(0, 200), rng.randrange(0, 1 << 32)]) if rng.random() < rate else rng.randrange(0, 200)
            length = (32 + caplen + 3) // 4 * 4 + rng.choice([0, 0, 0, 8, 12, 20]) - (12 if kind == pcapng.SPB else 0)
            if rng.random() < rate:
                length = rng.choice([0, 13, 31, length + 2, rng.randrange(0, 1 << 32)])
            iface = rng.choice([0, 1, 2, 5, rng.randrange(0, 1 << 32)]) if rng.random() < rate else rng.choice([0, 0, 1])
            tail = rng.randrange(0, 1 << 32) if rng.random() < rate else length
            row[:] = [kind, length, iface, rng.randrange(0, 1 << 32), rng.randrange(0, 1 << 32), caplen,
                      rng.randrange(0, 1 << 32) if rng.random() < 0.1 else caplen + rng.randrange(0, 100), tail]
            block[k], at = at, at + min(length, 400)
        end = at - rng.choice([0, 0, 0, 4, 30, 200])  # the last blocks may run past the end
        interfaces, snap0 = rng.choice([0, 1, 2, 2, 3]), rng.choice([0, 0, 16, 64, 100])
        outs = (np.empty(n, np.int64), np.empty(n, np.uint32), np.empty(n, np.uint32), np.empty(n, np.int32),
                np.empty(n, np.uint64), np.empty(n, np.uint8))
        good = compiled.pcapng_check(fields, block, end, interfaces, snap0, wire_pcap.MAX_CAPLEN, big, *outs)
        want, *theirs, _ = _check_numpy(block, fields, end, interfaces, snap0, big)
        assert good == want, (fields.tolist(), block.tolist(), end, interfaces, snap0)
        for ours, expected in zip(outs, theirs):
            assert (ours[:good] == expected[:good]).all(), (fields.tolist(), block.tolist(), end, interfaces, snap0)


def test_walk_refuses_a_short_output(compiled: ModuleType) -> None:
    data = np.zeros(100, dtype=np.uint8)
    with pytest.raises(ValueError, match="fewer than limit"):
        compiled.pcap_records(data, 24, 100, 100, 8, False, np.empty(4, np.int64))
    with pytest.raises(ValueError, match="fewer than limit"):
        compiled.pcap_records(data, 24, 100, 100, 8, False, np.empty(8, np.int64), np.empty((4, 4), np.uint32))
    with pytest.raises(ValueError, match="fewer than limit"):
        compiled.pcapng_blocks(data, 0, 100, 8, False, pcapng.EPB, np.empty(8, np.int64), np.empty((4, 8), np.uint32))


def reference_pcap_walk(data: bytes, limit: int) -> tuple[list[int], list[int], str | None]:
    """Record after record, checking each before the next: what wire.pcap.walk's windows must add up to."""
    offsets, caplens, at = [], [], 24
    while at < len(data):
        if at + 16 > len(data):
            return offsets, caplens, f"byte {at}: record header cut short ({len(data) - at} of 16 bytes)"
        caplen = struct.unpack_from("<I", data, at + 8)[0]
        if caplen > limit or at + 16 + caplen > len(data):
            return offsets, caplens, f"byte {at}: record of {caplen} bytes does not fit ({len(data) - at - 16} left)"
        offsets.append(at)
        caplens.append(caplen)
        at += 16 + caplen
    return offsets, caplens, None


@pytest.mark.parametrize("window", [1, 3, 65536])
def test_the_converters_walk_is_the_readers_walk_checked(window: int) -> None:
    """wire.pcap.walk (the SLL2 -> pcapng converter's) finds records with the readers' walk, a window at a time,
    and stops at the first record that does not fit, naming its byte, as a record-by-record walk does."""
    rng = random.Random(7)
    header = wire_pcap.Header(byteorder="<", ticks=1_000_000, snaplen=262144, linktype=276)
    for _ in range(300):
        data = pcap_bytes(rng, big=False)
        offsets, caplens, damage = wire_pcap.walk(data, header, window=window)
        assert (offsets.tolist(), caplens.tolist(), damage) == reference_pcap_walk(data, wire_pcap.MAX_CAPLEN)
