"""checksum_offload from a real pcap: a TCP exchange captured on its sender, where the kernel left the checksum to offload.

client (cst-csum-<pid>-c) eth0 10.79.1.2 -- c0 router (-r) s0 -- eth0 10.79.2.2 server (-s), python http.server :8080

Every veth offloads TX checksums by default: the client's and the server's own packets leave with only the
pseudo-header sum in the checksum field, and tcpdump on their own node sees them so. The router's two veths
have TX checksumming turned off (`ethtool -K ... tx off`), so the kernel completes the checksum as it forwards,
as a NIC would on the wire: each end receives the other's packets with good checksums.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from cniscope.ingest import read
from cniscope.packets.schema import Direction
from cniscope.sources import InputSpec
from tests.marks import needs_root
from tests.netns import remove_namespaces, sh, stop_tcpdump

pytestmark = needs_root

CNISCOPE = Path(sys.executable).with_name("cniscope")
PORT = 8080


class Lab:
    """Three namespaces named with this test's prefix; `down` removes them and the processes by exact name and pid."""

    def __init__(self) -> None:
        self.prefix = f"cst-csum-{os.getpid()}-"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def ns(self, role: str) -> str:
        return self.prefix + role

    def up(self, www: Path) -> None:
        for role in ("c", "r", "s"):
            name = self.ns(role)
            sh("ip", "netns", "add", name)
            self.namespaces.append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
        c, r, s = self.ns("c"), self.ns("r"), self.ns("s")
        sh("ip", "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "c0", "netns", r)
        sh("ip", "-n", s, "link", "add", "eth0", "type", "veth", "peer", "name", "s0", "netns", r)
        for name, dev, addr in ((c, "eth0", "10.79.1.2/24"), (r, "c0", "10.79.1.1/24"), (r, "s0", "10.79.2.1/24"),
                                (s, "eth0", "10.79.2.2/24")):
            sh("ip", "-n", name, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", name, "link", "set", dev, "up")
        sh("ip", "-n", c, "route", "add", "default", "via", "10.79.1.1")
        sh("ip", "-n", s, "route", "add", "default", "via", "10.79.2.1")
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for dev in ("c0", "s0"):
            sh("ip", "netns", "exec", r, "ethtool", "-K", dev, "tx", "off")
        assert "tx-checksumming: on" in sh("ip", "netns", "exec", c, "ethtool", "-k", "eth0"), "veths offload by default"
        self.spawn(s, "python3", "-m", "http.server", str(PORT), "--bind", "10.79.2.2", "--directory", str(www))
        deadline = time.monotonic() + 60  # a bound: a loaded machine takes seconds to start Python
        while f"10.79.2.2:{PORT}" not in sh("ip", "netns", "exec", s, "ss", "-ltn", check=False):
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.05)

    def spawn(self, ns: str, *argv: str, stderr: int = subprocess.DEVNULL) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        self.procs.append(proc)
        return proc

    def capture(self, role: str, path: Path) -> subprocess.Popen:
        proc = self.spawn(self.ns(role), "tcpdump", "-i", "any", "-nn", "--immediate-mode", "-Z", "root", "-w", str(path),
                          f"tcp port {PORT}", stderr=subprocess.PIPE)
        assert proc.stderr is not None
        proc.stderr.readline()  # "listening on any ..." once the socket is open
        return proc

    def down(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        remove_namespaces(self.namespaces)


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    tmp = tmp_path_factory.mktemp("csum")
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_text("checksums\n" * 100)
    lab = Lab()
    try:
        lab.up(tmp / "www")
        client, server = tmp / "client.pcap", tmp / "server.pcap"
        dumps = [lab.capture("c", client), lab.capture("s", server)]
        curl = subprocess.run(["ip", "netns", "exec", lab.ns("c"), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               "--max-time", "5", f"http://10.79.2.2:{PORT}/"], capture_output=True, text=True, timeout=15)
        assert curl.stdout == "200", curl
        for dump in dumps:
            stop_tcpdump(dump)
        yield client, server
    finally:
        lab.down()


def tcp_rows(path: Path) -> pl.DataFrame:
    capture = read([InputSpec(str(path))])
    assert not capture.warnings
    return capture.table.filter(pl.col("proto") == 6)


def test_the_sender_sees_unfinished_checksums_the_receiver_good_ones(captured: tuple[Path, Path]) -> None:
    client, server = (tcp_rows(p) for p in captured)
    sent, got = (t.filter(pl.col("direction") == Direction.OUT) for t in (client, server))
    received, answered = (t.filter(pl.col("direction") == Direction.IN) for t in (server, client))
    assert sent.height >= 5 and got.height >= 5, "handshake, request, acks and teardown each way"
    assert sent["l4_csum_bad"].to_list() == [True] * sent.height  # left to offload
    assert got["l4_csum_bad"].to_list() == [True] * got.height
    # the same packets, as they arrived at the other end: completed on the way, good
    key = ["seq", "ack", "tcp_flags", "payload_len", "payload_digest"]
    arrived = sent.join(received, on=key, how="left", suffix="_there", nulls_equal=True)
    assert arrived["l4_csum_bad_there"].to_list() == [False] * sent.height
    back = got.join(answered, on=key, how="left", suffix="_there", nulls_equal=True)
    assert back["l4_csum_bad_there"].to_list() == [False] * got.height


def test_analyze_calls_it_an_artefact_and_nothing_else(captured: tuple[Path, Path]) -> None:
    client, _ = captured
    done = subprocess.run([str(CNISCOPE), "analyze", "--json", f"client={client}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert [f for f in findings if f["severity"] != "info"] == [], findings
    offload = [f for f in findings if f["kind"] == "checksum_offload"]
    assert len(offload) == 1, findings
    finding = offload[0]
    assert finding["node"] == "client"
    sent = tcp_rows(client).filter(pl.col("direction") == Direction.OUT)
    assert finding["evidence"]["sent"] == finding["evidence"]["packets"] == sent.height  # all captured where sent
    assert finding["evidence"]["received"] == 0
    assert sorted(finding["rows"]) == sent["frame"].to_list()  # exactly the client's own packets
