"""`cniscope demo` tells the seed's story: every packet seen 3 times on node3, NIC, kube-bridge, pod veth."""

from __future__ import annotations

import os
import subprocess

import polars as pl

from cniscope.demo import run_demo
from cniscope.ingest import read
from cniscope.lab.naming import veth_name
from cniscope.packets.schema import ip4_value
from cniscope.sources import InputSpec
from tests.marks import needs_root

from .conftest import assert_no_leak

pytestmark = needs_root


def test_demo_reproduces_the_seed(tmp_path) -> None:
    said: list[str] = []
    report = run_demo(tmp_path, echo=said.append)
    assert_no_leak_of_demo()
    assert "master2$ curl 10.244.3.10   (node3# tcpdump -i any port 80)" in said
    assert "  nginx on node3" in said  # the curl got nginx's answer
    veth = veth_name("nginx")
    assert {j.summary.split()[0] for j in report.journeys} == {"TCP"}  # port 80 only, as the seed was taken
    to_pod = [j for j in report.journeys if j.summary.startswith("TCP 192.168.200.21:")]
    from_pod = [j for j in report.journeys if j.summary.startswith("TCP 10.244.3.10:80 >")]
    assert len(to_pod) >= 5 and len(from_pod) >= 3  # handshake, request, answer, teardown
    assert {tuple(h.point for h in j.hops) for j in to_pod} == {("node3 eth0 In", "node3 kube-bridge Out", f"node3 {veth} Out")}
    assert {tuple(h.point for h in j.hops) for j in from_pod} == {(f"node3 {veth} In", "node3 kube-bridge In", "node3 eth0 Out")}
    assert report.model.name == "kube-router"
    table = read([InputSpec(str(tmp_path / "node3.pcapng"), node="node3")]).table  # the same, counted from the pcapng
    tcp = table.filter(pl.col("dst").is_in([ip4_value("10.244.3.10")]) & (pl.col("proto") == 6))
    assert set(tcp.group_by("seq", "ack", "tcp_flags").len()["len"].to_list()) == {3}


def assert_no_leak_of_demo() -> None:
    """The demo's lab is named demo<pid>: none of its namespaces may remain."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert [line for line in out.splitlines() if line.startswith(f"cnl-demo{os.getpid()}-")] == []
    assert_no_leak()


def test_demo_keeps_its_capture_and_says_how_to_open_it(tmp_path) -> None:
    import sys

    out = tmp_path / "demo"
    shown = subprocess.run([sys.executable, "-m", "cniscope", "demo", "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert {"node3.pcapng", "manifest.json", "cluster.yaml", "report.html"} <= {p.name for p in out.iterdir()}
    told = shown.stdout.splitlines()
    assert f"  open the HTML report:  xdg-open {out / 'report.html'}   (or any browser: {(out / 'report.html').as_uri()})" in told
    again = next(line.split(":", 1)[1].split() for line in told if line.startswith("  analyse it again:"))
    assert again == ["cniscope", "analyze", str(out)]
    rerun = subprocess.run([sys.executable, "-m", "cniscope", *again[1:]], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and "to pod default/nginx" in rerun.stdout  # its cluster.yaml, unasked
