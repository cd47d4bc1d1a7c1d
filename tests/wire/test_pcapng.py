"""The pcapng writer and the SLL2 converter (wire/pcapng.py, wire/convert.py), checked by reading their files back with
tshark (the reference reader)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from cniscope.packets.schema import Direction, LinkType
from cniscope.wire.convert import Interface, MergedCapture, sll2_pcap_to_pcapng
from cniscope.wire.pcapng import PcapngWriter

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


def udp_frame(src_mac: bytes, payload: bytes) -> bytes:
    """An Ethernet + IPv4 + UDP frame 10.0.0.1:1000 -> 10.0.0.2:2000 (checksums zero)."""
    udp = struct.pack(">HHHH", 1000, 2000, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return b"\xff" * 6 + src_mac + b"\x08\x00" + ip + udp


def sll2_frame(ifindex: int, pkttype: int, src_mac: bytes, payload: bytes) -> bytes:
    ip_part = udp_frame(src_mac, payload)[14:]
    header = struct.pack(">HHIHBB8s", 0x0800, 0, ifindex, 1, pkttype, 6, src_mac + b"\0\0")
    return header + ip_part


def pcap_file(linktype: int, frames: list[tuple[int, bytes]], nanos: bool = True) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B23C4D if nanos else 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for ts_ns, data in frames:
        frac = ts_ns % 1_000_000_000 if nanos else (ts_ns % 1_000_000_000) // 1000
        out.append(struct.pack("<IIII", ts_ns // 1_000_000_000, frac, len(data), len(data)) + data)
    return b"".join(out)


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for field in fields:
        args += ["-e", field]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("|") for line in done.stdout.splitlines()]


@needs_tshark
def test_tshark_reads_names_comments_direction_and_ns_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "two.pcapng"
    ts = 1_700_000_000_123_456_789
    with PcapngWriter(str(path)) as writer:
        writer.section(node="node1", hardware="node1")
        eth0 = writer.interface("eth0", LinkType.ETHERNET, 65535, description="uplink", mac="02:00:00:00:00:01", ipv4=["10.0.0.1/24"])
        veth = writer.interface("veth1a2b3c4d", LinkType.ETHERNET, 65535)
        writer.packet(eth0, ts, udp_frame(b"\x02\0\0\0\0\x01", b"a"), direction=Direction.OUT, comment="first hop")
        writer.packet(veth, ts + 5, udp_frame(b"\x02\0\0\0\0\x01", b"bb"), direction=Direction.IN)
        cni = writer.interface("cni0", LinkType.ETHERNET, 65535)
        writer.packet(cni, ts + 10, udp_frame(b"\x02\0\0\0\0\x02", b"ccc"), wirelen=100, comment="third")
    rows = tshark_fields(
        path, "frame.interface_name", "frame.comment", "frame.p2p_dir", "frame.time_epoch", "frame.len", "frame.cap_len", "udp.length"
    )
    assert [r[0] for r in rows] == ["eth0", "veth1a2b3c4d", "cni0"]
    assert [r[1] for r in rows] == ["first hop", "", "third"]
    assert rows[0][3] == "1700000000.123456789"
    assert rows[1][3] == "1700000000.123456794"
    assert [r[6] for r in rows] == ["9", "10", "11"]
    assert rows[2][4] == "100" and rows[2][5] == str(14 + 20 + 8 + 3)
    flags = tshark_fields(path, "frame.packet_flags_direction")
    assert [int(f[0], 16) if f[0] else None for f in flags] == [2, 1, None]
    described = tshark_fields(path, "frame.interface_description")
    assert described[0] == ["uplink"]


@needs_tshark
def test_sll2_conversion_names_every_interface_by_the_node_table(tmp_path: Path) -> None:
    mac = b"\x02\0\0\0\0\x09"
    frames = [
        (1_000_000_000_000_000_001, sll2_frame(2, 0, mac, b"x")),  # eth0 In
        (1_000_000_000_000_000_002, sll2_frame(5, 4, mac, b"xy")),  # kube-bridge Out
        (1_000_000_000_000_000_003, sll2_frame(7, 4, mac, b"xyz")),  # veth Out
        (1_000_000_000_000_000_004, sll2_frame(42, 1, mac, b"q")),  # gone interface, broadcast
    ]
    table = [
        Interface(1, "lo", mtu=65536),
        Interface(2, "eth0", kind="veth", mac="02:00:00:00:00:09", mtu=1500, ipv4=("192.168.0.3/24",), peer_index=9),
        Interface(5, "kube-bridge", kind="bridge", mtu=1500),
        Interface(7, "veth0a1b2c3d", kind="veth", master="kube-bridge", peer_index=2),
    ]
    path = tmp_path / "node3.pcapng"
    with PcapngWriter(str(path)) as writer:
        result = sll2_pcap_to_pcapng(pcap_file(LinkType.LINUX_SLL2, frames), writer, "node3", table)
    assert result.packets == 4 and result.damage is None
    assert result.unknown_ifindex == (42,)
    rows = tshark_fields(path, "frame.interface_name", "sll.ifindex", "sll.pkttype", "frame.time_epoch", "udp.length")
    assert [r[0] for r in rows] == ["eth0", "kube-bridge", "veth0a1b2c3d", "ifindex42"]
    assert [r[1] for r in rows] == ["2", "5", "7", "42"]
    assert [r[2] for r in rows] == ["0", "4", "4", "1"]
    assert rows[2][3] == "1000000000.000000003"
    assert [r[4] for r in rows] == ["9", "10", "11", "9"]
    directions = [int(r[0], 16) for r in tshark_fields(path, "frame.packet_flags_direction")]
    assert directions == [1, 2, 2, 1]
    # every table entry is an interface block, packets or not: the section records the node's interfaces
    info = subprocess.run(["capinfos", "-I", str(path)], capture_output=True, text=True, timeout=60)
    if info.returncode == 0:
        for name in ("lo", "eth0", "kube-bridge", "veth0a1b2c3d", "ifindex42"):
            assert f"Name = {name}\n" in info.stdout


@needs_tshark
def test_sections_carry_the_node_comment(tmp_path: Path) -> None:
    """One section per node; tshark numbers the sections and shows each SHB comment.

    (tshark 4.0 maps interface ids of later sections onto the first section's
    interfaces, so names are checked on single-section files above.)
    """
    path = tmp_path / "merged.pcapng"
    with PcapngWriter(str(path)) as writer:
        for node in ("node1", "node2"):
            writer.section(node=node)
            iface = writer.interface("eth0", LinkType.ETHERNET, 65535)
            writer.packet(iface, 1, udp_frame(b"\x02" * 6, node.encode()))
    assert [r[0] for r in tshark_fields(path, "frame.section_number")] == ["1", "2"]
    info = subprocess.run(["capinfos", str(path)], capture_output=True, text=True, timeout=60)
    assert info.stdout.count("node=node1") == 1 and info.stdout.count("node=node2") == 1


def test_damaged_pcap_keeps_the_frames_before_the_damage(tmp_path: Path) -> None:
    frames = [(10**18 + i, sll2_frame(2, 0, b"\x02" * 6, b"p" * i)) for i in range(3)]
    whole = pcap_file(LinkType.LINUX_SLL2, frames, nanos=False)
    cut = whole[:-5]
    path = tmp_path / "cut.pcapng"
    with PcapngWriter(str(path)) as writer:
        result = sll2_pcap_to_pcapng(cut, writer, "n", [Interface(2, "eth0")])
    assert result.packets == 2
    assert result.damage is not None and result.damage.startswith(f"byte {len(whole) - len(frames[2][1]) - 16}:")
    assert path.stat().st_size > 0


def test_not_a_pcap_is_reported_not_raised(tmp_path: Path) -> None:
    with PcapngWriter(str(tmp_path / "x.pcapng")) as writer:
        result = sll2_pcap_to_pcapng(b"garbage" * 10, writer, "n", [])
    assert result.packets == 0 and result.damage is not None and "not a pcap" in result.damage


def test_block_lengths_are_consistent(tmp_path: Path) -> None:
    """Walk the blocks: each starts and ends with the same length, 4-byte aligned."""
    path = tmp_path / "walk.pcapng"
    with PcapngWriter(str(path)) as writer:
        writer.section(node="a", comment="extra")
        iface = writer.interface("e", LinkType.RAW, 0)
        for size in range(7):
            writer.packet(iface, size, b"\x45" * size, comment="c" * size)
    data = path.read_bytes()
    offset, types = 0, []
    while offset < len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        assert length % 4 == 0
        assert struct.unpack_from("<I", data, offset + length - 4)[0] == length
        types.append(block_type)
        offset += length
    assert offset == len(data)
    assert types == [0x0A0D0D0A, 1] + [6] * 7


def test_packet_needs_a_known_interface(tmp_path: Path) -> None:
    with PcapngWriter(str(tmp_path / "y.pcapng")) as writer:
        with pytest.raises(ValueError):
            writer.interface("e", 1)
        writer.section(node="a")
        with pytest.raises(ValueError):
            writer.packet(0, 0, b"")


def blocks_of(data: bytes, block_type: int) -> list[bytes]:
    out, offset = [], 0
    while offset < len(data):
        kind, length = struct.unpack_from("<II", data, offset)
        if kind == block_type:
            out.append(data[offset : offset + length])
        offset += length
    return out


def idb_name(block: bytes) -> str:
    offset = 16  # type, length, linktype, reserved, snaplen
    while offset + 4 <= len(block) - 4:
        code, length = struct.unpack_from("<HH", block, offset)
        if code == 2:
            return block[offset + 4 : offset + 4 + length].decode()
        offset += 4 + length + (-length) % 4
    raise AssertionError("interface block without a name")


@pytest.mark.parametrize("chunk", [64, 1 << 20])
def test_array_conversion_writes_the_same_blocks_as_packet(tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The converter's array path against the one-packet-at-a-time writer: identical packet blocks."""
    import cniscope.wire.convert as module

    monkeypatch.setattr(module, "CHUNK_BYTES", chunk)
    mac = b"\x02\0\0\0\0\x07"
    frames = [(1_650_000_000_000_000_000 + 7 * i, sll2_frame([2, 3, 42][i % 3], i % 6, mac, b"z" * i)) for i in range(40)]
    frames.append((1_650_000_000_000_001_000, b"\x08\x00short"))  # shorter than an SLL2 header
    table = [Interface(2, "eth0"), Interface(3, "cni0")]
    converted = tmp_path / "converted.pcapng"
    with PcapngWriter(str(converted)) as writer:
        result = sll2_pcap_to_pcapng(pcap_file(LinkType.LINUX_SLL2, frames), writer, "n", table)
    assert result.packets == 41 and sorted(result.unknown_ifindex) == [0, 42]
    names = [idb_name(block) for block in blocks_of(converted.read_bytes(), 1)]
    assert names == ["eth0", "cni0", "ifindex0", "ifindex42"] or names == ["eth0", "cni0", "ifindex42", "ifindex0"]
    by_index = {2: "eth0", 3: "cni0", 0: "ifindex0", 42: "ifindex42"}
    reference = tmp_path / "reference.pcapng"
    with PcapngWriter(str(reference)) as writer:
        writer.section(node="n")
        ids = {name: writer.interface(name, LinkType.LINUX_SLL2, 65535) for name in names}
        for ts, data in frames:
            whole = len(data) >= 20
            index = int.from_bytes(data[4:8], "big") if whole else 0
            pkttype = data[10] if whole and data[10] < 5 else None
            writer.packet(ids[by_index[index]], ts, data, direction=pkttype)
    assert blocks_of(converted.read_bytes(), 6) == blocks_of(reference.read_bytes(), 6)


@needs_tshark
def test_conversion_merges_every_node_into_one_section_in_time_order(tmp_path: Path) -> None:
    """Per node a section of its own file, and every node's packets in one merged section, in time order:
    interface ids after the other nodes', the node at the head of each interface's description."""
    from cniscope.ingest import read
    from cniscope.sources import InputSpec

    tables = {"node1": [Interface(2, "eth0"), Interface(5, "cni0")], "node2": [Interface(2, "eth0"), Interface(7, "flannel.1")]}
    frames = {"node1": [(10**18, sll2_frame(5, 0, b"\x02" * 6, b"a")), (10**18 + 40, sll2_frame(2, 4, b"\x02" * 6, b"a"))],
              "node2": [(10**18 + 30, sll2_frame(2, 0, b"\x04" * 6, b"b")), (10**18 + 40, sll2_frame(7, 0, b"\x04" * 6, b"b")),
                        (10**18 + 50, sll2_frame(9, 0, b"\x04" * 6, b"c"))]}  # ifindex 9: not in the table
    merged_path = tmp_path / "merged.pcapng"
    merged = MergedCapture(str(merged_path), "two nodes")
    for node, table in tables.items():
        with PcapngWriter(str(tmp_path / f"{node}.pcapng")) as writer:
            sll2_pcap_to_pcapng(pcap_file(LinkType.LINUX_SLL2, frames[node]), writer, node, table, merged=merged)
    merged.finish()
    rows = tshark_fields(merged_path, "frame.section_number", "frame.interface_name", "frame.interface_description",
                         "frame.time_epoch")
    assert {r[0] for r in rows} == {"1"}
    # time order; at the same nanosecond (40) the first node first
    assert [(r[2].split(";")[0], r[1]) for r in rows] == [("node=node1", "cni0"), ("node=node2", "eth0"), ("node=node1", "eth0"),
                                                          ("node=node2", "flannel.1"), ("node=node2", "ifindex9")]
    assert rows[2][2] == "node=node1; ifindex 2"
    separate = read([InputSpec(str(tmp_path / f"{node}.pcapng")) for node in tables]).table.sort("ts", "input", maintain_order=True)
    together = read([InputSpec(str(merged_path))]).table
    columns = ["node", "iface", "direction", "ts", "payload_digest"]
    assert together.select(columns).equals(separate.select(columns))
