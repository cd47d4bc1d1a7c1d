"""The pcapng reader: sections, interfaces, packet blocks, options, damage."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from cniscope.ingest import read
from cniscope.packets.frames import FrameBatch
from cniscope.packets.schema import Direction
from cniscope.sources import InputInfo, InputSpec, pcapng
from cniscope.wire import pcapng as pcapng_file
from cniscope.wire import walk
from cniscope.wire.pcapng import PcapngWriter
from tests.frames import write_pcapng
from tests.paths import CORPUS
from tests.sources.pcapng_blocks import block, epb, idb, shb, spb


def read_all(data: bytes, batch_size: int = 65536) -> tuple[list[FrameBatch], InputInfo, dict[int, str]]:
    info = InputInfo(index=0, name="x.pcapng")
    reader = pcapng.Reader(memoryview(data), info, batch_size)
    return list(reader.batches()), info, reader.comments


def col(batches: list[FrameBatch], name: str) -> list[int]:
    return [v for b in batches for v in getattr(b, name).tolist()]


def names(batches: list[FrameBatch], kind: str) -> list[str | None]:
    return [(getattr(b, kind + "_names")[i] if i >= 0 else None) for b in batches for i in getattr(b, kind).tolist()]


def frames_of(batches: list[FrameBatch]) -> list[bytes]:
    return [bytes(b.data[o:o + c]) for b in batches for o, c in zip(b.offset.tolist(), b.caplen.tolist(), strict=True)]


F = [bytes([i]) * (30 + i) for i in range(10)]


@pytest.fixture(params=["compiled", "python"])
def walked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The reader over the walk of packet blocks in C (where built) and over its Python stand-in: the same batches
    and damage."""
    if request.param == "python":
        monkeypatch.setattr(walk, "pcapng_packets", walk.python_pcapng_packets)
    elif not walk.COMPILED:
        pytest.skip("cniscope.wire._walk is not built (no C compiler at install)")
    return str(request.param)


def two_sections() -> bytes:
    """node1 little-endian with 2 interfaces (usec), node2 big-endian with ns and base-2 resolutions."""
    return b"".join([
        shb("<", (1, b"node=node1")),
        idb("<", 276, 0, (2, b"eth0")),
        idb("<", 1, 0, (2, b"kube-bridge")),
        epb("<", 0, 1_000_000, F[0], (2, struct.pack("<I", 1 | 1 << 2))),
        epb("<", 1, 2_000_000, F[1], (2, struct.pack("<I", 2)), (1, b"hello")),
        block("<", 4, struct.pack("<HH", 1, 9) + bytes([10, 0, 0, 1]) + b"node\0" + b"\0" * 7),  # NRB
        block("<", 0x0BAD, b"\1\2\3\4"),  # unknown block
        shb(">", (1, b"some comment"), (1, b"node=node2"), (4, b"tcpdump")),
        idb(">", 1, 0, (2, b"cni0"), (9, bytes([9]))),
        idb(">", 1, 0, (2, b"flannel.1"), (3, b"node=other"), (9, bytes([0x80 | 20])), (14, struct.pack(">q", 10))),
        epb(">", 0, 5_000_000_007, F[2], (2, struct.pack(">I", 1 | 3 << 2))),
        epb(">", 1, 3 << 20, F[3]),
        epb(">", 0, 6_000_000_000, F[4], (2, struct.pack(">I", 1 | 2 << 2))),
        epb(">", 0, 7_000_000_000, F[5], (2, struct.pack(">I", 1 | 4 << 2))),
    ])


def test_sections_interfaces_nodes_and_byte_orders(walked: str) -> None:
    batches, info, comments = read_all(two_sections())
    assert not info.warnings
    assert frames_of(batches) == F[:6]
    assert names(batches, "iface") == ["eth0", "kube-bridge", "cni0", "flannel.1", "cni0", "cni0"]
    assert names(batches, "node") == ["node1", "node1", "node2", "other", "node2", "node2"]
    assert col(batches, "linktype") == [276, 1, 1, 1, 1, 1]
    assert col(batches, "ts") == [1_000_000_000, 2_000_000_000, 5_000_000_007, 13_000_000_000, 6_000_000_000, 7_000_000_000]
    assert col(batches, "direction") == [Direction.IN, Direction.OUT, Direction.BROADCAST, -1,
                                         Direction.MULTICAST, Direction.OTHERHOST]
    assert comments == {1: "hello"}
    assert [b.first_frame for b in batches] == [0, 2]  # a batch never spans two sections


def test_batches_are_bounded(walked: str) -> None:
    batches, info, _ = read_all(two_sections(), batch_size=3)
    assert [len(b.offset) for b in batches] == [2, 3, 1]
    assert [b.first_frame for b in batches] == [0, 2, 5]
    assert frames_of(batches) == F[:6] and not info.warnings


def test_simple_packet_blocks_use_interface_zero_and_clip_to_snaplen(walked: str) -> None:
    data = shb("<") + idb("<", 1, 40, (2, b"eth0")) + spb("<", F[9][:40], 39) + spb("<", F[8][:40], 300)
    batches, info, _ = read_all(data)
    assert col(batches, "caplen") == [39, 40]
    assert col(batches, "wirelen") == [39, 300]
    assert col(batches, "ts") == [pcapng.NO_TS] * 2
    assert names(batches, "iface") == ["eth0", "eth0"] and not info.warnings


def test_obsolete_packet_block_reads_like_epb(walked: str) -> None:
    for o in "<>":
        head = struct.pack(o + "HHIIII", 1, 0, 0, 5_000_000, len(F[2]), 99)
        data = shb(o) + idb(o, 1, 0, (2, b"a")) + idb(o, 1, 0, (2, b"b")) + block(o, 2, head + F[2])
        batches, info, _ = read_all(data)
        assert names(batches, "iface") == ["b"] and col(batches, "wirelen") == [99] and col(batches, "ts") == [5 * 10**9]


def test_writer_convention_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    with PcapngWriter(str(path)) as w:
        w.section(node="node3")
        eth0 = w.interface("eth0", 1)
        veth = w.interface("veth1234", 1)
        w.packet(eth0, 1_700_000_000_000_000_001, F[0], direction=Direction.IN)
        w.packet(veth, 1_700_000_000_000_000_002, F[1], direction=Direction.OUT, comment="c")
    batches, info, comments = read_all(path.read_bytes())
    assert names(batches, "node") == ["node3", "node3"]
    assert names(batches, "iface") == ["eth0", "veth1234"]
    assert col(batches, "ts") == [1_700_000_000_000_000_001, 1_700_000_000_000_000_002]
    assert col(batches, "direction") == [Direction.IN, Direction.OUT]
    assert comments == {1: "c"} and not info.warnings


def epb_start(data: bytes, k: int) -> int:
    """Byte offset of the k-th EPB of `data` (little-endian)."""
    pos, seen = 0, 0
    while True:
        kind, length = struct.unpack_from("<II", data, pos)
        if kind == pcapng_file.EPB:
            if seen == k:
                return pos
            seen += 1
        pos += length


def simple(n: int = 6) -> bytes:
    return shb("<") + idb("<", 1, 0, (2, b"eth0")) + b"".join(epb("<", 0, i, F[i]) for i in range(n))


@pytest.mark.parametrize("damage, message", [
    ("trailing", "block lengths disagree"),
    ("leading", "runs past the end"),
    ("odd", "a multiple of 4"),
    ("iface", "names interface 3"),
    ("caplen", "does not fit its block"),
    ("absurd", "absurd captured length"),
    ("cut", "packet block cut short: 20 bytes left"),
])
def test_damage_keeps_the_packets_before_it(damage: str, message: str, walked: str) -> None:
    data = bytearray(simple())
    at = epb_start(bytes(data), 3)
    length = struct.unpack_from("<I", data, at + 4)[0]
    if damage == "trailing":
        struct.pack_into("<I", data, at + length - 4, length + 4)
    elif damage == "leading":
        struct.pack_into("<I", data, at + 4, 4000)
    elif damage == "odd":
        struct.pack_into("<I", data, at + 4, length + 2)
    elif damage == "iface":
        struct.pack_into("<I", data, at + 8, 3)
    elif damage == "caplen":
        struct.pack_into("<I", data, at + 20, length)
    elif damage == "absurd":
        struct.pack_into("<I", data, at + 20, 1 << 20)
    else:
        del data[at + 20:]
    batches, info, _ = read_all(bytes(data), batch_size=2)
    assert frames_of(batches) == F[:3]
    (warning,) = info.warnings
    assert warning.where == f"byte {at}" and message in warning.message and info.damaged


def test_an_interface_is_described_by_the_end_of_its_packets_batch(walked: str) -> None:
    """A packet's interface is held to those its section describes when its batch ends, as the walk was checked
    before it checked each block as it went: an interface block after the packet but in its batch describes it."""
    data = shb("<") + idb("<", 1, 0) + epb("<", 1, 1, F[0]) + epb("<", 0, 2, F[1]) + idb("<", 1, 0) + epb("<", 1, 3, F[2])
    batches, info, _ = read_all(data, batch_size=8)
    assert frames_of(batches) == F[:3] and col(batches, "iface") == [1, 0, 1] and not info.warnings
    batches, info, _ = read_all(data, batch_size=1)
    (warning,) = info.warnings
    assert frames_of(batches) == [] and "names interface 1, but the section describes 1" in warning.message


def test_garbage_after_valid_data(walked: str) -> None:
    data = simple() + b"\xde\xad" * 9
    batches, info, _ = read_all(data)
    assert frames_of(batches) == F[:6]
    assert info.damaged and info.warnings[0].where == f"byte {len(simple())}"


def test_bad_section_header() -> None:
    data = bytearray(simple())
    data[8:12] = b"\x01\x02\x03\x04"
    batches, info, _ = read_all(bytes(data))
    assert batches == [] and "byte-order magic" in info.warnings[0].message


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(path), "-T", "fields"] + [a for f in fields for a in ("-e", f)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark (apt package tshark)")
def test_fields_match_tshark(tmp_path: Path) -> None:
    # one section per file: tshark 4.0 numbers interfaces across sections wrongly, and lists unknown blocks as frames
    data = two_sections()
    second = data.index(shb(">", (1, b"some comment"), (1, b"node=node2"), (4, b"tcpdump")))
    for part in (data[:second], data[second:]):
        path = tmp_path / "part.pcapng"
        path.write_bytes(part)
        expected = [e for e in tshark_fields(path, "frame.time_epoch", "frame.cap_len", "frame.len", "frame.interface_name")
                    if e[0]]
        batches, info, _ = read_all(path.read_bytes())
        assert [f"{t // 10**9}.{t % 10**9:09d}" for t in col(batches, "ts")] == [e[0] for e in expected]
        assert col(batches, "caplen") == [int(e[1]) for e in expected]
        assert col(batches, "wirelen") == [int(e[2]) for e in expected]
        assert names(batches, "iface") == [e[3] for e in expected]
        assert not info.warnings


@pytest.mark.skipif(shutil.which("editcap") is None, reason="needs editcap (apt package tshark)")
@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.pcap")))
def test_corpus_converted_by_editcap(name: str, tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(CORPUS / name), str(path)], check=True)
    expected = tshark_fields(path, "frame.time_epoch", "frame.cap_len", "frame.len")
    batches, info, _ = read_all(path.read_bytes())
    assert [f"{t // 10**9}.{t % 10**9:09d}" for t in col(batches, "ts")] == [e[0] for e in expected]
    assert col(batches, "wirelen") == [int(e[2]) for e in expected]
    assert not info.warnings


def test_an_unsupported_link_type_is_one_warning_per_interface(tmp_path: Path) -> None:
    frame = b"\x00" * 40
    path = write_pcapng(tmp_path / "u.pcapng", [(0, frame), (1, frame), (0, frame), (1, frame)],
                        interfaces=[("usb0", 220), ("lo0", 0)])
    capture = read([InputSpec(str(path))])
    assert capture.table.height == 4 and capture.table["error"].null_count() == 4
    warned = [str(w) for w in capture.warnings]
    assert len(warned) == 1 and "interface usb0: link type 220 is not one cniscope decodes" in warned[0], warned
    assert not capture.damaged


def with_interface_options(*options: tuple[int, bytes]) -> bytes:
    return shb("<") + idb("<", 1, 0, (2, b"eth0"), *options) + b"".join(epb("<", 0, i << 40, F[i]) for i in range(3))


@pytest.mark.parametrize("option", [(9, bytes([63 | 0x80])), (9, bytes([19])), (9, bytes([0])), (9, bytes([0x80])),
                                    (14, struct.pack("<q", 1 << 32)), (14, struct.pack("<q", -(1 << 32)))])
def test_extreme_but_possible_clocks_are_read(option: tuple[int, bytes]) -> None:
    batches, info, _ = read_all(with_interface_options(option))
    assert frames_of(batches) == F[:3] and not info.warnings
    assert all(-(1 << 63) < t < (1 << 63) for t in col(batches, "ts"))


@pytest.mark.parametrize("exponent", [0, 3, 6, 9, 12, 19])
@pytest.mark.parametrize("offset", [0, 7, -(1 << 32)])
def test_base_ten_clocks_give_exact_nanoseconds(exponent: int, offset: int) -> None:
    """Times in units of 10^-exponent s from an offset in seconds, to the nanosecond (rounded down: finer clocks)."""
    units = [0, 12_345, 1_733_400_000 * 10 ** min(exponent, 9)]
    data = shb("<") + idb("<", 1, 0, (2, b"eth0"), (9, bytes([exponent])), (14, struct.pack("<q", offset)))
    batches, info, _ = read_all(data + b"".join(epb("<", 0, u, F[i]) for i, u in enumerate(units)))
    assert not info.warnings
    assert col(batches, "ts") == [u * 10**9 // 10**exponent + offset * 10**9 for u in units]


@pytest.mark.parametrize(("option", "said"), [
    ((9, bytes([64 | 0x80])), "if_tsresol 2^-64 s is finer than any clock (at most 2^-63)"),
    ((9, bytes([127 | 0x80])), "if_tsresol 2^-127 s"),
    ((9, bytes([20])), "if_tsresol 10^-20 s"),
    ((9, bytes([32])), "if_tsresol 10^-32 s"),
    ((9, bytes([127])), "if_tsresol 10^-127 s"),
    ((14, struct.pack("<q", (1 << 63) - 1)), f"if_tsoffset {(1 << 63) - 1} s is more than"),
    ((14, struct.pack("<q", -(1 << 63))), f"if_tsoffset {-(1 << 63)} s"),
])
def test_impossible_clocks_end_the_walk_naming_the_interface_block(option: tuple[int, bytes], said: str) -> None:
    data = simple(2) + idb("<", 1, 0, (2, b"eth1"), option) + epb("<", 1, 5, F[7])
    batches, info, _ = read_all(data)
    assert frames_of(batches) == F[:2] and info.damaged
    (warning,) = info.warnings
    assert warning.where == f"byte {len(simple(2))}"
    assert warning.message.startswith("interface block 1: ") and said in warning.message
