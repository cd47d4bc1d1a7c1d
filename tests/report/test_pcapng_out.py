"""`--pcapng`: every packet again, with node and interface names and a comment, as Wireshark's tshark reads it."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cniscope.analyze import analyze
from cniscope.cli import cli
from cniscope.errors import InputError
from cniscope.ingest import read
from cniscope.packets.schema import Clock
from cniscope.report import pcapng_out
from cniscope.results import InputSummary
from cniscope.sources import InputInfo, InputSpec, pcap, pcapng
from cniscope.wire import pcap as pcap_file
from tests.cli import run
from tests.marks import needs_root
from tests.paths import CORPUS, SEED
from tests.report.build import service_call

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="needs tshark (Debian package tshark)")


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    out = subprocess.run([TSHARK or "tshark", "-r", str(path), "-T", "fields", "-E", "separator=\t",
                          *(x for f in fields for x in ("-e", f))],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines()]


def frames(path: Path) -> list[bytes]:
    """Every frame's bytes, through cniscope's own binary readers."""
    buf = memoryview(path.read_bytes())
    info = InputInfo(index=0, name=str(path))
    batches = pcap.iter_batches(buf, info) if pcap_file.is_pcap(bytes(buf[:4])) else pcapng.Reader(buf, info, 1024).batches()
    return [b.data[int(o):int(o) + int(c)].tobytes() for b in batches for o, c in zip(b.offset, b.caplen)]


def test_comment_on_every_row_says_where_the_packet_is_in_its_journey():
    report = service_call()
    notes = pcapng_out.comments(report)
    assert len(notes) == report.table.height
    syn = report.journeys[0]
    assert notes[syn.hops[0].row] == f"journey {syn.id}, hop 1 of 6: node1 veth3f2a9c1d In; conversation 0; finding: nat (info)"
    assert notes[syn.hops[1].row] == (f"journey {syn.id}, hop 2 of 6: node1 kube-bridge In, +4 us; "
                                      "DNAT 10.96.0.10:80 -> 10.244.3.10:80; conversation 0; finding: nat (info)")
    assert notes[syn.hops[2].row].startswith(f"journey {syn.id}, hop 3 of 6: node1 eth0 Out, +21 us; TTL 64 -> 63")


@needs_tshark
@needs_root
def test_lab_capture_annotated_for_wireshark(lab_capture, tmp_path):
    lab_capture, _ = lab_capture
    out = tmp_path / "annotated.pcapng"
    specs = [f"{node}={path}" for node, path in lab_capture.items()]
    result = CliRunner().invoke(cli, ["analyze", "--pcapng", str(out), *specs])
    assert result.exit_code == 0, result.output
    rows = tshark_fields(out, "frame.comment", "frame.interface_name")
    original = read([InputSpec(str(path), node) for node, path in lab_capture.items()])
    assert len(rows) == original.table.height > 0
    assert [name for _, name in rows] == original.table["iface"].to_list()
    assert all(comment.startswith("journey ") for comment, _ in rows), rows
    assert any("DNAT 10.96.0.10:80 -> 10.244.2.10:80" in comment for comment, _ in rows)
    # the frames are the original bytes, and the file reads back with its nodes and directions
    assert frames(out) == frames(lab_capture["node1"]) + frames(lab_capture["node2"])
    again = read([InputSpec(str(out))]).table
    for column in ("node", "iface", "direction", "ts", "src", "dst", "seq", "payload_digest"):
        assert again[column].to_list() == original.table[column].to_list(), column


@needs_tshark
def test_pcap_from_the_corpus_compressed_or_not(tmp_path):
    source = CORPUS / "02-ysaied-pan-cn-calico-eth.pcap"
    packed = tmp_path / "capture.pcap.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    outputs = []
    for given in (source, packed):
        report = analyze([InputSpec(str(given))])
        out = tmp_path / f"{given.name}.pcapng"
        written = pcapng_out.write(report, str(out))
        assert written.packets == report.table.height and written.rebuilt == 0
        rows = tshark_fields(out, "frame.comment", "frame.interface_name")
        assert len(rows) == report.table.height
        assert [c for c, _ in rows] == pcapng_out.comments(report)
        assert {name for _, name in rows} == {given.name}  # the pcap names no interface: the file does
        outputs.append(frames(out))
    assert outputs[0] == outputs[1] == frames(source)


@needs_tshark
def test_text_capture_is_rebuilt_from_its_fields(tmp_path):
    report = analyze([InputSpec(str(SEED), "node3")])
    out = tmp_path / "seed.pcapng"
    written = pcapng_out.write(report, str(out))
    assert written.rebuilt == written.packets == report.table.height
    rows = tshark_fields(out, "frame.comment", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.seq_raw",
                         "tcp.flags", "tcp.len", "ip.ttl", "ip.checksum.status")
    t = report.table
    from cniscope.packets.schema import ip4_text

    assert [r[1] for r in rows] == [ip4_text(v) for v in t["src"].to_list()]
    assert [r[2] for r in rows] == [ip4_text(v) for v in t["dst"].to_list()]
    assert [int(r[3]) for r in rows] == t["sport"].to_list()
    assert [int(r[4]) for r in rows] == t["dport"].to_list()
    assert [int(r[5]) for r in rows] == t["seq"].fill_null(0).to_list()  # text without a seq: 0 in the header
    assert [int(r[6], 16) for r in rows] == t["tcp_flags"].to_list()
    assert [int(r[7]) for r in rows] == t["payload_len"].to_list()
    assert [r[0].rsplit("; ", 1)[1] for r in rows] == [f"rebuilt from text line {n}" for n in t["line"].to_list()]
    assert rows[0][0].startswith("journey 0, hop 1 of 3: node3 copy 1")
    # the rebuilt packets decode back to the same fields
    again = read([InputSpec(str(out))]).table
    for column in ("src", "dst", "sport", "dport", "ack", "tcp_flags", "win", "payload_len", "node"):
        assert again[column].to_list() == t[column].to_list(), column


@needs_tshark
def test_each_capture_point_of_a_text_capture_has_its_interface_so_copies_are_not_retransmissions(tmp_path):
    """The seed names no interface: its three copies of each packet go to interfaces copy 1, 2, 3 of node3."""
    report = analyze([InputSpec(str(SEED), "node3")])
    out = tmp_path / "seed.pcapng"
    pcapng_out.write(report, str(out))
    rows = tshark_fields(out, "frame.interface_id", "frame.interface_name", "frame.interface_description")
    assert [r[1] for r in rows] == [f"copy {h + 1}" for h in report.table["hop"].to_list()]
    assert {(r[0], r[1]) for r in rows} == {("0", "copy 1"), ("1", "copy 2"), ("2", "copy 3")}
    assert {r[2] for r in rows} == {"node=node3"}


@needs_tshark
def test_tunnelled_text_keeps_the_inner_packet_and_names_the_envelope(tmp_path):
    report = analyze([InputSpec(str(CORPUS / "04-msazure-flannel-vxlan-e.txt"))])
    tunnelled = report.table["tunnel"].to_numpy()
    assert (tunnelled > 0).any()
    out = tmp_path / "vxlan.pcapng"
    pcapng_out.write(report, str(out))
    comments = [r[0] for r in tshark_fields(out, "frame.comment")]
    assert len(comments) == report.table.height
    named = np.array(["tunnel envelope vxlan" in c for c in comments])
    assert (named == (tunnelled > 0)).all()


def test_binary_capture_from_standard_input_is_refused(tmp_path):
    report = service_call()
    report.inputs[0] = InputSummary(index=0, name="-", format="pcap", node="node1", clock=Clock.EPOCH, packets=0)
    with pytest.raises(InputError, match="standard input"):
        pcapng_out.write(report, str(tmp_path / "x.pcapng"))


@needs_tshark
def test_damaged_capture_keeps_what_could_be_read(tmp_path):
    source = CORPUS / "03-ysaied-pan-cn-ngfw-vxlan6080.pcap"
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(source.read_bytes()[:10_000])
    out = tmp_path / "cut.pcapng"
    ran = run("analyze", "--pcapng", str(out), str(cut))
    assert ran.code == 3, ran.err  # damaged input: what could be read is still used
    kept = frames(out)
    assert 0 < len(kept) < len(frames(source))
    assert kept == frames(source)[:len(kept)]
    assert len(tshark_fields(out, "frame.comment")) == len(kept)


@needs_tshark
@needs_root
def test_encapsulation_is_in_the_comments(vxlan_capture, tmp_path):
    captures, _ = vxlan_capture
    report = analyze([InputSpec(str(path), node) for node, path in captures.items()])
    out = tmp_path / "vxlan.pcapng"
    pcapng_out.write(report, str(out))
    rows = tshark_fields(out, "frame.comment", "frame.interface_name", "udp.dstport")
    encapsulated = [(comment, name) for comment, name, port in rows if port == "8472"]  # flannel's VXLAN port
    assert encapsulated and {name for _, name in encapsulated} == {"eth0"}
    assert any("ENCAP plain -> vxlan vni 1 :8472 192.168.200.11 > 192.168.200.12" in c for c, _ in encapsulated)


@needs_tshark
def test_envelope_ends_printed_by_name_are_named_in_the_comments_never_none(tmp_path):
    """Corpus 12 was printed without -n: its first VXLAN envelope's ends are host names."""
    report = analyze([InputSpec(str(CORPUS / "12-fluxop-flannel-any-inout-dns.txt"))])
    out = tmp_path / "names.pcapng"
    pcapng_out.write(report, str(out))
    comments = [r[0] for r in tshark_fields(out, "frame.comment")]
    assert not [c for c in comments if "None" in c]
    assert any("vxlan flux-user000001.internal.cloudapp.net > flux-user000000.internal.cloudapp.net" in c
               for c in comments), comments
