"""Parts of inputs read on their own and joined again give what reading the whole inputs gives, row for row."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import fsspec
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cniscope import parts
from cniscope.errors import InputError
from cniscope.ingest import Capture, read
from cniscope.packets.schema import LinkType
from cniscope.sources import InputInfo, InputSpec
from cniscope.wire import pcap as pcap_file
from tests.frames import ethernet, ipv4, tcp, write_pcap
from tests.paths import CORPUS

BIG = CORPUS / "03-ysaied-pan-cn-ngfw-vxlan6080.pcap"  # 18 kB, 112 packets: dozens of parts of 700 bytes


def joined(specs: list[InputSpec], part_bytes: int) -> tuple[Capture, list[parts.Part], list[parts.Part]]:
    """The capture from the parts, each read on its own; the parts planned and those read again."""
    planned = parts.plan(specs, part_bytes)
    again: list[parts.Part] = []

    def reread(part: parts.Part) -> parts.PartRead:
        again.append(part)
        return parts.read_part(part)

    return parts.join([parts.read_part(p) for p in planned], reread), planned, again


def assert_same(a: Capture, b: Capture) -> None:
    assert_frame_equal(a.table, b.table)
    assert [_learned(i) for i in a.inputs] == [_learned(i) for i in b.inputs]


def _learned(info: InputInfo) -> dict:
    """What reading learned of an input, but the progress of the read (`done`: a terminal's progress line)."""
    return {k: v for k, v in vars(info).items() if k != "done"}


@pytest.mark.parametrize("part_bytes", [300, 700, 5000, 1 << 20])
def test_a_pcap_in_parts_is_the_whole_pcap(part_bytes: int) -> None:
    specs = [InputSpec(str(BIG), node="node1")]
    capture, planned, again = joined(specs, part_bytes)
    assert len(planned) == (1 if part_bytes > BIG.stat().st_size else -(-(BIG.stat().st_size - 24) // part_bytes))
    assert_same(capture, read(specs))
    assert capture.table["frame"].to_list() == list(range(112))
    assert not again  # every guessed start was right


def test_other_inputs_are_one_part_each(tmp_path: Path) -> None:
    zipped = tmp_path / "c.pcap.gz"
    zipped.write_bytes(gzip.compress(BIG.read_bytes()))
    text = CORPUS / "04-msazure-flannel-vxlan-e.txt"
    specs = [InputSpec(str(zipped)), InputSpec(str(text)), InputSpec(str(BIG))]
    capture, planned, _ = joined(specs, 700)
    assert [p.whole for p in planned[:2]] == [True, True] and len(planned) > 3
    assert_same(capture, read(specs))


def test_relative_paths_are_read_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(BIG, tmp_path / "c.pcap")
    monkeypatch.chdir(tmp_path)
    planned = parts.plan([InputSpec("c.pcap")], 700)
    assert {p.location for p in planned} == {str(tmp_path / "c.pcap")} and planned[0].spec.path == "c.pcap"


@pytest.mark.parametrize("damage", ["cut", "absurd caplen"])
def test_damage_ends_the_input_with_the_warning_a_whole_read_gives(tmp_path: Path, damage: str) -> None:
    data = bytearray(BIG.read_bytes())
    pos = pcap_file.HEADER_LEN
    for _ in range(60):  # the 61st record
        pos += pcap_file.RECORD_LEN + struct.unpack_from("<I", data, pos + 8)[0]
    if damage == "cut":
        data = data[: pos + 20]
    else:
        struct.pack_into("<I", data, pos + 8, 10_000_000)
    path = tmp_path / "damaged.pcap"
    path.write_bytes(bytes(data))
    specs = [InputSpec(str(path))]
    capture, _, again = joined(specs, 700)
    whole = read(specs)
    assert_same(capture, whole)
    assert whole.inputs[0].damaged and whole.inputs[0].packets == 60
    assert again  # the damaged part, read again knowing its first packet's index (the warning counts from it)


def test_a_payload_that_looks_like_records_is_caught_where_the_parts_meet(tmp_path: Path) -> None:
    fake = pcap_file.encode([bytes(30)] * 12, [1_700_000_000_000_000_000] * 12, LinkType.ETHERNET)[pcap_file.HEADER_LEN:]
    carrier = ethernet(ipv4(tcp(fake, flags="P.")))  # a packet whose payload holds a dozen well-formed pcap records
    frames = [carrier] + [ethernet(ipv4(tcp(bytes([n]) * 20, seq=n + 2, flags="P."))) for n in range(20)]
    path = tmp_path / "nested.pcap"
    write_pcap(path, frames)
    specs = [InputSpec(str(path))]
    part_bytes = 100  # the second part begins inside the carrier's payload, where the fake records are
    capture, _, again = joined(specs, part_bytes)
    assert_same(capture, read(specs))
    assert capture.table.height == 21
    assert again and again[0].start == pcap_file.HEADER_LEN + pcap_file.RECORD_LEN + len(carrier)  # read again from the true start


def test_a_remote_pcap_is_fetched_by_ranges(tmp_path: Path) -> None:
    memory = fsspec.filesystem("memory")
    memory.pipe("/parts-test/c.pcap", BIG.read_bytes())
    try:
        remote, _, _ = joined([InputSpec("memory://parts-test/c.pcap", node="n1")], 700)
    finally:
        memory.rm("/parts-test", recursive=True)
    local = read([InputSpec(str(BIG), node="n1")])
    assert_frame_equal(remote.table, local.table)
    assert remote.inputs[0].name == "memory://parts-test/c.pcap" and remote.inputs[0].packets == 112


def test_a_remote_range_warning_names_the_byte_in_the_file(tmp_path: Path) -> None:
    data = bytearray(BIG.read_bytes())
    struct.pack_into("<I", data, 9000 + 8, 0)  # somewhere in a record: damage the walk meets later
    path = tmp_path / "d.pcap"
    path.write_bytes(bytes(data))
    memory = fsspec.filesystem("memory")
    memory.pipe("/parts-test/d.pcap", bytes(data))
    try:
        remote, _, _ = joined([InputSpec("memory://parts-test/d.pcap")], 700)
    finally:
        memory.rm("/parts-test", recursive=True)
    local = read([InputSpec(str(path))])
    assert [(w.where, w.message) for w in remote.warnings] == [(w.where, w.message) for w in local.warnings]
    assert_frame_equal(remote.table, local.table)


def test_an_input_that_cannot_be_read_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read it"):
        parts.plan([InputSpec(str(tmp_path / "missing.pcap"))])
    with pytest.raises(InputError, match="standard input"):
        parts.plan([InputSpec("-")])


def test_an_empty_input_is_one_part_with_the_usual_warning(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    capture, planned, _ = joined([InputSpec(str(path))], 700)
    assert len(planned) == 1 and capture.table.height == 0 and isinstance(capture.table, pl.DataFrame)
    assert_same(capture, read([InputSpec(str(path))]))
