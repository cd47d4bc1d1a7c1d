"""Labs come and go without leaks: CLI round trip, SIGKILLed owner reaped, side-by-side twins, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cniscope.errors import EnvironmentProblem, ExitCode, InputError, UsageError
from cniscope.ingest import read
from cniscope.lab import state as lab_state
from cniscope.lab.cluster import Lab
from cniscope.lab.naming import state_dir
from cniscope.lab.spec import Fault, default_spec
from cniscope.sources import InputSpec
from tests.marks import needs_root

from .conftest import assert_no_leak, lab_name, lab_namespaces

pytestmark = needs_root
CNISCOPE = [sys.executable, "-m", "cniscope"]


def cniscope(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CNISCOPE, *args], capture_output=True, text=True, timeout=timeout)


def alive(pid: int) -> bool:
    return not lab_state.gone(pid)


def test_cli_round_trip(tmp_path: Path) -> None:
    name = lab_name("cli")
    up = cniscope("lab", "up", "flannel-vxlan", "--nodes", "2", "--name", name)
    assert up.returncode == 0, up.stderr
    assert f"lab {name} (flannel-vxlan) up in" in up.stdout
    try:
        assert name in cniscope("lab", "list").stdout
        curl = cniscope("lab", "curl", name, "client1", "web2")
        assert (curl.returncode, curl.stdout) == (0, "web2 on node2\n")
        links = cniscope("lab", "exec", name, "node1", "--", "ip", "-br", "link")
        assert "flannel.1" in links.stdout and "cni0" in links.stdout
        out = tmp_path / "cap"
        cap = cniscope("lab", "capture", name, "--nodes", "node2", "-o", str(out), "--filter", "tcp port 80", "--",
                       "client1", "curl", "-s", "10.244.2.10")
        assert cap.returncode == 0 and cap.stdout == "web2 on node2\n", cap.stderr
        assert sorted(p.name for p in out.iterdir()) == ["cluster.yaml", "manifest.json", "merged.pcapng", "node2.pcapng"]
        table = read([InputSpec(str(out / "node2.pcapng"), node="node2")]).table
        assert table.height > 0 and set(table["sport"].to_list()) | set(table["dport"].to_list()) >= {80}
        assert all(80 in ports for ports in zip(table["sport"].to_list(), table["dport"].to_list(), strict=True))  # --filter
        fault = cniscope("lab", "fault", name, "drop", "node=node2", "iface=cni0", "dir=out")
        assert fault.returncode == 0 and "-I FORWARD -o cni0" in fault.stdout
        broken = cniscope("lab", "curl", name, "client1", "web2", "--max-time", "1")
        assert broken.returncode == 28  # curl: timed out
        bad = cniscope("lab", "exec", name, "node9", "--", "true")
        assert bad.returncode == ExitCode.USAGE and "no node named 'node9'" in bad.stderr
    finally:
        down = cniscope("lab", "down", name)
    assert down.returncode == 0, down.stderr
    assert_no_leak()


def host_links() -> set[str]:
    """Interfaces of the host's own namespace (the lab must never add any)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


LAB_DEVICES = {"br-phy", "br-int", "antrea-gw0", "ovs-netdev", "flannel0", "weave", "datapath", "cni0", "kube-bridge"}


# daemons each two-node lab starts: 3 nginx, then per node BIRD, or ovsdb-server and ovs-vswitchd, or the UDP relay
@pytest.mark.parametrize(("model", "daemon_count"), [("kube-router", 5), ("antrea-geneve", 7), ("flannel-udp", 5), ("weave", 7)])
def test_sigkilled_owner_is_reaped(model: str, daemon_count: int) -> None:
    name = lab_name("orphan-" + model[:6])
    script = (
        "import sys, time\n"
        "from cniscope.lab.cluster import Lab\n"
        "from cniscope.lab.spec import default_spec\n"
        f"Lab.up(default_spec({model!r}, 2, name={name!r}))\n"
        "print('up', flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "up\n"
        state = lab_state.load(name)
        assert state.owner == owner.pid and lab_state.owner_alive(state)
        daemons = list(state.pids.values())
        assert len(daemons) == daemon_count and all(alive(pid) for pid in daemons)
        assert len(lab_namespaces()) == 6
        assert name not in cniscope("lab", "reap").stdout  # owner alive: kept
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    listed = [line for line in cniscope("lab", "list").stdout.splitlines() if line.startswith(name + "\t")]
    reap = cniscope("lab", "reap")
    # Another test session's reaper may get there first; either way nothing of the lab may remain.
    if f"reaped lab {name}" not in reap.stdout:
        assert not state_dir(name).exists()
    else:
        assert listed and "gone" in listed[0]
    assert not any(alive(pid) for pid in daemons)
    assert host_links() & LAB_DEVICES == set()  # no tap, TUN device or bridge of the lab ever appears in the host's namespace
    assert_no_leak()


def test_two_identical_labs_side_by_side() -> None:
    first = Lab.up(default_spec("calico-bgp", 2, name=lab_name("twin-a")))
    try:
        second = Lab.up(default_spec("calico-bgp", 2, name=lab_name("twin-b")))
        try:
            for lab in (first, second):
                assert lab.curl("client1", "web2").stdout == "web2 on node2\n"
            first.fault(Fault("drop", {"node": "node2", "iface": "eth0"}))
            assert first.curl("client1", "web2", max_time=1).returncode == 28
            assert second.curl("client1", "web2").returncode == 0  # the twin is untouched
        finally:
            second.down()
    finally:
        first.down()
    assert_no_leak()


@pytest.mark.parametrize(("model", "feature"), [("calico-ipip", "IPIP"), ("kube-router-ipip", "IPIP"), ("cilium-geneve", "Geneve"),
                                                ("kube-proxy-ipvs", "IPVS"), ("cilium-vxlan", "eBPF")])
def test_unbuildable_models_are_refused(model: str, feature: str) -> None:
    result = cniscope("lab", "up", model, "--name", lab_name("refused"))
    assert result.returncode == ExitCode.ENVIRONMENT
    assert f"cannot build {model} here" in result.stderr and feature in result.stderr
    assert_no_leak()


def test_failed_build_leaves_nothing() -> None:
    spec = default_spec("flannel-host-gw", 2, name=lab_name("broken"))
    spec = replace(spec, faults=(Fault("mtu", {"node": "node1", "iface": "no-such-if", "mtu": "1400"}),))
    with pytest.raises(EnvironmentProblem, match="no-such-if"):
        Lab.up(spec)
    assert not state_dir(spec.name).exists()
    assert_no_leak()


def test_taken_name_is_refused() -> None:
    with Lab.up(default_spec("flannel-host-gw", 1, name=lab_name("taken"))) as lab:
        with pytest.raises(InputError, match="exists already"):
            Lab.up(default_spec("flannel-host-gw", 1, name=lab.name))
        state = json.loads((state_dir(lab.name) / "state.json").read_text())
        assert state["owner"] == os.getpid()
    assert_no_leak()


def test_up_and_down_are_recorded() -> None:
    started = time.monotonic()
    with Lab.up(default_spec("kube-router", 2, name=lab_name("timed"))) as lab:
        assert 0 < lab.state.up_seconds < time.monotonic() - started
        assert lab.state.converge_seconds is not None and lab.state.converge_seconds > 0  # BGP routes learned
        routes = lab.exec("node1", ["ip", "route", "show", "10.244.2.0/24"]).stdout
        assert "via 192.168.200.12" in routes and "proto bird" in routes
    assert_no_leak()


def test_faults_in_a_spec_are_applied_after_the_build() -> None:
    spec = default_spec("flannel-host-gw", 2, name=lab_name("specfault"))
    spec = replace(spec, faults=(Fault("br-netfilter-off", {"node": "node1"}),))
    with Lab.up(spec) as lab:
        assert lab.exec("node1", ["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"]).stdout.strip() == "0"
        assert lab.exec("node2", ["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"]).stdout.strip() == "1"
        assert lab.curl("client1", "web-local", max_time=1).returncode != 0
        assert lab.curl("client1", "web2").returncode == 0
    assert_no_leak()


def test_bad_fault_in_a_spec_is_refused_before_building() -> None:
    spec = replace(default_spec("kube-router", 2, name=lab_name("badfault")), faults=(Fault("drop", {"node": "node9", "iface": "eth0"}),))
    with pytest.raises(UsageError, match="no node named 'node9'"):
        Lab.up(spec)
    assert not state_dir(spec.name).exists()
    assert_no_leak()


FORKER = """
import os, time
for _ in range(3000):  # bounded: a child every millisecond, each gone by itself after 30 s
    if os.fork() == 0:
        time.sleep(30)
        os._exit(0)
    time.sleep(0.001)
"""


def test_a_namespace_is_emptied_even_of_processes_born_while_it_is_killed() -> None:
    """A daemon caught forking (nginx's master starting its worker) makes processes one scan never saw."""
    ns = f"cnl-{lab_name('forker')}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        forker = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", FORKER])
        deadline = time.monotonic() + 60  # until the forker is busy making children (a loaded machine starts Python late)
        while len(lab_state.pids_in([ns])) <= 10:
            assert time.monotonic() < deadline, "the forker did not start forking"
            time.sleep(0.01)
        assert lab_state.empty([ns]) == []
        assert lab_state.pids_in([ns]) == []
        forker.wait(timeout=10)
    finally:
        lab_state.empty([ns])
        subprocess.run(["ip", "netns", "del", ns], check=False)
