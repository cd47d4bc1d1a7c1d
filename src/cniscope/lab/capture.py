"""Capture on lab nodes while an action runs, writing one pcapng per node with real interface names.

Per node: record the interface table (`ip -j -d addr`), start
`tcpdump --immediate-mode -s 65535 -B 32768 -Z root -i any -w` (LINUX_SLL2,
which stores interface *indexes*), wait until it listens, run the action,
stop tcpdump with SIGTERM by pid, then convert the SLL2 pcap to pcapng with one
interface block per real interface (cniscope.pcapng_writer). A manifest.json
(cniscope.capture.manifest) makes the directory an input of `cniscope analyze DIR`. tcpdump runs
under `timeout`, so it stops by itself even if we die; the reaper kills it
with the lab's namespaces either way.
"""

from __future__ import annotations

import json
import mmap
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cniscope.capture.manifest import write_manifest
from cniscope.capture.interfaces import interface_table, link_entry, merge_tables
from cniscope.capture.nodeside import parse_summary
from cniscope.errors import EnvironmentProblem
from cniscope.lab.cluster import Lab
from cniscope.lab.executor import run
from cniscope.pcapng_writer import PcapngWriter, sll2_pcap_to_pcapng

T = TypeVar("T")
TCPDUMP_LIMIT_S = 600  # tcpdump's own upper bound on a lab capture
START_TIMEOUT_S = 10
SETTLE_S = 0.1  # after the action, let the last packets reach every node's tap


@dataclass
class NodeCapture:
    node: str
    path: Path
    packets: int = 0
    dropped: int | None = None  # tcpdump's "dropped by kernel"
    warnings: list[str] = field(default_factory=list)


def _links(lab: Lab, node: str) -> list[dict[str, Any]]:
    out = run(["ip", "-n", lab.ns(node), "-j", "-d", "addr", "show"])
    return [link_entry(raw) for raw in json.loads(out)]


def _wait_listening(proc: subprocess.Popen[bytes], node: str) -> list[str]:
    """Read tcpdump's stderr until it says it listens; return the lines read."""
    assert proc.stderr is not None
    lines: list[str] = []
    buffer = b""
    deadline = time.monotonic() + START_TIMEOUT_S
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
            *done, buffer = buffer.split(b"\n")
            lines += [line.decode(errors="replace") for line in done]
            if any("listening on" in line for line in lines):
                return lines
    proc.kill()
    proc.wait()
    raise EnvironmentProblem(f"tcpdump on {node} did not start: {' '.join(lines)} {buffer.decode(errors='replace')}".strip())


def capture(
    lab: Lab, nodes: list[str], outdir: str | Path, action: Callable[[], T], bpf: str | None = None
) -> tuple[list[NodeCapture], T]:
    """Run `action` while capturing on `nodes` (only what `bpf` matches, if given); return per-node results and the action's value."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    started: list[tuple[str, subprocess.Popen[bytes], Path, list[dict[str, Any]]]] = []
    try:
        for node in nodes:
            raw = outdir / f".{node}.sll2.pcap"
            links = _links(lab, node)
            argv = ["ip", "netns", "exec", lab.ns(node), "timeout", "-s", "TERM", str(TCPDUMP_LIMIT_S),
                    "tcpdump", "--immediate-mode", "-s", "65535", "-B", "32768", "-Z", "root", "-i", "any", "-n",
                    "--time-stamp-precision", "nano", "-w", str(raw), *(["--", bpf] if bpf else [])]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            started.append((node, proc, raw, links))
            _wait_listening(proc, node)
        value = action()
        time.sleep(SETTLE_S)
    finally:
        for _, proc, _, _ in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _, _ in started:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    results = []
    for node, proc, raw, links in started:
        assert proc.stderr is not None
        summary = parse_summary(proc.stderr.read().decode(errors="replace").splitlines())
        proc.stderr.close()
        result = NodeCapture(node, outdir / f"{node}.pcapng", dropped=summary.dropped)
        table = interface_table(merge_tables(links, _links(lab, node)))
        with open(raw, "rb") as handle, PcapngWriter(str(result.path)) as writer:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(handle.fileno()).st_size else b""
            converted = sll2_pcap_to_pcapng(data, writer, node, table, hardware=f"cniscope lab {lab.name} ({lab.spec.model})")
        result.packets = converted.packets
        if converted.damage:
            result.warnings.append(f"{raw}: {converted.damage}")
        if converted.unknown_ifindex:
            result.warnings.append(f"interfaces not in {node}'s table: ifindex {converted.unknown_ifindex}")
        if summary.dropped:
            result.warnings.append(f"tcpdump on {node}: {summary.dropped} packets dropped by kernel")
        raw.unlink()
        results.append(result)
    write_manifest(outdir, {
        "format": "cniscope-capture",
        "version": 1,
        "transport": {"kind": "lab", "lab": lab.name, "model": lab.spec.model},
        "nodes": [{"name": r.node, "file": r.path.name, "packets": r.packets, "tcpdump": {"dropped": r.dropped},
                   "warnings": r.warnings} for r in results],
    })
    return results, value
