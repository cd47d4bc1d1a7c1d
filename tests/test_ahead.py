"""One capture's records walked and its first batches decoded ahead while the command imports the analysis
(`cniscope.ahead`): the same capture as reading it whole, and no polars on the way."""

from __future__ import annotations

import gzip
import mmap
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from cniscope import ahead, ingest
from cniscope.cli import main
from cniscope.packets.chunks import Arrays
from cniscope.packets.frames import FrameBatch
from cniscope.packets.kinds import UNREAD
from cniscope.sources import InputSpec
from cniscope.sources.open import map_file
from tests.paths import CORPUS, DATA

PCAP = CORPUS / "01-ysaied-pan-cn-calico-vxlan.pcap"
PCAPNG = DATA / "scenarios" / "calico-vxlan" / "cross-node" / "node1.pcapng"


def _same(walked: ingest.Capture, read: ingest.Capture) -> None:
    assert walked.table.equals(read.table, null_equal=True)
    assert walked.inputs == read.inputs


@pytest.mark.parametrize("path", [PCAP, PCAPNG], ids=["pcap", "pcapng"])
def test_a_capture_walked_ahead_reads_as_a_whole(path: Path) -> None:
    specs = [InputSpec(str(path), node="n1")]
    walk = ahead.start(specs)
    assert walk is not None
    _same(ingest.read(specs, ahead=walk), ingest.read(specs))


@pytest.mark.parametrize("walked", [0, 1, 3])
def test_a_walk_stopped_part_way_is_taken_over_where_it_stopped(monkeypatch: pytest.MonkeyPatch, walked: int) -> None:
    monkeypatch.setattr(ahead, "WALKED", walked)  # batches of 10 frames: the reader walks the rest
    specs = [InputSpec(str(PCAPNG))]
    walk = ahead.Ahead(specs[0], batch_size=10)
    capture = ingest.read(specs, batch_size=10, ahead=walk)
    _same(capture, ingest.read(specs, batch_size=10))
    assert capture.table["frame"].to_list() == list(range(capture.table.height))


@pytest.mark.parametrize("decoded", [0, 1, 3, 100])
@pytest.mark.parametrize("unread", [(), UNREAD], ids=["every column", "unread"])
def test_batches_decoded_ahead_are_the_batches_decoded(monkeypatch: pytest.MonkeyPatch, decoded: int,
                                                       unread: tuple[str, ...]) -> None:
    monkeypatch.setattr(ahead, "DECODED", decoded)  # of batches of 10 frames: the pool decodes the rest
    specs = [InputSpec(str(PCAPNG), node="n1")]
    walk = ahead.Ahead(specs[0], batch_size=10, unread=unread)
    walk._thread.join()  # walked and decoded as far as it goes
    assert len(walk._decoded) == min(decoded, len(walk._walked))
    _same(ingest.read(specs, batch_size=10, unread=unread, ahead=walk), ingest.read(specs, batch_size=10, unread=unread))


def test_batches_decoded_without_the_columns_read_are_decoded_again() -> None:
    specs = [InputSpec(str(PCAP))]
    walk = ahead.Ahead(specs[0], unread=UNREAD)
    walk._thread.join()
    assert walk._decoded
    _same(ingest.read(specs, ahead=walk), ingest.read(specs))


def test_a_batch_still_decoding_when_taken_is_handed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    let_go, waited = threading.Event(), []
    decode = ahead.Ahead._decode

    def after_take(self: ahead.Ahead, batch: FrameBatch) -> list[Arrays]:
        # False: `take` or `close` waited for this decoding to end (a bound, not a timing: the read that sets it
        # takes well under a second, but a loaded machine has made such waits take seconds)
        waited.append(let_go.wait(timeout=60))
        return decode(self, batch)

    monkeypatch.setattr(ahead.Ahead, "_decode", after_take)
    specs = [InputSpec(str(PCAPNG))]
    walk = ahead.Ahead(specs[0], batch_size=10)
    while not walk._decoding:
        time.sleep(0.001)
    close = walk.close  # ingest.read takes the walk, then closes it
    monkeypatch.setattr(walk, "close", lambda: (close(), let_go.set())[0])
    _same(ingest.read(specs, batch_size=10, ahead=walk), ingest.read(specs, batch_size=10))
    assert waited[0]


def test_damage_found_ahead_is_said_as_when_read(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(PCAP.read_bytes()[:-7])
    specs = [InputSpec(str(cut))]
    walk = ahead.start(specs)
    assert walk is not None
    capture = ingest.read(specs, ahead=walk)
    assert capture.damaged and capture.warnings
    _same(capture, ingest.read(specs))


def test_only_one_plain_capture_file_is_walked_ahead(tmp_path: Path) -> None:
    packed = tmp_path / "c.pcap.gz"
    packed.write_bytes(gzip.compress(PCAP.read_bytes()))
    text = tmp_path / "c.txt"
    text.write_text("12:00:00.000000 IP 10.0.0.1.1 > 10.0.0.2.2: UDP, length 1\n")
    for specs in ([InputSpec(str(PCAP)), InputSpec(str(PCAPNG))], [InputSpec("-")], [InputSpec(str(tmp_path))],
                  [InputSpec(str(packed))], [InputSpec(str(text))], [InputSpec(str(tmp_path / "missing.pcap"))],
                  [InputSpec(str(PCAP), unreadable="no permission")]):
        assert ahead.start(specs) is None, specs


def test_a_walk_not_for_the_inputs_read_is_let_go() -> None:
    walk = ahead.start([InputSpec(str(PCAP))])
    assert walk is not None
    specs = [InputSpec(str(PCAPNG))]
    _same(ingest.read(specs, ahead=walk), ingest.read(specs))
    assert walk.take() is None  # closed: nothing left to take


def test_analyze_beyond_memory_lets_the_walk_go_and_spills(capsys: pytest.CaptureFixture[str]) -> None:
    reports = []
    for memory in ("4K", "1G"):
        assert main(["analyze", "--json", "--memory", memory, str(PCAP)]) == 0
        reports.append(capsys.readouterr().out)
    assert reports[0] == reports[1]


@pytest.mark.parametrize("path", [PCAP, PCAPNG], ids=["pcap", "pcapng"])
def test_the_walk_and_the_command_module_import_no_polars(path: Path) -> None:
    probe = ("import sys\nimport cniscope.cli, cniscope.commands.analyze\n"
             "from cniscope import ahead\nfrom cniscope.sources import InputSpec\n"
             "walk = ahead.start([InputSpec(sys.argv[1])])\nwalk._thread.join()\nfound = walk.take()\n"
             "print(sum(len(b.offset) for b in found.found.batches), len(found.decoded), 'polars' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60)
    frames, decoded, polars = done.stdout.split()
    assert int(frames) > 0 and int(decoded) > 0 and polars == "False", done.stderr


@pytest.mark.parametrize("decoded", [1, 3])
def test_comments_of_batches_decoded_ahead_are_their_rows_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               decoded: int) -> None:
    """A batch decoded ahead gets its pcapng comments as the batches after it get theirs, in order."""
    from cniscope.packets.kinds import LinkType
    from cniscope.wire.pcapng import PcapngWriter
    from tests.frames import ethernet, ipv4, tcp

    path = tmp_path / "noted.pcapng"
    with PcapngWriter(str(path)) as out:
        out.section()
        eth0 = out.interface("eth0", int(LinkType.ETHERNET))
        for i in range(60):
            out.packet(eth0, 1_700_000_000_000_000_000 + i, ethernet(ipv4(tcp(seq=i))), comment=f"n{i}" if i % 7 == 0 else None)
    monkeypatch.setattr(ahead, "DECODED", decoded)
    specs = [InputSpec(str(path))]
    walk = ahead.Ahead(specs[0], batch_size=10)
    walk._thread.join()
    capture = ingest.read(specs, batch_size=10, ahead=walk)
    _same(capture, ingest.read(specs, batch_size=10))
    assert capture.table["info"].to_list() == [f"n{i}" if i % 7 == 0 else None for i in range(60)]


def test_the_command_module_imports_no_numpy_and_the_walk_maps_the_file_before_it() -> None:
    """`analyze` parses its arguments and starts the walk before numpy is imported: the thread maps the file meanwhile
    (and maps its pages in), and the reader takes that mapping."""
    probe = ("import sys\nimport cniscope.cli, cniscope.commands.analyze\nprint('numpy' in sys.modules)\n"
             "from cniscope import ahead\nfrom cniscope.sources import InputSpec\n"
             "walk = ahead.start([InputSpec(sys.argv[1])])\nwalk._thread.join()\nfound = walk.take()\n"
             "print(found.opened.buf.obj is walk._mapped)")
    done = subprocess.run([sys.executable, "-c", probe, str(PCAPNG)], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_a_mapping_made_ahead_is_taken_while_the_file_is_that_size(tmp_path: Path) -> None:
    path = tmp_path / "growing.pcap"
    path.write_bytes(PCAP.read_bytes())
    with path.open("rb") as file, ExitStack() as stack:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        assert map_file(file, stack, mapped).obj is mapped
        with path.open("ab") as more:
            more.write(b"\0" * 16)  # a capture still being written: mapped again, whole
        again = map_file(file, stack, mapped)
        assert again.obj is not mapped and len(again) == len(mapped) + 16
