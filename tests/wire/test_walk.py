"""The record walk in C gives what the Python walk gives, on sound and damaged bytes of both byte orders.

The C source in the tree is compiled here (with the compiler `make install` brings), whether or not the
installed package carries a build of it, so that what is tested is what the tree holds.
"""

from __future__ import annotations

import mmap
import random
import resource
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
            got = compiled.pcap_records(data, pos, stop, end, limit, big, ours)
            want = walk.python_pcap_records(data, pos, stop, end, limit, big, theirs)
            assert got == want and (ours == theirs).all(), (data.tobytes().hex(), pos, stop, end, limit)
            if got[0] < limit or got[1] >= stop:
                break
            pos = got[1]


def record_outputs(limit: int) -> tuple[np.ndarray, ...]:
    """`pcap_packets`' outputs for `limit` records, filled with junk: offset, caplen, wirelen, ts."""
    return np.full(limit, 7, np.int64), np.full(limit, 7, np.uint32), np.full(limit, 7, np.uint32), np.full(limit, 7, np.int64)


@pytest.mark.parametrize("big", [False, True])
def test_pcap_packet_walks_agree_and_check_each_record(compiled: ModuleType, big: bool) -> None:
    """The checked walk of pcap records in C gives what the Python one gives (how many, where it stopped, the first
    damaged one, every row's fields), walks where the plain walk does, and finds bad the first record a check of each
    record on its own finds bad: a header cut by the end, a captured length above the limit or past the end, a wire
    length of 0."""
    rng = random.Random(24 + big)
    order = ">" if big else "<"
    for _ in range(600):
        raw = bytearray(pcap_bytes(rng, big))
        for _ in range(rng.choice([0, 0, 1, 3])):  # a wire length of 0 here and there
            at = rng.randrange(24, max(25, len(raw) - 3))
            raw[at:at + 4] = b"\0\0\0\0"[: len(raw) - at]
        data = np.frombuffer(bytes(raw), dtype=np.uint8)
        stop = rng.randrange(24, len(data) + 2)
        end = min(len(data), stop + rng.randrange(0, 400))
        limit, usec = rng.choice([1, 3, 64]), rng.random() < 0.5
        ours, theirs = record_outputs(limit), record_outputs(limit)
        got = compiled.pcap_packets(data, 24, stop, end, limit, big, usec, wire_pcap.MAX_CAPLEN, *ours)
        want = walk.python_pcap_packets(data, 24, stop, end, limit, big, usec, wire_pcap.MAX_CAPLEN, *theirs)
        assert got == want, (data.tobytes().hex(), stop, end, limit)
        n, _, bad = got
        for a, b in zip(ours, theirs):
            assert (a[:n] == b[:n]).all(), (data.tobytes().hex(), stop, end, limit)
        starts = np.empty(limit, np.int64)
        assert compiled.pcap_records(data, 24, stop, end, limit, big, starts)[0] == n
        assert (ours[0][:n] == starts[:n] + 16).all()
        first_bad = -1
        for row, at in enumerate(starts[:n].tolist()):
            sec, sub, cap = struct.unpack_from(order + "3I", data, at)
            wire = struct.unpack_from(order + "I", data, at + 12)[0] if at + 16 <= end else 0
            if at + 16 > end or cap > wire_pcap.MAX_CAPLEN or at + 16 + cap > end or wire == 0:
                first_bad = row
                break
            assert (ours[1][row], ours[2][row]) == (cap, wire)
            assert ours[3][row] == sec * 1_000_000_000 + sub * (1000 if usec else 1)
        assert bad == first_bad, (data.tobytes().hex(), stop, end, limit)


def packet_outputs(limit: int) -> tuple[np.ndarray, ...]:
    """`pcapng_packets`' outputs for `limit` blocks, filled with junk: offset, caplen, wirelen, local, units, options,
    length."""
    return (np.full(limit, 7, np.int64), np.full(limit, 7, np.uint32), np.full(limit, 7, np.uint32),
            np.full(limit, 7, np.int32), np.full(limit, 7, np.uint64), np.full(limit, 7, np.uint8),
            np.full(limit, 7, np.uint32))


def damaged_pcapng_bytes(rng: random.Random, big: bool) -> bytes:
    """Packet blocks of random captured lengths, interfaces and options, now and then damaged each way (lengths, the
    trailing length, the captured length), with other blocks among them and possibly a cut end."""
    order = ">" if big else "<"
    parts = []
    rate = rng.choice([0.0, 0.01, 0.05, 0.2])
    for _ in range(rng.randrange(0, 40)):
        if rng.random() < 0.1:
            parts.append(struct.pack(order + "III", rng.choice([pcapng.IDB, pcapng.SPB, 0xDEAD]), 12, 12))
            continue
        caplen = rng.randrange(0, 120)
        length = 32 + (caplen + 3) // 4 * 4 + rng.choice([0, 0, 0, 8, 12])
        said = rng.choice([rng.randrange(0, 200), rng.randrange(0, 1 << 32), length]) if rng.random() < rate else caplen
        iface = rng.choice([2, 5, rng.randrange(0, 1 << 32)]) if rng.random() < rate else rng.choice([0, 0, 1])
        words = [pcapng.EPB, length, iface, rng.randrange(0, 1 << 32), rng.randrange(0, 1 << 32), said,
                 caplen + rng.randrange(0, 100)]
        body = struct.pack(order + "7I", *words) + bytes(length - 32)
        tail = rng.randrange(0, 1 << 32) if rng.random() < rate else length
        if rng.random() < rate:  # the leading length lies
            body = body[:4] + struct.pack(order + "I", rng.choice([0, 13, 31, length + 2, length + 64])) + body[8:]
        parts.append(body + struct.pack(order + "I", tail))
    data = b"".join(parts)
    return data[: rng.randrange(0, len(data) + 1)] if rng.random() < 0.3 else data


@pytest.mark.parametrize("big", [False, True])
def test_pcapng_walks_agree(compiled: ModuleType, big: bool) -> None:
    """The walk of packet blocks in C gives what the Python walk gives: how many, where it stopped, the first damaged
    one, the largest interface, and every row's fields up to where it stopped."""
    rng = random.Random(120 + big)
    for _ in range(600):
        data = np.frombuffer(rng.choice([damaged_pcapng_bytes, pcapng_bytes])(rng, big), dtype=np.uint8)
        end = rng.choice([len(data), rng.randrange(0, len(data) + 1)])
        limit = rng.choice([1, 3, 64])
        ours, theirs = packet_outputs(limit), packet_outputs(limit)
        got = compiled.pcapng_packets(data, 0, end, limit, big, wire_pcap.MAX_CAPLEN, *ours)
        want = walk.python_pcapng_packets(data, 0, end, limit, big, wire_pcap.MAX_CAPLEN, *theirs)
        assert got == want, (data.tobytes().hex(), end, limit)
        for a, b in zip(ours, theirs):
            assert (a[: got[0]] == b[: got[0]]).all(), (data.tobytes().hex(), end, limit)


@pytest.mark.parametrize("big", [False, True])
def test_pcapng_walk_checks_as_the_reader_does(compiled: ModuleType, big: bool) -> None:
    """The walk's check of each packet block is the reader's numpy check (`_check_numpy`, which also says why a block
    is bad) with the interfaces left out: the same first bad block and, before it, the same packet fields."""
    from cniscope.sources.pcapng import _check_numpy

    rng = random.Random(1200 + big)
    for _ in range(600):
        data = np.frombuffer(damaged_pcapng_bytes(rng, big), dtype=np.uint8)
        outs = packet_outputs(64)
        n, _, bad, top = compiled.pcapng_packets(data, 0, len(data), 64, big, wire_pcap.MAX_CAPLEN, *outs)
        if not n:
            assert (bad, top) == (-1, -1)
            continue
        blocks = outs[0][:n] - 28
        fields = np.zeros((n, 8), dtype=np.uint32)
        for row, at in zip(fields, blocks.tolist()):
            walk.header_words(data, at, len(data), big, row)
        good, *theirs, _ = _check_numpy(blocks, fields, len(data), 1 << 33, 0, big)
        assert (bad if bad >= 0 else n) == good, data.tobytes().hex()
        assert top == int(fields[:, 2].max())
        for ours, expected in zip(outs, theirs):
            assert (ours[:good] == expected[:good]).all(), data.tobytes().hex()
        assert (outs[6][:good] == fields[:good, 1]).all()
    assert walk.EPB == pcapng.EPB  # the walk's own (it cannot import wire.pcapng)


def test_walk_refuses_a_short_output(compiled: ModuleType) -> None:
    data = np.zeros(100, dtype=np.uint8)
    with pytest.raises(ValueError, match="fewer than limit"):
        compiled.pcap_records(data, 24, 100, 100, 8, False, np.empty(4, np.int64))
    with pytest.raises(ValueError, match="limit records"):
        compiled.pcap_packets(data, 24, 100, 100, 8, False, True, wire_pcap.MAX_CAPLEN, *record_outputs(8)[:3],
                              np.empty(4, np.int64))
    for absurd in (1 << 62, -1):  # no room is computed past the integers' range
        with pytest.raises(ValueError, match="fewer than limit"):
            compiled.pcap_records(data, 24, 100, 100, absurd, False, np.empty(8, np.int64))
        with pytest.raises(ValueError, match="limit records"):
            compiled.pcap_packets(data, 24, 100, 100, absurd, False, True, wire_pcap.MAX_CAPLEN, *record_outputs(8))
        with pytest.raises(ValueError, match="limit blocks"):
            compiled.pcapng_packets(data, 0, 100, absurd, False, wire_pcap.MAX_CAPLEN, *packet_outputs(8))
    short = (*packet_outputs(8)[:6], np.empty(4, np.uint32))
    with pytest.raises(ValueError, match="limit blocks"):
        compiled.pcapng_packets(data, 0, 100, 8, False, wire_pcap.MAX_CAPLEN, *short)


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


def _faults_reading(view: np.ndarray) -> int:
    """Page faults taken reading a byte of each page of `view`."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    int(view[::mmap.PAGESIZE].sum())
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_populate_maps_a_files_pages_in_before_they_are_read(compiled: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "capture"
    path.write_bytes(bytes(range(256)) * (16 << 12))  # 16 MB: 4,096 pages, at least 256 faults read unpopulated
    with path.open("rb") as file:
        faults = []
        for populated in (False, True):
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            if populated:
                compiled.populate(mapped, 0, len(mapped))
            view = np.frombuffer(mapped, dtype=np.uint8)
            faults.append(_faults_reading(view))
            del view
            mapped.close()
    assert faults[1] * 8 < faults[0], faults
