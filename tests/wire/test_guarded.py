"""A capture file cut by another program while it is read: the mapping's pages past the new end read as zeros instead
of ending the process (SIGBUS), and the readers keep what was read before the cut and say where it was. Each case runs
in a child process: on a tree without the guard the child dies of SIGBUS, and the test says so instead of pytest."""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.frames import ethernet, ipv4, udp, write_pcap, write_pcapng
from tests.paths import REPO

FRAMES = [ethernet(ipv4(udp(bytes([i % 251]) * 658, sport=1000 + i % 50))) for i in range(3000)]  # 700 bytes each

MAPPING = """
import json, mmap, os, sys
from cniscope.wire.guarded import cut_at, guarded
path, cut, guard = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "guard"
with open(path, "rb") as file:
    mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    close = guarded(mapped, file.fileno()) if guard else mapped.close
    view = memoryview(mapped)
    before = cut_at(view)
    os.truncate(path, cut)
    far = bytes(view[len(view) - 10:])  # past the new end: a fault
    near = bytes(view[:4])
    print(json.dumps({"before": before, "far": far.hex(), "near": near.hex(), "cut": cut_at(view)}))
    view.release()
    close()
"""


def child(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


@pytest.mark.parametrize("cut", [40960, 50000], ids=["page-aligned", "mid-page"])
def test_a_guarded_mapping_reads_zeros_past_where_its_file_was_cut(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "ff.bin"
    path.write_bytes(b"\xff" * 200_000)
    done = child(MAPPING, path, cut, "guard")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"before": None, "far": "00" * 10, "near": "ff" * 4, "cut": cut}


def test_a_fault_on_a_mapping_not_guarded_still_ends_the_process(tmp_path: Path) -> None:
    """The guard takes only its own mappings' faults: any other goes on as before (here: the default, the end)."""
    script = """
import mmap, os, sys
from cniscope.wire.guarded import guarded
guarded_path, other = sys.argv[1], sys.argv[2]
with open(guarded_path, "rb") as one, open(other, "rb") as two:
    close = guarded(mmap.mmap(one.fileno(), 0, access=mmap.ACCESS_READ), one.fileno())
    plain = mmap.mmap(two.fileno(), 0, access=mmap.ACCESS_READ)
    os.truncate(other, 4096)
    print(plain[150_000])
"""
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(b"\xff" * 200_000)
    done = child(script, tmp_path / "a.bin", tmp_path / "b.bin")
    assert done.returncode == -signal.SIGBUS


READ = """
import json, os, sys
from cniscope.ingest import batches
from cniscope.sources import InputSpec
path, cut = sys.argv[1], int(sys.argv[2])
infos = []
tables = batches([InputSpec(path=path)], infos, batch_size=256, decoders=0)
rows = next(tables).height
os.truncate(path, cut)
rows += sum(table.height for table in tables)
info = infos[0]
print(json.dumps({"rows": rows, "packets": info.packets, "warnings": [[w.where, w.message] for w in info.warnings]}))
"""


def data_ends(path: Path) -> list[int]:
    """Where each packet's captured bytes end in the file, walked here on their own."""
    data, ends = path.read_bytes(), []
    if path.suffix == ".pcap":
        at = 24
        while at + 16 <= len(data):
            caplen = struct.unpack_from("<I", data, at + 8)[0]
            ends.append(at + 16 + caplen)
            at += 16 + caplen
        return ends
    at = 0
    while at + 12 <= len(data):
        kind, length = struct.unpack_from("<II", data, at)
        if kind == 6:
            ends.append(at + 28 + struct.unpack_from("<I", data, at + 20)[0])
        at += length
    return ends


@pytest.mark.parametrize("cut", [819200, 1_000_000], ids=["page-aligned", "mid-page"])
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_a_capture_cut_while_it_is_read_keeps_the_packets_before_the_cut_and_says_where(tmp_path: Path, kind: str,
                                                                                         cut: int) -> None:
    path = tmp_path / f"cut.{kind}"
    if kind == "pcap":
        write_pcap(path, FRAMES)
    else:
        write_pcapng(path, [(0, frame) for frame in FRAMES], [("eth0", 1)])
    before = sum(end <= cut for end in data_ends(path))
    assert 256 < before < len(FRAMES)
    done = child(READ, path, cut)
    assert done.returncode == 0, f"the reader died ({done.returncode}): {done.stderr[-2000:]}"
    seen = json.loads(done.stdout)
    assert seen["rows"] == seen["packets"] == before
    assert seen["warnings"] == [[f"byte {cut}", f"the file was cut to {cut} bytes while it was read (another program "
                                                f"truncated or rewrote it); kept the {before} packets read before that"]]
