"""Ingest: inputs opened, read, decoded and tagged; directories expanded; the inputs reopened for --pcapng."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from cniscope.capture.manifest import MANIFEST
from cniscope.errors import InputError
from cniscope.ingest import Reopen, manifest_inputs, read
from cniscope.sources import InputSpec
from cniscope.wire import pcap
from tests.frames import ethernet, ipv4, tcp
from tests.paths import CORPUS, DATA, SEED

T0 = 1_700_000_000_000_000_000


def test_reopen_gives_the_undecoded_frames_of_binary_inputs_numbered_as_read(tmp_path: Path) -> None:
    frames = [ethernet(ipv4(tcp(sport=1000 + i, flags="S"))) for i in range(50)]
    path = tmp_path / "c.pcap.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(pcap.encode(frames, [T0 + i for i in range(50)], 1)))
    capture = read([InputSpec(str(path)), InputSpec(str(SEED))])
    batches = list(capture.source.frames(0))
    assert [b.first_frame for b in batches] == [0]
    assert sum(len(b.offset) for b in batches) == 50 == capture.inputs[0].packets
    assert bytes(batches[0].data[batches[0].offset[7]:][:len(frames[7])]) == frames[7]
    assert list(capture.source.frames(1)) == []  # text: no frames to copy
    assert list(Reopen((InputSpec("-"),)).frames(0)) == []  # standard input is read once


def write(directory: Path, manifest: object) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest))


def test_a_capture_directory_gives_its_node_files_with_node_names(tmp_path: Path) -> None:
    write(tmp_path, {"format": "cniscope-capture", "version": 1, "nodes": [{"name": "n1", "file": "n1.pcapng"}, {"name": "n2", "file": "n2.pcapng"}]})
    specs = manifest_inputs(str(tmp_path))
    assert [(s.node, Path(s.path).name) for s in specs] == [("n1", "n1.pcapng"), ("n2", "n2.pcapng")]
    assert all(Path(s.path).parent == tmp_path for s in specs)


@pytest.mark.parametrize(
    "content",
    [
        None,
        "{not json",
        json.dumps({"format": "something-else", "nodes": []}),
        json.dumps({"format": "cniscope-capture", "nodes": [{"name": "n1"}]}),
        json.dumps({"format": "cniscope-capture", "nodes": [{"name": "n1", "file": "../../etc/passwd"}]}),
    ],
)
def test_a_bad_capture_directory_is_bad_input(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(InputError, match=str(tmp_path)):
        manifest_inputs(str(tmp_path))


def test_unread_columns_come_null_and_pcapng_comments_reach_info_without_frame(tmp_path: Path) -> None:
    from cniscope.wire.pcapng import PcapngWriter

    path = tmp_path / "c.pcapng"
    with PcapngWriter(str(path)) as w:
        w.section(node="n1")
        eth0 = w.interface("eth0", 1)
        for i in range(5):
            w.packet(eth0, T0 + i, ethernet(ipv4(tcp(sport=1000 + i, flags="S"))), comment="third" if i == 2 else None)
    whole = read([InputSpec(str(path))]).table
    assert whole["info"].to_list() == [None, None, "third", None, None] and whole["frame"].to_list() == list(range(5))
    lean = read([InputSpec(str(path))], unread=("frame", "tos")).table
    assert lean.schema == whole.schema and lean["frame"].null_count() == lean["tos"].null_count() == 5
    assert lean.drop("frame", "tos").equals(whole.drop("frame", "tos"), null_equal=True)


def test_analysing_pcap_and_pcapng_imports_no_pyarrow_nor_the_text_reader() -> None:
    """Decoded frames reach polars through the Arrow C data interface (`packets.arrow`): pyarrow, 60-140 ms of imports,
    stays out of `analyze` of binary captures (it is imported where it writes: Parquet, spill); so does the tcpdump text
    reader (its grammar's regular expressions: 10-15 ms), imported when an input is looked at as text."""
    probe = ("import sys, io, json, contextlib\nfrom cniscope.cli import main\nout = io.StringIO()\n"
             "with contextlib.redirect_stdout(out):\n    code = main(sys.argv[1:])\n"
             "print(code, json.loads(out.getvalue())['journeys_total'] > 0, 'pyarrow' in sys.modules,\n"
             "      'cniscope.sources.text.reader' in sys.modules)")
    for capture in (CORPUS / "02-ysaied-pan-cn-calico-eth.pcap", DATA / "scenarios" / "calico-vxlan" / "cross-node" / "merged.pcapng"):
        done = subprocess.run([sys.executable, "-c", probe, "analyze", "--json", str(capture)], capture_output=True, text=True,
                              timeout=120)
        assert done.stdout.split() == ["0", "True", "False", "False"], done.stderr


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_a_large_input_reads_in_larger_batches_to_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 kind: str) -> None:
    from cniscope import ingest
    from cniscope.sources import open as open_mod
    from cniscope.wire.pcapng import PcapngWriter

    frames = [ethernet(ipv4(tcp(sport=1000 + i, flags="S"))) for i in range(100)]
    path = tmp_path / f"c.{kind}"
    if kind == "pcap":
        path.write_bytes(pcap.encode(frames, [T0 + i for i in range(100)], 1))
    else:
        with PcapngWriter(str(path)) as w:
            w.section(node="n1")
            eth0 = w.interface("eth0", 1)
            for i, frame in enumerate(frames):
                w.packet(eth0, T0 + i, frame, comment="late" if i == 57 else None)
    small = read([InputSpec(str(path))], batch_size=10).table
    monkeypatch.setattr(open_mod, "LARGE", path.stat().st_size // 3)  # three times as large as that: batches of 30
    grown = read([InputSpec(str(path))], batch_size=10).table
    assert small.n_chunks() == 10 and grown.n_chunks() == 4
    assert grown.equals(small, null_equal=True) and grown["frame"].to_list() == list(range(100))
    assert len(list(ingest.batches([InputSpec(str(path))], [], 10))) == 10  # a writer that streams: batches as asked
