"""A capture over ssh and kubectl, command by command, against a recording host (tests/hosts.py): no root needed.

The far side is played by the test: each node's inventory is a fixed text, its tcpdump a replay that prints
the node-side wrapper's pid line and tcpdump's "listening on", streams an empty pcap until the stop command's
SIGTERM, then prints tcpdump's counts. The real ssh and kubectl flows are tested against sshd and a stand-in
kubectl in tests/capture/test_ssh.py and test_kubectl_flow.py (root); these say exactly what is run, in which
order, and whose fault a failure is.
"""

from __future__ import annotations

import json
import shlex
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from cniscope import host
from cniscope.capture import nodeside, runner
from cniscope.capture.plan import Limits, Plan, build, capture_step, stop_step
from cniscope.capture.transports import Kubectl, Ssh
from cniscope.errors import ExitCode, NodeProblem
from cniscope.host import Command
from tests.hosts import Recorder, Reply

LINKS = [{"ifindex": 1, "ifname": "lo", "mtu": 65536, "link_type": "loopback", "addr_info": []},
         {"ifindex": 2, "ifname": "eth0", "mtu": 1500, "link_type": "ether", "address": "02:00:00:00:00:01",
          "addr_info": [{"family": "inet", "local": "192.168.77.1", "prefixlen": 24}]}]
INVENTORY = "\n".join(["== uid", "0", "== hostname", "n1", "== ssh", "", "== links", json.dumps(LINKS), "== routes", "[]",
                       "== neigh", "[]", "== tcpdump", "tcpdump version 4.99.3", "libpcap version 1.10.3", "== end", ""])
PCAP = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 276)  # nanosecond pcap, LINUX_SLL2, no packets
LISTENING = "cniscope-pid {pid}\ntcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 65535 bytes\n"
COUNTS = "0 packets captured\n0 packets received by filter\n0 packets dropped by kernel\n"
SSH = ("ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "--")


class Nodes:
    """The nodes' side: inventories, tcpdump replays, stops; `unreachable` nodes answer as ssh does when it cannot connect."""

    def __init__(self, unreachable: tuple[str, ...] = ()) -> None:
        self.unreachable = unreachable
        self.recorder = Recorder(self.answer)

    def answer(self, command: Command) -> Reply | None:
        if any(node in command.argv for node in self.unreachable):
            return Reply(returncode=255, stderr="ssh: connect to host n2 port 22: Connection refused\n")
        if command.purpose.endswith("'s interfaces, routes, sysctls, versions"):
            return Reply(stdout=INVENTORY)
        if command.purpose.endswith("(pcap on stdout, pid on stderr)"):
            return Reply(stdout=PCAP, stderr=LISTENING, streams=True, after=COUNTS)
        if command.purpose.startswith("stop tcpdump on "):
            self.recorder.stop(command)
        return None

    def of(self, plan: Plan, node: str) -> list[Command]:
        """The commands that concern one node, in the order they ran (the runner works on nodes in threads)."""
        target = next(n for n in plan.nodes if n.label == node)
        return [c for c in self.recorder.commands if target.node in c.argv]


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    far = Nodes()
    yield far
    far.recorder.close()


def capture(plan: Plan, far: Nodes, out: Path) -> dict:
    with host.swapped(far.recorder):
        return runner.run(plan, out, action=lambda: None)


def test_ssh_capture_runs_inventory_capture_stop_inventory_on_every_node(nodes: Nodes, tmp_path: Path) -> None:
    plan = build(Ssh(), ["n1", "root@n2"], Limits(duration_s=5))
    manifest = capture(plan, nodes, tmp_path / "out")
    for node in manifest["nodes"]:
        pid = node["pid"]
        planned = next(n for n in plan.nodes if n.label == node["name"])
        assert nodes.of(plan, node["name"]) == [
            planned.inventory,
            capture_step(plan.transport, planned.node, plan.limits, plan.settings, None, sudo=False),
            stop_step(plan.transport, planned.node, pid, sudo=False),
            planned.inventory,
        ]
        assert node["tcpdump"] == {"captured": 0, "received": 0, "dropped": 0} and node["failed"] is None
    n2 = manifest["nodes"][1]
    assert nodes.of(plan, "n2")[2].argv == (*SSH, "root@n2", f"sh -c 'kill -s TERM \"$1\"' cniscope-stop {n2['pid']}")
    assert nodes.of(plan, "n2")[0].argv == (*SSH, "root@n2", shlex.join(nodeside.inventory_argv()))
    assert manifest["stop_reason"] == "action" and (tmp_path / "out" / "n2.pcapng").exists()
    assert len(nodes.recorder.commands) == 8


def test_kubectl_capture_creates_waits_uses_and_deletes_a_pod_per_node(nodes: Nodes, tmp_path: Path) -> None:
    transport = Kubectl(namespace="cniscope", session="pb")
    plan = build(transport, ["a", "b"], Limits(duration_s=5))
    manifest = capture(plan, nodes, tmp_path / "out")
    for node in manifest["nodes"]:
        planned = next(n for n in plan.nodes if n.label == node["name"])
        pod = transport.pod_name(node["name"])
        kubectl_exec = ("kubectl", "exec", "-n", "cniscope", pod, "-c", "capture", "--")
        create, wait, inventory, record, stop, again, delete = [c for c in nodes.recorder.commands if pod in " ".join(c.argv)
                                                                or pod in (c.stdin or "")]
        assert create.argv == ("kubectl", "create", "-f", "-")
        assert json.loads(create.stdin or "") == transport.manifest(node["name"], plan.limits.node_limit_s)
        assert wait.argv == ("kubectl", "wait", "-n", "cniscope", "--for=condition=Ready", f"pod/{pod}", "--timeout=120s")
        assert inventory == again == planned.inventory and inventory.argv[: len(kubectl_exec)] == kubectl_exec
        assert record == capture_step(transport, node["name"], plan.limits, plan.settings, None, sudo=False)
        assert stop.argv == (*kubectl_exec, "sh", "-c", 'kill -s TERM "$1"', "cniscope-stop", str(node["pid"]))
        assert delete.argv == ("kubectl", "delete", "pod", "-n", "cniscope", pod, "--ignore-not-found", "--wait=false", "--now")
    assert len(nodes.recorder.commands) == 14


def test_an_unreachable_node_is_the_node_s_fault_and_nothing_is_recorded(tmp_path: Path) -> None:
    far = Nodes(unreachable=("n2",))
    plan = build(Ssh(), ["n1", "n2"], Limits(duration_s=5))
    try:
        with pytest.raises(NodeProblem) as raised:
            capture(plan, far, tmp_path / "out")
    finally:
        far.recorder.close()
    assert raised.value.exit_code == ExitCode.ENVIRONMENT
    assert str(raised.value).startswith("cannot record on n2: record n2's interfaces, routes, sysctls, versions: exit 255: "
                                        "ssh: connect to host n2 port 22: Connection refused")
    assert not far.recorder.spawned  # no tcpdump started anywhere
    assert not (tmp_path / "out").exists()


def test_keep_going_records_on_the_nodes_it_reaches(tmp_path: Path) -> None:
    far = Nodes(unreachable=("n2",))
    plan = build(Ssh(), ["n1", "n2"], Limits(duration_s=5))
    try:
        with host.swapped(far.recorder):
            manifest = runner.run(plan, tmp_path / "out", action=lambda: None, keep_going=True)
    finally:
        far.recorder.close()
    assert [n["name"] for n in manifest["nodes"]] == ["n1"]
    assert manifest["unreachable"][0]["name"] == "n2"
    assert [c.purpose for c in far.of(plan, "n2")] == ["record n2's interfaces, routes, sysctls, versions"]
