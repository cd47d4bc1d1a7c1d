"""The record walk in C gives what the Python walk gives, on sound and damaged bytes of both byte orders.

The C source in the tree is compiled here (with the compiler `make install` brings), whether or not the
installed package carries a build of it, so that what is tested is what the tree holds.
"""

from __future__ import annotations

import importlib.util
import random
import struct
import subprocess
import sysconfig
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cniscope import journeys
from cniscope.wire import pcap as wire_pcap
from cniscope.wire import pcapng, walk

SOURCE = Path(walk.__file__).with_name("_walk.c")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    target = tmp_path_factory.mktemp("walk") / f"_walk{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", str(SOURCE), "-o",
                    str(target)], check=True)
    spec = importlib.util.spec_from_file_location("_walk", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.mark.parametrize("big", [False, True])
def test_pcapng_walks_agree(compiled: ModuleType, big: bool) -> None:
    rng = random.Random(120 + big)
    for _ in range(400):
        data = np.frombuffer(pcapng_bytes(rng, big), dtype=np.uint8)
        end = rng.randrange(0, len(data) + 1)
        limit = rng.choice([1, 3, 64])
        ours, theirs = np.full(limit, -1, np.int64), np.full(limit, -1, np.int64)
        got = compiled.pcapng_packets(data, 0, end, limit, big, pcapng.EPB, ours)
        want = walk.python_pcapng_packets(data, 0, end, limit, big, pcapng.EPB, theirs)
        assert got == want and (ours == theirs).all(), (data.tobytes().hex(), end, limit)


def test_walk_refuses_a_short_output(compiled: ModuleType) -> None:
    data = np.zeros(100, dtype=np.uint8)
    with pytest.raises(ValueError, match="fewer than limit"):
        compiled.pcap_records(data, 24, 100, 100, 8, False, np.empty(4, np.int64))


def keys(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """uint64 keys: fingerprints (random), fingerprints seen a few times each, one key, small numbers (most digits the
    same in every key: passes skipped), numbers at the ends of the range."""
    if kind == "random":
        return rng.integers(0, 2**64, n, dtype=np.uint64)
    if kind == "repeated":
        distinct = rng.integers(0, 2**64, max(n // 3, 1), dtype=np.uint64)
        return distinct[rng.integers(0, len(distinct), n)]
    if kind == "one":
        return np.full(n, 0x0123456789ABCDEF, dtype=np.uint64)
    if kind == "small":
        return rng.integers(0, 3000, n).astype(np.uint64)
    ends = np.array([0, 1, 2**64 - 1, 2**64 - 2, 2**63, 2**63 - 1, 2**32, 2**32 - 1], dtype=np.uint64)
    return ends[rng.integers(0, len(ends), n)]


KINDS = ["random", "repeated", "one", "small", "ends"]


@pytest.mark.parametrize("kind", KINDS)
def test_argsort_keys_is_numpys_stable_argsort(compiled: ModuleType, kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    for n in (0, 1, 2, 17, 5000, 70_000):
        key = keys(rng, n, kind)
        perm, ordered = np.full(n, 7, np.uint32), np.zeros(n, np.uint64)
        compiled.argsort_keys(key, perm, ordered)
        want_perm, want_ordered = np.zeros(n, np.uint32), np.zeros(n, np.uint64)
        journeys.python_argsort_keys(key, want_perm, want_ordered)
        assert (perm == want_perm).all() and (ordered == want_ordered).all() and (perm == np.argsort(key, kind="stable")).all()


@pytest.mark.parametrize("kind", KINDS)
def test_partitions_are_numpys(compiled: ModuleType, kind: str) -> None:
    """Each key's partition is the key modulo the count (a remainder computed without dividing, in C): the same
    sizes and places as numpy's, block after block, for counts of every size."""
    rng = np.random.default_rng(10 + len(kind))
    key = np.concatenate([keys(rng, 3000, kind), keys(rng, 3000, "ends")])
    for count in (*range(1, 70), 255, 256, 1000, 65535, 65536, 65537, 1_000_003):
        sizes, want_sizes = np.zeros(count, np.int64), np.zeros(count, np.int64)
        blocks = [(0, key[:2500]), (2500, key[2500:])]
        for _, block in blocks:
            compiled.partition_sizes(block, sizes)
            journeys.python_partition_sizes(block, want_sizes)
        assert (sizes == want_sizes).all() and sizes.sum() == len(key)
        at = np.cumsum(sizes) - sizes
        want_at = at.copy()
        positions, want_positions = np.zeros(len(key), np.uint32), np.zeros(len(key), np.uint32)
        for start, block in blocks:
            compiled.partition_place(block, start, at, positions)
            journeys.python_partition_place(block, start, want_at, want_positions)
        assert (positions == want_positions).all() and (at == want_at).all(), count
        assert (positions == np.argsort(key % np.uint64(count), kind="stable")).all()
        for dtype in (np.uint8, np.uint16, np.uint32, np.int64):  # a column put in the same order
            values = rng.integers(0, 100, len(key)).astype(dtype)
            at, out = np.cumsum(sizes) - sizes, np.zeros(len(key), dtype)
            for start, block in blocks:
                compiled.partition_scatter(block, at, values[start:start + len(block)], out)
            assert (out == values[positions]).all() and (at == want_at).all()


def test_a_place_outside_the_positions_is_refused(compiled: ModuleType) -> None:
    with pytest.raises(ValueError, match="outside"):
        compiled.partition_place(np.arange(10, dtype=np.uint64), 0, np.full(3, 3, np.int64), np.zeros(5, np.uint32))
    with pytest.raises(ValueError, match="outside"):
        compiled.partition_scatter(np.arange(10, dtype=np.uint64), np.full(3, 3, np.int64), np.arange(10), np.zeros(5))
    with pytest.raises(ValueError, match="bytes a key"):
        compiled.partition_scatter(np.arange(10, dtype=np.uint64), np.zeros(3, np.int64), np.zeros(10, "V3"), np.zeros(30))


def test_a_partitions_journeys_are_put_in_place_as_numpy_puts_them(compiled: ModuleType) -> None:
    rng = np.random.default_rng(6)
    rows, n, journeys_ = 100_000, 5000, 1200
    idx = np.sort(rng.choice(rows, n, replace=False)).astype(np.uint32)  # the partition's rows
    perm = rng.permutation(n).astype(np.uint32)  # hop order -> the partition's row
    firsts = np.sort(rng.choice(rows, journeys_, replace=False)).astype(np.uint32)
    journey = rng.integers(0, journeys_, n).astype(np.uint32)
    hop = rng.integers(0, 9, n).astype(np.uint32)
    got = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    want = [np.full(rows, 7, np.uint32), np.full(rows, 7, np.uint32)]
    compiled.merge_put(perm, idx, firsts, journey, hop, *got)
    journeys.python_merge_put(perm, idx, firsts, journey, hop, *want)
    assert (got[0] == want[0]).all() and (got[1] == want[1]).all() and (got[0] != 7).sum() == n
    with pytest.raises(ValueError, match="outside"):
        compiled.merge_put(perm, idx, firsts, journey + np.uint32(journeys_), hop, *got)
    with pytest.raises(ValueError, match="outside"):
        compiled.merge_put(perm, idx, firsts, journey, hop, np.zeros(10, np.uint32), np.zeros(10, np.uint32))


def test_journeys_are_ranked_by_first_row_as_numpy_ranks_them(compiled: ModuleType) -> None:
    rng = np.random.default_rng(4)
    rows = 3_000_000  # blocks of `RANK_BLOCK` rows in numpy: journeys cross them
    label = rng.integers(0, rows // 3, rows)
    first_row = np.full(rows // 3, rows, np.int64)
    np.minimum.at(first_row, label, np.arange(rows))
    journey = first_row[label].astype(np.uint32)  # each sighting's journey by its first row: what `Merge` gives
    first = journey == np.arange(rows, dtype=np.uint32)
    want = journey.copy()
    journeys.python_rank_firsts(want)
    compiled.rank_firsts(journey)
    assert (journey == want).all() and journey.max() == np.count_nonzero(first) - 1
    with pytest.raises(ValueError, match="first row after"):
        compiled.rank_firsts(np.array([0, 2, 1], np.uint32))



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
