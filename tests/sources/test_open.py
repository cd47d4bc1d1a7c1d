"""Opening inputs: format by content, compression, stdin, node tags, bounded batches, unusable inputs."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
import zstandard

from cniscope.errors import InputError
from cniscope.ingest import iter_tables, read
from cniscope.packets.schema import NAMES, Direction, ip4_value
from cniscope.sources import InputInfo, InputSpec
from cniscope.sources import open as open_module
from cniscope.wire import pcap as pcap_file
from cniscope.wire.pcapng import PcapngWriter
from tests.frames import ethernet, ipv4, sll2, tcp
from tests.paths import SEED

TIMES = [1_700_000_000_000_000_000 + i * 1_000_000 for i in range(50)]


def frames(n: int = 50) -> list[bytes]:
    return [sll2(ipv4(tcp(b"x" * i, seq=1000 + i, flags="P."), src="10.244.1.2", dst="10.244.2.3", ip_id=i), pkttype=4)
            for i in range(n)]


def pcap_bytes(n: int = 50) -> bytes:
    return pcap_file.encode(frames(n), TIMES[:n], 276)


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


def test_pcapng_comments_stay_on_their_packets_when_batches_decode_ahead(tmp_path: Path) -> None:
    path = tmp_path / "n.pcapng"
    path.write_bytes(pcapng_bytes(tmp_path))
    tables = read_one(path, batch_size=1)[0]  # the reader walks two batches ahead of the one being finished
    assert len(tables) == 5
    assert whole(tables)["info"].to_list() == [None, None, "the third", None, None]


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


# --- hostile inputs: bombs, long lines, nesting ---------------------------------------------


def zeros_zstd(path: Path, head: bytes, size: int) -> None:
    """`head` then `size` zero bytes, zstd-compressed as they stream (a few hundred KB for gigabytes)."""
    block = bytes(1 << 24)
    with path.open("wb") as out, zstandard.ZstdCompressor(level=1).stream_writer(out) as writer:
        writer.write(head)
        for _ in range(size // len(block)):
            writer.write(block)


def test_zstd_bomb_ends_at_the_ratio_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pcap.zst"
    zeros_zstd(path, pcap_bytes(3), 256 << 20)
    tables, info = read_one(path)
    assert info.packets == 3  # the packets before the zeros
    bomb = next(w for w in info.warnings if "decompression bomb" in w.message)
    assert "zstd data expands more than 200 times" in bomb.message and bomb.where.startswith("byte ")
    assert info.damaged


def test_decompression_goes_in_bounded_steps() -> None:
    """No one step of any decompressor makes more than 8 MiB, however much the input expands."""
    zeros = bytes(24 << 20)
    for name, new in (open_module.COMPRESSIONS[b"\x1f\x8b"], open_module.COMPRESSIONS[b"\x28\xb5\x2f\xfd"],
                      open_module.COMPRESSIONS[b"\xfd7zXZ\x00"], open_module.COMPRESSIONS[b"BZh"]):
        packed = COMPRESSORS[name](zeros)
        stream = open_module._Decompressed(io.BytesIO(packed), name, new, InputInfo(index=0, name=name))
        pieces = list(stream.pieces)
        assert sum(map(len, pieces)) == len(zeros), name
        assert max(map(len, pieces)) <= 8 << 20, name


def test_gzip_of_one_packet_repeated_is_a_bomb_too(tmp_path: Path) -> None:
    one = pcap_file.encode(frames(1), TIMES[:1], 276)
    record = one[24:]
    path = tmp_path / "repeated.pcap.gz"
    path.write_bytes(gzip.compress(one + record * ((100 << 20) // len(record)), compresslevel=6))
    tables, info = read_one(path)
    assert "decompression bomb" in info.warnings[0].message and info.damaged
    assert 0 < info.packets < (100 << 20) // len(record)


def test_nested_compression_is_undone_layer_by_layer(tmp_path: Path) -> None:
    path = tmp_path / "twice.pcap.gz.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(gzip.compress(pcap_bytes())))
    tables, info = read_one(path)
    assert info.format == "pcap" and info.packets == 50 and not info.warnings


def test_text_line_over_64_kib_is_skipped_with_its_line_number(tmp_path: Path) -> None:
    seed = SEED.read_bytes().split(b"\n")
    path = tmp_path / "long.txt.gz"
    path.write_bytes(gzip.compress(b"\n".join(seed[:3] + [b"\x1b]0;x" * (5 << 20)] + seed[3:])))
    tables, info = read_one(path, node="node3")
    plain, plain_info = read_one(SEED, node="node3")
    assert info.packets == plain_info.packets
    (warning,) = [w for w in info.warnings if w.where == "line 4"]
    assert warning.message == f"a line of {5 * 5 << 20} characters (more than 64 KiB): skipped"


@pytest.mark.parametrize("content", [b"\n", b"\n \n\t\n"])
def test_blank_lines_are_no_capture(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_bytes(content)
    tables, info = read_one(path)
    assert info.packets == 0 and info.damaged and info.warnings[0].message == "no capture in it: blank lines only"


def test_captured_length_above_wire_length_is_damage(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(4))
    second = 24 + 16 + len(frames(1)[0])
    data[second + 12:second + 16] = (10).to_bytes(4, "little")  # wire length 10, captured more
    path = tmp_path / "over.pcap"
    path.write_bytes(bytes(data))
    tables, info = read_one(path)
    assert info.packets == 4 and info.damaged
    assert info.warnings[0].where == f"byte {second + 16}"
    assert "1 packets say they captured more bytes than they had on the wire" in info.warnings[0].message


def test_records_of_zero_bytes_end_the_walk(tmp_path: Path) -> None:
    path = tmp_path / "zeros.pcap"
    path.write_bytes(pcap_bytes(2) + bytes(1 << 16))
    tables, info = read_one(path)
    assert info.packets == 2 and info.damaged and "a record of a packet 0 bytes long" in info.warnings[0].message


@pytest.mark.parametrize("kind", ["pcap-zstd", "text-gzip"])
def test_bombs_stay_under_1_gb(kind: str, tmp_path: Path) -> None:
    """A 2 GB expansion (512 MB of one text line) through the real command: exit 3 or 4 with a message, peak memory under 1 GB."""
    if kind == "pcap-zstd":
        path = tmp_path / "bomb.pcap.zst"
        zeros_zstd(path, pcap_bytes(3), 2 << 30)
    else:
        path = tmp_path / "line.txt.gz"
        with gzip.open(path, "wb", compresslevel=1) as out:
            out.write(SEED.read_bytes()[:2000])
            for _ in range(32):
                out.write(b"A" * (16 << 20))
    child = subprocess.Popen([sys.executable, "-m", "cniscope", "analyze", str(path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    watchdog = threading.Timer(300, child.kill)
    watchdog.start()
    stderr = child.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not every child's
    watchdog.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    peak_kib = usage.ru_maxrss
    assert child.returncode in (3, 4), stderr
    assert b"decompression bomb" in stderr and b"Traceback" not in stderr
    assert peak_kib < 1 << 20, f"peak {peak_kib} KiB"


def test_compression_nested_too_deep_is_named(tmp_path: Path) -> None:
    data = pcap_bytes()
    for _ in range(4):
        data = gzip.compress(data)
    path = tmp_path / "deep.gz"
    path.write_bytes(data)
    tables, info = read_one(path)
    assert info.packets == 0 and info.warnings[0].message == "compressed more than 3 times over: decompress it first"
