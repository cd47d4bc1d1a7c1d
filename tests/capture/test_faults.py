"""Faults while recording, for real in network namespaces: a node's tcpdump killed, cniscope itself killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cniscope import host
from cniscope.capture import runner
from cniscope.capture.plan import Limits, build
from cniscope.capture.transports import Ssh
from cniscope.host import Command
from tests.cli import run
from tests.frames import ipv4, sll2, udp, write_pcap
from tests.hosts import Recorder, Reply
from tests.marks import needs_root

from .conftest import UDP_BLAST, Capturing, Namespaces, cniscope, comm
from .test_playbook import INVENTORY, LISTENING
from .test_runner import two_nodes


def tcpdumps(netns: Namespaces, member: str) -> list[int]:
    return [pid for pid in netns.pids(member) if comm(pid) == "tcpdump"]


def wait_for(condition, seconds: float = 20) -> bool:  # type: ignore[no-untyped-def]
    """Poll a condition, bounded (the node-side fallback would be duration + 30 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@needs_root
def test_a_tcpdump_killed_on_its_node_fails_the_capture_naming_the_node(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    out = tmp_path / "cap"
    running = Capturing(cniscope("capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,b", "--filter", "udp port 9999",
                                 "--duration", "600", "-o", str(out)))
    netns.run("a", sys.executable, "-c", UDP_BLAST, "10.77.0.2", "5")
    (victim,) = tcpdumps(netns, "b")
    netns.run("b", "kill", "-s", "KILL", str(victim))
    code, err = running.finish(timeout=120)  # well before --duration 600
    assert code == 5, err
    assert "error: the capture failed on b: tcpdump ended early (exit status 137, killed by signal 9)" in err
    assert "Traceback" not in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stop_reason"] == "failed on b"
    by_name = {node["name"]: node for node in manifest["nodes"]}
    assert by_name["b"]["failed"] and by_name["a"]["failed"] is None
    assert by_name["a"]["packets"] == 5  # the other node's capture is kept
    assert not tcpdumps(netns, "a") and not tcpdumps(netns, "b")


@needs_root
def test_a_killed_cniscope_stops_the_tcpdumps_on_its_nodes(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    running = Capturing(cniscope("capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,b", "--duration", "600",
                                 "-o", str(tmp_path / "cap")))
    assert tcpdumps(netns, "a") and tcpdumps(netns, "b")
    running.proc.send_signal(signal.SIGKILL)
    running.proc.wait(10)
    # standard input closed: each node stops its tcpdump now, not at the node's limit (--duration + 30 s)
    assert wait_for(lambda: not tcpdumps(netns, "a") and not tcpdumps(netns, "b"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs."""
    disk = tmp_path / "small"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "cniscope-test-full", str(disk)], check=True, timeout=10)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], timeout=30)


@needs_root
def test_a_full_disk_keeps_what_fit_and_the_manifest_says_why(netns: Namespaces, small_disk: Path) -> None:
    """The output directory on a 1 MiB tmpfs, 10,000 packets of 140 bytes for each of two nodes."""
    two_nodes(netns)
    out = small_disk / "cap"
    running = Capturing(cniscope("capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,b", "--filter",
                                 "udp port 9999", "--duration", "600", "-o", str(out)))
    # 10,000 packets fill the disk, unless a loaded machine makes tcpdump drop many: then more, bounded
    for _ in range(10):
        netns.run("a", sys.executable, "-c", UDP_BLAST, "10.77.0.2", "10000")
        if wait_for(lambda: running.proc.poll() is not None, seconds=3):
            break
    code, err = running.finish(timeout=120)  # stopped by the full disk, not --duration
    assert code == 5, err
    assert "Traceback" not in err and "No space left on device" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stop_reason"].startswith("output full (writing ") and "No space left on device" in manifest["stop_reason"]
    kept = [node["file"] for node in manifest["nodes"]]
    assert all(node["failed"] for node in manifest["nodes"])
    # what fit is there, and cniscope reads it back (cut short at the end: exit 3, not a failure)
    assert sum((out / name).stat().st_size for name in kept) > 200_000
    analyzed = subprocess.run(cniscope("analyze", str(out)), capture_output=True, text=True, timeout=300)
    assert analyzed.returncode in (0, 3), analyzed.stderr
    assert "Traceback" not in analyzed.stderr
    assert not tcpdumps(netns, "a") and not tcpdumps(netns, "b")


def until(condition: Callable[[], bool]) -> None:
    """Wait, at most 60 s, for `condition` (the bound: a test that waits in vain fails on its assertions)."""
    deadline = time.monotonic() + 60
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def fill(disk: Path) -> Path:
    """Another writer takes every byte left on `disk`: its file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as sink:
        while True:
            try:
                sink.write(b"\0" * 4096)
            except OSError:
                return filler


def capture_n2_late(disk: Path, monkeypatch: pytest.MonkeyPatch, n1: Path, n2: Path, fill_first: bool = False) -> dict[str, Any]:
    """n1 and n2 recorded over SSH (recorded replies: their tcpdumps send the files `n1` and `n2`) into `disk`/cap,
    n2's stream read only once n1's writing has met the full disk; with `fill_first`, another writer then takes the
    room n1 gave back before n2's first bytes (and is gone by the stop). The stop waits for n2's stream to be read
    whole. The manifest, after checking that the disk stopped the capture and both nodes kept a file."""
    fillers: list[Path] = []
    pumping: dict[str, runner.NodeRun] = {}
    pump = runner._pump_stdout

    def n2_late(node: runner.NodeRun, proc: host.Process) -> None:
        pumping[node.plan.label] = node
        if node.plan.label == "n2":
            until(lambda: "n1" in pumping and pumping["n1"].write_error is not None)
            if fill_first:
                fillers.append(fill(disk))
        pump(node, proc)

    def answer(command: Command) -> Reply | None:
        if command.purpose.endswith("'s interfaces, routes, sysctls, versions"):
            return Reply(stdout=INVENTORY)
        if command.purpose.startswith("record on "):
            return Reply(stdout=n1 if command.purpose.startswith("record on n1") else n2, stderr=LISTENING, streams=True)
        if command.purpose.startswith("stop tcpdump on "):
            until(lambda: "n2" in pumping and pumping["n2"].bytes == n2.stat().st_size)  # n2's stream read
            for filler in fillers:  # the other writer is done
                filler.unlink(missing_ok=True)
            far.stop(command)
        return None

    monkeypatch.setattr(runner, "_pump_stdout", n2_late)
    far = Recorder(answer)
    try:
        with host.swapped(far):
            manifest = runner.run(build(Ssh(), ["n1", "n2"], Limits(duration_s=60)), disk / "cap")
    finally:
        far.close()
    assert manifest["stop_reason"].startswith("output full (writing ") and "No space left on device" in manifest["stop_reason"]
    assert [node["file"] for node in manifest["nodes"]] == ["n1.pcap", "n2.pcap"]
    return manifest


def assert_n1_whole_n2_none(disk: Path, frame: bytes) -> None:
    """`analyze` of `disk`/cap reads n1's packets that fit whole and none of n2's."""
    analyzed = run("analyze", "--json", str(disk / "cap"))
    assert analyzed.code in (0, 3), analyzed.err
    whole = ((disk / "cap" / "n1.pcap").stat().st_size - 24) // (16 + len(frame))  # n1's packets that fit whole
    assert whole > 0
    assert {i["node"]: i["packets"] for i in json.loads(analyzed.out)["inputs"]} == {"n1": whole, "n2": 0}


@needs_root
def test_a_node_whose_stream_comes_after_the_disk_filled_keeps_a_readable_file(small_disk: Path, tmp_path: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """n2's pcap is read only once n1's has filled the disk (the order a loaded machine gave the full-disk test above
    in session 21, where b.pcap came out empty and `analyze` refused it): n2's file still reads back, with 0 packets."""
    frame = sll2(ipv4(udp(b"x" * 100, dport=9999), proto=17))
    stream = write_pcap(tmp_path / "node.pcap", [frame] * 10_000, linktype=276, snaplen=65535, nanosecond=True)
    capture_n2_late(small_disk, monkeypatch, stream, stream)
    assert_n1_whole_n2_none(small_disk, frame)


@needs_root
@pytest.mark.parametrize("nothing", ["sent", "fit"])
def test_a_node_of_whose_pcap_nothing_was_kept_reads_back_with_no_packets(small_disk: Path, tmp_path: Path, nothing: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """n1 fills the disk, so the raw pcap are kept; n2's tcpdump wrote nothing (its stream is empty: killed before it
    flushed its header), or its first bytes came once another writer had taken the room n1 gave back. n2's file was
    0 bytes and `analyze DIR` refused it (exit 4, "empty input"): now it is a pcap of no packets, the manifest says so."""
    frame = sll2(ipv4(udp(b"x" * 100, dport=9999), proto=17))
    stream = write_pcap(tmp_path / "node.pcap", [frame] * 10_000, linktype=276, snaplen=65535, nanosecond=True)
    late = stream if nothing == "fit" else tmp_path / "empty.pcap"
    late.touch()
    manifest = capture_n2_late(small_disk, monkeypatch, stream, late, fill_first=nothing == "fit")
    n2 = manifest["nodes"][1]
    assert n2["bytes"] == late.stat().st_size and (n2["bytes"] > 0) == (nothing == "fit")
    assert_n1_whole_n2_none(small_disk, frame)
    header = (small_disk / "cap" / "n2.pcap").read_bytes()
    assert header == stream.read_bytes()[:24]  # what the node's tcpdump begins with (nanosecond, LINUX_SLL2, its snaplen)
    assert any("n2.pcap holds no packets" in warning for warning in n2["warnings"]), n2["warnings"]


def test_an_unreachable_ssh_node_leaves_no_output_directory(tmp_path: Path) -> None:
    """ssh to a closed port on this machine's loopback: refused at once, nothing else is touched."""
    out = tmp_path / "cap"
    ran = run("capture", "--via", "ssh", "--nodes", "n1", "--ssh-option", "HostName=127.0.0.1",
              "--ssh-option", "Port=1", "--duration", "5", "-o", str(out))
    assert ran.code == 5, ran.err
    assert "cannot record on n1" in ran.err and "--keep-going records on the others" in ran.err
    assert "Traceback" not in ran.err
    assert not out.exists()


@needs_root
def test_keep_going_records_on_the_reachable_nodes(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    out = tmp_path / "cap"
    running = Capturing(cniscope("capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,gone,b", "--filter",
                                 "udp port 9999", "--count", "3", "--duration", "60", "--keep-going", "-o", str(out)))
    netns.run("a", sys.executable, "-c", UDP_BLAST, "10.77.0.2", "3")
    code, err = running.finish(timeout=120)
    assert code == 5 and "gone: not recorded: " in err, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [node["name"] for node in manifest["nodes"]] == ["a", "b"]
    assert [node["packets"] for node in manifest["nodes"]] == [3, 3]
    assert [node["name"] for node in manifest["unreachable"]] == ["gone"]
