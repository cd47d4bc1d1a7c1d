"""Opening inputs: format by content, compression, stdin, node tags, bounded batches, unusable inputs."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import sys
from pathlib import Path

import polars as pl
import pytest
import zstandard

from cniscope.errors import InputError
from cniscope.packets.schema import NAMES, Direction, ip4_value
from cniscope.pcapng_writer import PcapngWriter
from cniscope.sources import InputInfo, InputSpec, iter_tables, pcap, read
from cniscope.sources.open import iter_input_batches
from tests.frames import ethernet, ipv4, sll2, tcp
from tests.paths import SEED

TIMES = [1_700_000_000_000_000_000 + i * 1_000_000 for i in range(50)]


def frames(n: int = 50) -> list[bytes]:
    return [sll2(ipv4(tcp(b"x" * i, seq=1000 + i, flags="P."), src="10.244.1.2", dst="10.244.2.3", ip_id=i), pkttype=4)
            for i in range(n)]


def pcap_bytes(n: int = 50) -> bytes:
    return pcap.encode(frames(n), TIMES[:n], 276)


def pcapng_bytes(tmp_path: Path, node: str | None = "node2") -> bytes:
    path = tmp_path / "n.pcapng"
    with PcapngWriter(str(path)) as w:
        w.section(node=node)
        eth0 = w.interface("eth0", 1)
        for i in range(5):
            w.packet(eth0, TIMES[i], ethernet(ipv4(tcp(seq=i))), direction=Direction.OUT,
                     comment="the third" if i == 2 else None)
    return path.read_bytes()


def read_one(path: Path | str, node: str | None = None, batch_size: int = 65536) -> tuple[list[pl.DataFrame], InputInfo]:
    spec = InputSpec(path=str(path), node=node)
    info = InputInfo(index=3, name=spec.path, node=node)
    return list(iter_tables(spec, info, batch_size)), info


def whole(tables: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(tables)


def test_pcap_found_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "capture.txt"
    path.write_bytes(pcap_bytes())
    tables, info = read_one(path)
    table = whole(tables)
    assert info.format == "pcap" and info.packets == 50 and not info.warnings
    assert table.columns == list(NAMES)
    assert table["seq"].to_list() == [1000 + i for i in range(50)]
    assert table["ts"].to_list() == TIMES
    assert set(table["input"].to_list()) == {3}
    assert set(table["src"].to_list()) == {ip4_value("10.244.1.2")}
    assert set(table["direction"].to_list()) == {Direction.OUT}


def test_batches_are_bounded_and_frames_continue(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap_bytes())
    tables, info = read_one(path, batch_size=16)
    assert [t.height for t in tables] == [16, 16, 16, 2]
    assert whole(tables)["frame"].to_list() == list(range(50))


def test_pcapng_node_interface_comment_and_tag(tmp_path: Path) -> None:
    path = tmp_path / "n.bin"
    path.write_bytes(pcapng_bytes(tmp_path))
    table = whole(read_one(path, node="tagged")[0])
    assert table["node"].to_list() == ["node2"] * 5  # the file names its node: it wins over the tag
    assert table["iface"].to_list() == ["eth0"] * 5
    assert table["info"].to_list() == [None, None, "the third", None, None]
    path.write_bytes(pcapng_bytes(tmp_path, node=None))
    assert whole(read_one(path, node="tagged")[0])["node"].to_list() == ["tagged"] * 5


def test_pcap_rows_take_the_tag(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap_bytes(3))
    assert whole(read_one(path, node="node3")[0])["node"].to_list() == ["node3"] * 3
    assert whole(read_one(path)[0])["node"].to_list() == [None] * 3


COMPRESSORS = {
    "gzip": gzip.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "xz": lzma.compress,
    "bzip2": bz2.compress,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_inputs_read_like_plain_ones(kind: str, tmp_path: Path) -> None:
    plain = tmp_path / "plain.pcap"
    plain.write_bytes(pcap_bytes())
    packed = tmp_path / "packed.pcap"  # the name says nothing of the compression
    packed.write_bytes(COMPRESSORS[kind](pcap_bytes()))
    tables, info = read_one(packed)
    assert info.format == "pcap" and not info.warnings
    assert whole(tables).equals(whole(read_one(plain)[0]))


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    data = pcap_bytes()
    path = tmp_path / "two.gz"
    path.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    tables, info = read_one(path)
    assert info.packets == 50 and not info.warnings


def test_text_compressed_and_plain(tmp_path: Path) -> None:
    path = tmp_path / "seed.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(SEED.read_bytes()))
    tables, info = read_one(path, node="node3")
    plain, plain_info = read_one(SEED, node="node3")
    assert info.format == "text" and info.packets == plain_info.packets > 0
    table = whole(tables)
    assert table.equals(whole(plain))
    assert set(table["node"].to_list()) == {"node3"} and set(table["input"].to_list()) == {3}


def test_cut_gzip_keeps_the_packets_decompressed_before(tmp_path: Path) -> None:
    packed = gzip.compress(pcap_bytes(), compresslevel=1)
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    tables, info = read_one(path)
    assert 0 < info.packets < 50
    assert whole(tables)["seq"].to_list() == [1000 + i for i in range(info.packets)]
    assert info.damaged
    assert info.warnings[0].where == f"byte {len(packed) * 2 // 3}" and "gzip data cut short" in info.warnings[0].message


def test_garbage_inside_zstd(tmp_path: Path) -> None:
    packed = bytearray(zstandard.ZstdCompressor(level=1).compress(pcap_bytes()))
    packed[len(packed) // 2:] = b"\xff" * (len(packed) - len(packed) // 2)
    path = tmp_path / "bad.zst"
    path.write_bytes(bytes(packed))
    tables, info = read_one(path)
    assert info.damaged and "zstd data damaged" in info.warnings[0].message
    assert info.packets < 50


@pytest.mark.parametrize("kind", ["pcap", "text", "gzip-pcap"])
def test_standard_input(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"pcap": pcap_bytes(), "text": SEED.read_bytes(), "gzip-pcap": gzip.compress(pcap_bytes())}[kind]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    capture = read([InputSpec.parse("node9=-")])
    assert capture.inputs[0].packets == capture.table.height > 0
    assert set(capture.table["node"].to_list()) == {"node9"}
    assert not capture.warnings


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.pcap: cannot read it: No such file"):
        read_one(tmp_path / "missing.pcap")
    with pytest.raises(InputError, match="is a directory"):
        read_one(tmp_path)


@pytest.mark.parametrize("content, where, message", [
    (b"", "", "empty input"),
    (gzip.compress(b""), "", "empty input"),
    (bytes(range(256)) * 4, "byte 0", "not a capture: starts with 00 01 02 03"),
])
def test_unusable_content_is_a_warning(content: bytes, where: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(content)
    tables, info = read_one(path)
    assert tables == [] and info.packets == 0 and info.damaged
    assert info.warnings[0].where == where and message in info.warnings[0].message


def test_damaged_pcap_through_open(tmp_path: Path) -> None:
    data = pcap_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:-7])
    tables, info = read_one(path)
    assert info.packets == 49 and info.damaged
    assert "packet cut short" in info.warnings[0].message


def test_simple_packet_blocks_have_null_time(tmp_path: Path) -> None:
    import struct

    frame = ethernet(ipv4(tcp(seq=5)))
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20)
    body = struct.pack("<I", len(frame)) + frame + b"\0" * (-len(frame) % 4)
    spb = struct.pack("<II", 3, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    path = tmp_path / "spb.pcapng"
    path.write_bytes(shb + idb + spb)
    table = whole(read_one(path)[0])
    assert table["ts"].to_list() == [None] and table["seq"].to_list() == [5]


def test_text_saved_as_utf16_by_a_windows_shell(tmp_path: Path) -> None:
    path = tmp_path / "paste.txt"
    path.write_bytes(SEED.read_text().replace("\n", "\r\n").encode("utf-16"))
    tables, info = read_one(path)
    plain, _ = read_one(SEED)
    assert info.format == "text" and info.packets > 0 and not info.warnings
    assert whole(tables).drop("input").equals(whole(plain).drop("input"))


def test_undecoded_batches_for_writers(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(pcap_bytes()))
    info = InputInfo(index=0, name=str(path))
    batches = list(iter_input_batches(InputSpec(str(path)), info, batch_size=20))
    assert [b.first_frame for b in batches] == [0, 20, 40]
    assert sum(len(b.offset) for b in batches) == 50 and not info.warnings
    assert list(iter_input_batches(InputSpec(str(SEED)), info)) == []


def test_named_pipe_is_spooled_not_mapped(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(pcap_bytes(),))
    writer.start()
    try:
        tables, info = read_one(fifo)
    finally:
        writer.join(timeout=10)
    assert info.format == "pcap" and info.packets == 50 and not info.warnings
