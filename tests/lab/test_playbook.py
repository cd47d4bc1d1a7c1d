"""A lab's build and removal, command by command, against a recording host (tests/hosts.py): no root needed.

The lab tests marked root build the same labs for real; these say exactly which commands the executor and
the teardown run for a plan: batched per namespace, daemons started together, routes waited for, nothing
outside the lab's namespaces.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cniscope import host
from cniscope.errors import EnvironmentProblem, ExitCode
from cniscope.host import Command
from cniscope.lab import executor
from cniscope.lab import state as lab_state
from cniscope.lab.builders import plan_lab
from cniscope.lab.spec import default_spec
from cniscope.lab.steps import Daemon, Step, WaitRoutes
from tests.hosts import Recorder, Reply

NAMESPACES = ["cnl-pb-underlay", "cnl-pb-node1", "cnl-pb-node2", "cnl-pb-web1", "cnl-pb-client1", "cnl-pb-web2"]


class FarSide:
    """What the machine would answer: each daemon writes its pid file, BGP has learned every route."""

    def __init__(self, steps: list[Step]) -> None:
        self.pidfiles = {("ip", "netns", "exec", d.ns, *d.argv): d.pidfile for d in steps if isinstance(d, Daemon)}
        self.prefixes = [prefix for step in steps if isinstance(step, WaitRoutes) for prefix in step.prefixes]

    def __call__(self, command: Command) -> Reply | None:
        if command.argv in self.pidfiles:
            Path(self.pidfiles[command.argv]).write_text("4242\n")
        elif command.argv[-3:] == ("-j", "route", "show"):
            return Reply(stdout=json.dumps([{"dst": prefix} for prefix in self.prefixes]))
        return None


def test_a_lab_is_built_with_one_command_per_namespace_and_kind(tmp_path: Path) -> None:
    steps = plan_lab(default_spec("kube-router", 2, name="pb"), root=tmp_path)
    recorder = Recorder(FarSide(steps))
    with host.swapped(recorder):
        pids = executor.apply(steps)
    assert pids == {"nginx web1": 4242, "nginx client1": 4242, "nginx web2": 4242, "bird node1": 4242, "bird node2": 4242}
    assert [c.purpose for c in recorder.commands] == [
        "create namespaces",
        *(f"sysctl in {ns}" for ns in NAMESPACES),
        "ip -n cnl-pb-underlay -batch", "ip -n cnl-pb-node1 -batch", "ip -n cnl-pb-node2 -batch",
        "ip -n cnl-pb-underlay -batch",  # the nodes' veth ends join the underlay bridge once they exist
        "ip -n cnl-pb-web1 -batch", "ip -n cnl-pb-client1 -batch", "ip -n cnl-pb-web2 -batch",
        "iptables-restore in cnl-pb-node1", "iptables-restore in cnl-pb-node2",
        "start nginx web1", "start nginx client1", "start nginx web2", "start bird node1", "start bird node2",
        "list the routes of cnl-pb-node1", "list the routes of cnl-pb-node2",
    ]
    first, sysctl = recorder.commands[:2]
    assert first == Command(("ip", "-batch", "-"), "create namespaces", "".join(f"netns add {ns}\n" for ns in NAMESPACES))
    assert sysctl.argv == ("ip", "netns", "exec", "cnl-pb-underlay", "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                           "net.ipv6.conf.default.disable_ipv6=1")
    underlay = recorder.commands[7]
    assert underlay.argv == ("ip", "-n", "cnl-pb-underlay", "-batch", "-")
    assert underlay.stdin == "link set lo up\nlink add br0 type bridge\naddr add 192.168.200.1/24 dev br0\nlink set br0 up\n"
    bird = recorder.commands[-3]
    assert bird.argv[:6] == ("ip", "netns", "exec", "cnl-pb-node2", "bird", "-c")
    assert recorder.commands[-1] == Command(("ip", "-n", "cnl-pb-node2", "-j", "route", "show"), "list the routes of cnl-pb-node2")


@pytest.mark.parametrize("model", ["kube-router", "flannel-vxlan", "calico-bgp", "antrea-geneve", "weave"])
def test_every_command_stays_inside_the_lab(model: str, tmp_path: Path) -> None:
    """Each command names one of the lab's namespaces (`ip -n NS`, `ip netns exec NS`), or creates them."""
    steps = plan_lab(default_spec(model, 2, name="pb"), root=tmp_path)
    recorder = Recorder(FarSide(steps))
    with host.swapped(recorder):
        executor.apply(steps)
    for command in recorder.commands[1:]:
        ns = command.argv[2] if command.argv[1] == "-n" else command.argv[3]
        assert command.argv[:2] in (("ip", "-n"), ("bridge", "-n"), ("ip", "netns")) and ns.startswith("cnl-pb-"), command
    assert all(line.startswith("netns add cnl-pb-") for line in (recorder.commands[0].stdin or "").splitlines())


def test_a_step_the_machine_refuses_is_its_to_fix_and_names_the_steps(tmp_path: Path) -> None:
    steps = plan_lab(default_spec("kube-router", 2, name="pb"), root=tmp_path)

    def refuse(command: Command) -> Reply | None:
        if command.argv[:3] == ("ip", "-n", "cnl-pb-node1"):
            return Reply(returncode=2, stderr="RTNETLINK answers: Operation not supported\n")
        return None

    with host.swapped(Recorder(refuse)), pytest.raises(EnvironmentProblem) as raised:
        executor.apply(steps)
    assert raised.value.exit_code == ExitCode.ENVIRONMENT
    said = str(raised.value)
    assert said.startswith("ip -n cnl-pb-node1 -batch: exit 2: RTNETLINK answers: Operation not supported\n  while applying:\n")
    assert "ip -n cnl-pb-node1 link add eth0 type veth peer name port1 netns cnl-pb-underlay" in said


def test_a_lab_is_removed_with_one_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its namespaces deleted by their exact names in one `ip -batch`; one already gone is not asked for."""
    monkeypatch.setattr(lab_state, "NETNS_DIR", tmp_path / "netns")
    (tmp_path / "netns").mkdir()
    for ns in NAMESPACES[:-1]:
        (tmp_path / "netns" / ns).touch()
    monkeypatch.setattr(lab_state, "state_dir", lambda name: tmp_path / "labs" / name)
    state = lab_state.LabState(default_spec("kube-router", 2, name="pb"), owner=1, owner_start=None, namespaces=NAMESPACES)
    recorder = Recorder()
    with host.swapped(recorder):
        assert lab_state.teardown(state) == []
    assert recorder.commands == [
        Command(("ip", "-batch", "-"), "delete the namespaces of lab pb", "".join(f"netns del {ns}\n" for ns in NAMESPACES[:-1]))
    ]
