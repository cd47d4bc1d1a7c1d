"""The classic pcap reader: records found, header fields, damage, bounded batches."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cniscope.ingest import read
from cniscope.packets.frames import FrameBatch
from cniscope.sources import InputInfo, InputSpec, pcap
from cniscope.wire import pcap as pcap_file
from cniscope.wire import walk
from tests.frames import write_pcap
from tests.paths import CORPUS

FRAMES = [bytes(range(i % 7, i % 7 + 40 + i)) for i in range(12)]
TIMES = [1_700_000_000_123_456_789 + i * 1_000_500 for i in range(12)]


@pytest.fixture(autouse=True, params=["compiled", "python"])
def walked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test over the record walk in C (where built; it checks each record as it goes) and over its Python
    stand-in: the same batches and damage."""
    if request.param == "python":
        monkeypatch.setattr(walk, "pcap_packets", walk.python_pcap_packets)
    elif not walk.COMPILED:
        pytest.skip("cniscope.wire._walk is not built (no C compiler at install)")


def read_all(data: bytes, batch_size: int = 65536) -> tuple[list[FrameBatch], InputInfo]:
    info = InputInfo(index=0, name="x.pcap")
    return list(pcap.iter_batches(memoryview(data), info, batch_size)), info


def frames_of(batches: list[FrameBatch]) -> list[bytes]:
    return [bytes(b.data[o:o + c]) for b in batches for o, c in zip(b.offset.tolist(), b.caplen.tolist(), strict=True)]


def column(batches: list[FrameBatch], name: str) -> list[int]:
    return [v for b in batches for v in getattr(b, name).tolist()]


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("nanos", [False, True])
def test_both_byte_orders_and_resolutions(byteorder: str, nanos: bool) -> None:
    data = pcap_file.encode(FRAMES, TIMES, 276, nanos=nanos, byteorder=byteorder)
    batches, info = read_all(data)
    assert frames_of(batches) == FRAMES
    expected = TIMES if nanos else [t // 1000 * 1000 for t in TIMES]
    assert column(batches, "ts") == expected
    assert column(batches, "wirelen") == [len(f) for f in FRAMES]
    assert set(column(batches, "linktype")) == {276}
    assert set(column(batches, "direction")) == {-1}
    assert not info.warnings and not info.damaged


@pytest.mark.parametrize("linktype", [1, 101, 113, 276, 228, 229])
def test_link_type_passed_per_frame(linktype: int) -> None:
    batches, _ = read_all(pcap_file.encode(FRAMES[:3], TIMES[:3], linktype))
    assert column(batches, "linktype") == [linktype] * 3


def test_fcs_bits_of_the_link_type_field_are_ignored() -> None:
    data = bytearray(pcap_file.encode(FRAMES[:2], TIMES[:2], 1))
    data[20:24] = (1 | 0x14000000).to_bytes(4, "little")  # FCS present, 4 bytes
    assert column(read_all(bytes(data))[0], "linktype") == [1, 1]


def test_frames_cut_by_the_snap_length_are_kept() -> None:
    data = pcap_file.encode(FRAMES, TIMES, 1, snaplen=48)
    batches, info = read_all(data)
    assert column(batches, "caplen") == [min(48, len(f)) for f in FRAMES]
    assert column(batches, "wirelen") == [len(f) for f in FRAMES]
    assert frames_of(batches) == [f[:48] for f in FRAMES]
    assert not info.damaged


def test_batches_are_bounded_and_numbered() -> None:
    batches, _ = read_all(pcap_file.encode(FRAMES, TIMES, 1), batch_size=5)
    assert [len(b.offset) for b in batches] == [5, 5, 2]
    assert [b.first_frame for b in batches] == [0, 5, 10]
    assert frames_of(batches) == FRAMES


def test_header_only_file_has_no_packets_and_no_damage() -> None:
    batches, info = read_all(pcap_file.encode([], [], 1))
    assert batches == [] and not info.damaged


def record_end(k: int) -> int:
    """Byte offset just after record k of the FRAMES file."""
    return pcap_file.HEADER_LEN + sum(pcap_file.RECORD_LEN + len(f) for f in FRAMES[: k + 1])


@pytest.mark.parametrize("cut, kept, where", [
    (record_end(4) + 7, 5, "record header cut short"),
    (record_end(4) + 16 + 3, 5, "packet cut short"),
    (10, 0, "pcap file header cut short"),
])
def test_truncated_files_keep_what_came_before(cut: int, kept: int, where: str) -> None:
    data = pcap_file.encode(FRAMES, TIMES, 1)[:cut]
    batches, info = read_all(data)
    assert frames_of(batches) == FRAMES[:kept]
    assert info.damaged
    (warning,) = info.warnings
    assert where in warning.message
    expected_at = 0 if kept == 0 else record_end(kept - 1)
    assert warning.where == f"byte {expected_at}"


def test_absurd_caplen_stops_the_walk_there() -> None:
    data = bytearray(pcap_file.encode(FRAMES, TIMES, 1))
    at = record_end(2)
    data[at + 8:at + 12] = (300_000).to_bytes(4, "little")
    batches, info = read_all(bytes(data))
    assert frames_of(batches) == FRAMES[:3]
    assert "absurd captured length 300000" in info.warnings[0].message
    assert info.warnings[0].where == f"byte {at}"


@pytest.mark.parametrize("batch_size", [1, 3, 4, 65536])
@pytest.mark.parametrize("word, value, said", [(8, 300_000, "absurd captured length 300000"),
                                               (12, 0, "a record of a packet 0 bytes long")])
def test_damage_in_any_window_keeps_the_records_before_it(batch_size: int, word: int, value: int, said: str) -> None:
    data = bytearray(pcap_file.encode(FRAMES, TIMES, 1))
    at = record_end(4)  # record 5: in the middle of a window of 3 or 4, the first of its own window of 1
    data[at + word:at + word + 4] = value.to_bytes(4, "little")
    batches, info = read_all(bytes(data), batch_size)
    assert frames_of(batches) == FRAMES[:5] and column(batches, "ts") == [t // 1000 * 1000 for t in TIMES[:5]]
    assert column(batches, "wirelen") == [len(f) for f in FRAMES[:5]]
    (warning,) = info.warnings
    assert said in warning.message and warning.where == f"byte {at}" and "kept the 5 packets" in warning.message


def test_garbage_after_the_last_packet_is_reported() -> None:
    data = pcap_file.encode(FRAMES, TIMES, 1) + bytes([0xFF]) * 40
    batches, info = read_all(data)
    assert frames_of(batches) == FRAMES
    assert info.damaged and info.warnings[0].where == f"byte {record_end(len(FRAMES) - 1)}"


def test_not_a_pcap() -> None:
    batches, info = read_all(b"\x0a\x0d\x0d\x0a" + bytes(40))
    assert batches == [] and info.damaged and "bad magic" in info.warnings[0].message


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(path), "-T", "fields"] + [a for f in fields for a in ("-e", f)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark (apt package tshark)")
@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.pcap")))
def test_corpus_records_match_tshark(name: str, tmp_path: Path) -> None:
    path = CORPUS / name
    nsec = tmp_path / "nsec.pcap"
    subprocess.run(["editcap", "-F", "nsecpcap", str(path), str(nsec)], check=True)
    expected = tshark_fields(path, "frame.time_epoch", "frame.cap_len", "frame.len")
    for variant in (path, nsec):
        batches, info = read_all(variant.read_bytes())
        ts = column(batches, "ts")
        assert len(ts) == len(expected) > 0
        assert [f"{t // 10**9}.{t % 10**9:09d}" for t in ts] == [e[0] for e in expected]
        assert column(batches, "caplen") == [int(e[1]) for e in expected]
        assert column(batches, "wirelen") == [int(e[2]) for e in expected]
        assert not info.damaged


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump (apt package tcpdump)")
def test_generated_file_reads_in_tcpdump_the_same(tmp_path: Path) -> None:
    path = tmp_path / "gen.pcap"
    path.write_bytes(pcap_file.encode(FRAMES, TIMES, 1, nanos=True, byteorder=">"))
    out = subprocess.run(["tcpdump", "-r", str(path), "-tt", "-nn", "--nano"], capture_output=True, text=True, check=True)
    stamps = [line.split()[0] for line in out.stdout.splitlines() if not line[:1].isspace()]
    batches, _ = read_all(path.read_bytes())
    assert stamps == [f"{t // 10**9}.{t % 10**9:09d}" for t in column(batches, "ts")]
    assert np.all(np.diff(column(batches, "ts")) > 0)


def test_an_unsupported_link_type_is_one_warning_not_an_error_per_row(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "u.pcap", [b"\x00" * 40] * 3, linktype=147)
    capture = read([InputSpec(str(path))])
    assert capture.table.height == 3 and capture.table["error"].null_count() == 3
    assert [w.message.split(" (")[0] for w in capture.warnings] == ["link type 147 is not one cniscope decodes"]
