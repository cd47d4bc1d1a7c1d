"""A hand-built two-node kube-router-like topology in network namespaces, for journey tests.

underlay (bridge br0) -- n1 eth0 192.168.200.21, n3 eth0 192.168.200.23
n1: kube-bridge 10.244.1.1/24 -- pod p1 10.244.1.10
n3: kube-bridge 10.244.3.1/24 -- pod p3 10.244.3.10 (python http.server on :80)
Routes between the nodes' pod CIDRs via the node addresses. Every namespace
carries a per-test prefix; everything is removed by exact name and pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from cniscope.wire.convert import Interface, sll2_pcap_to_pcapng
from cniscope.wire.pcapng import PcapngWriter


def sh(*argv: str, check: bool = True, timeout: float = 20) -> str:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=timeout).stdout


class Topology:
    NODES = {"n1": ("192.168.200.21", "10.244.1"), "n3": ("192.168.200.23", "10.244.3")}

    def __init__(self, tag: str) -> None:
        self.prefix = f"cst-jny-{os.getpid()}-{tag}-"
        self.namespaces: list[str] = []
        self.pids: list[int] = []

    def ns(self, role: str) -> str:
        return self.prefix + role

    def _add_ns(self, role: str) -> str:
        name = self.ns(role)
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        return name

    def up(self) -> Topology:
        u = self._add_ns("u")
        sh("ip", "-n", u, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", u, "link", "set", "br0", "up")
        for node, (addr, pods) in self.NODES.items():
            n = self._add_ns(node)
            sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            sh("ip", "-n", n, "link", "add", "eth0", "type", "veth", "peer", "name", f"u-{node}", "netns", u)
            sh("ip", "-n", u, "link", "set", f"u-{node}", "master", "br0", "up")
            sh("ip", "-n", n, "addr", "add", f"{addr}/24", "dev", "eth0")
            sh("ip", "-n", n, "link", "set", "eth0", "up")
            sh("ip", "-n", n, "link", "add", "kube-bridge", "type", "bridge")
            sh("ip", "-n", n, "addr", "add", f"{pods}.1/24", "dev", "kube-bridge")
            sh("ip", "-n", n, "link", "set", "kube-bridge", "up")
            pod = self._add_ns("p" + node[1:])
            veth = f"veth{node}pod"
            sh("ip", "-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", veth, "netns", n)
            sh("ip", "-n", n, "link", "set", veth, "master", "kube-bridge", "up")
            sh("ip", "-n", pod, "addr", "add", f"{pods}.10/24", "dev", "eth0")
            sh("ip", "-n", pod, "link", "set", "eth0", "up")
            sh("ip", "-n", pod, "route", "add", "default", "via", f"{pods}.1")
        sh("ip", "-n", self.ns("n1"), "route", "add", "10.244.3.0/24", "via", "192.168.200.23")
        sh("ip", "-n", self.ns("n3"), "route", "add", "10.244.1.0/24", "via", "192.168.200.21")
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns("p3"), "python3", "-m", "http.server", "80", "--bind", "10.244.3.10"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.pids.append(server.pid)
        deadline = time.monotonic() + 60  # a bound: a loaded machine takes seconds to start Python
        while "10.244.3.10:80" not in sh("ip", "netns", "exec", self.ns("p3"), "ss", "-ltn", check=False):
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.05)
        return self

    def start_capture(self, node: str, path: Path, bpf: str = "tcp port 80") -> subprocess.Popen:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(node), "tcpdump", "-i", "any", "-nn", "--immediate-mode", "-s", "65535",
             "-B", "32768", "-Z", "root", "-w", str(path), bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.pids.append(proc.pid)
        assert proc.stderr is not None
        proc.stderr.readline()  # "tcpdump: listening on any ..." once the socket is open
        return proc

    def stop_capture(self, proc: subprocess.Popen) -> None:
        stop_tcpdump(proc)

    def curl(self, pod: str, url: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns(pod), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               "--max-time", "5", url], capture_output=True, text=True, timeout=15)

    def interfaces(self, node: str) -> list[Interface]:
        links = json.loads(sh("ip", "-n", self.ns(node), "-j", "link", "show"))
        return [Interface(index=link["ifindex"], name=link["ifname"], mtu=link.get("mtu")) for link in links]

    def to_pcapng(self, node: str, pcap: Path, out: Path, shift_ns: int = 0) -> Path:
        data = shift_pcap(pcap.read_bytes(), shift_ns) if shift_ns else pcap.read_bytes()
        with PcapngWriter(str(out)) as writer:
            sll2_pcap_to_pcapng(data, writer, node, self.interfaces(node))
        return out

    def down(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        remove_namespaces(self.namespaces)


TCPDUMP_COUNTS = re.compile(r"(\d+) packets? captured, (\d+) packets? received by filter, (\d+) packets? dropped by kernel")


def stop_tcpdump(proc: subprocess.Popen, seconds: float = 60) -> None:
    """SIGTERM to a tcpdump (its standard error a pipe) once it has taken from its ring every packet the kernel gave
    it, as its counts on SIGUSR1 say (captured + dropped == received), not after a fixed sleep a loaded machine
    outruns: what is still in the ring when tcpdump stops is lost. Asked again until then, `seconds` at most."""
    assert proc.stderr is not None
    lines: queue.Queue[str | bytes] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True).start()
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGUSR1)
        counts = None
        with contextlib.suppress(queue.Empty):
            while counts is None:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                counts = TCPDUMP_COUNTS.search(line.decode() if isinstance(line, bytes) else line)
        if counts and int(counts[1]) + int(counts[3]) == int(counts[2]):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def remove_namespaces(namespaces: list[str]) -> None:
    """Kill what still runs in each namespace, then delete them, by exact name (last created first)."""
    for name in namespaces:
        for pid in sh("ip", "netns", "pids", name, check=False).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    for name in reversed(namespaces):
        sh("ip", "netns", "del", name, check=False)


def shift_pcap(data: bytes, shift_ns: int) -> bytes:
    """The same microsecond pcap with every timestamp moved by shift_ns (a node whose clock is off)."""
    import struct

    out = bytearray(data)
    assert struct.unpack_from("<I", data, 0)[0] == 0xA1B2C3D4, "expects a little-endian microsecond pcap"
    offset = 24
    while offset + 16 <= len(out):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", out, offset)
        total = sec * 1_000_000 + usec + shift_ns // 1000
        struct.pack_into("<II", out, offset, total // 1_000_000, total % 1_000_000)
        offset += 16 + caplen
    return bytes(out)
