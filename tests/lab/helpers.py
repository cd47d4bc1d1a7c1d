"""Counting sightings in lab captures, through cniscope's own reader; a kept-alive connection across a conntrack flush."""

from __future__ import annotations

import subprocess
import sys

import polars as pl

from cniscope.ingest import read
from cniscope.lab.cluster import Lab
from cniscope.lab.record import NodeCapture
from cniscope.lab.spec import MODELS, Fault
from cniscope.packets.schema import ip4_value
from cniscope.sources import InputSpec

SYN = 2
BUILDABLE = tuple(name for name, info in MODELS.items() if info.buildable)  # the models the lab builds


def read_captures(captures: list[NodeCapture]) -> pl.DataFrame:
    capture = read([InputSpec(str(c.path), node=c.node) for c in captures])
    assert capture.warnings == []
    return capture.table


def syn_sightings(table: pl.DataFrame, node: str, dst: str, dport: int = 80) -> pl.DataFrame:
    """Sightings on `node` of the SYN(s) to dst:dport, in time order (inner packet columns for tunnelled ones)."""
    return table.filter(
        (pl.col("node") == node) & (pl.col("tcp_flags") == SYN) & (pl.col("dst") == ip4_value(dst)) & (pl.col("dport") == dport)
    ).sort("ts")


# Two requests on one kept-alive connection, a line on stdin between them; prints what each got.
KEEPALIVE_CLIENT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
request = b"GET / HTTP/1.1\\r\\nHost: lab\\r\\n\\r\\n"
s = socket.create_connection((host, port), timeout=3)
for round in (1, 2):
    if round == 2:
        sys.stdin.readline()
    try:
        s.sendall(request)
        answer = s.recv(4096)
        print("answer" if answer.startswith(b"HTTP/1.1 200") else "closed", flush=True)
    except ConnectionResetError:
        print("reset", flush=True)
    except socket.timeout:
        print("timeout", flush=True)
"""


def conntrack_flushed_mid_connection(lab: Lab) -> tuple[str, str]:
    """From node1, two requests on one connection to node2's NodePort, node2's conntrack flushed between them:
    what each request got ("answer", "reset", "timeout", "closed")."""
    host, port = lab.address("node2:30080").split(":")
    client = subprocess.Popen(["ip", "netns", "exec", lab.ns("node1"), sys.executable, "-c", KEEPALIVE_CLIENT, host, port],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        first = client.stdout.readline().strip()
        lab.fault(Fault("conntrack-flush", {"node": "node2"}))
        out, _ = client.communicate("go\n", timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    return first, out.strip()
