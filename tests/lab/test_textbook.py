"""The models built on Open vSwitch and on a TUN relay: every packet is seen where the model's page says.

For every named scenario the lab records, each packet of the HTTP exchange must show, on each node, the
model's expected path segment for that kind of traffic (`cniscope models show MODEL`), or its reply for
packets going back: same interface (or the pod port of the right pod where the page names a pattern), same
direction, in order, only steps marked "may not show" missing. The capture must also name the model
(except same-node, which shows only pod ports) and raise no warning or error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.lab.cluster import Lab
from cniscope.lab.naming import antrea_port, veth_name, weave_port
from cniscope.lab.scenarios import SCENARIOS, record
from cniscope.lab.spec import default_spec
from cniscope.models import MODELS
from cniscope.models.base import Role, Side, Step, Traffic
from cniscope.models.shapes import reply
from cniscope.results import Severity
from cniscope.sources import InputSpec
from tests.marks import needs_root

from .conftest import lab_name
from .helpers import BUILDABLE

pytestmark = needs_root

NEW_MODELS = [m for m in ("antrea-geneve", "flannel-udp", "weave") if m in BUILDABLE]
POD_PORT: dict[str, Callable[[str], str]] = {"antrea-geneve": antrea_port, "flannel-udp": veth_name, "weave": weave_port}
TRAFFIC = {"same-node": Traffic.POD_TO_POD_SAME_NODE, "cross-node": Traffic.POD_TO_POD_CROSS_NODE,
           "cluster-ip": Traffic.POD_TO_SERVICE, "node-port": Traffic.EXTERNAL_TO_NODEPORT}
# (source pod or None for a node, destination pod) of each scenario in a two-node lab
PODS = {"same-node": ("client1", "web1"), "cross-node": ("client1", "web2"), "cluster-ip": ("client1", "web2"),
        "node-port": (None, "web2")}
CLIENT = {"same-node": "10.244.1.11", "cross-node": "10.244.1.11", "cluster-ip": "10.244.1.11", "node-port": "192.168.200.11"}
NODES = {"same-node": ("node1",), "cross-node": ("node1", "node2"), "cluster-ip": ("node1", "node2"),
         "node-port": ("node1", "node2")}


@pytest.fixture(scope="module", params=NEW_MODELS)
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    out = tmp_path_factory.mktemp(request.param)
    with Lab.up(default_spec(request.param, nodes=2, name=lab_name("tb-" + request.param[:6]))) as lab:
        for scenario in SCENARIOS:
            assert record(lab, scenario, out).ok, scenario
    yield request.param, out


def _fits(steps: tuple[Step, ...], seen: list[tuple[str, str]], name_of: Callable[[Step], str]) -> bool:
    """`seen` (interface, In/Out) is `steps` in order, skipping only optional steps."""
    if not steps:
        return not seen
    step, rest = steps[0], steps[1:]
    if seen and seen[0] == (name_of(step), step.direction) and _fits(rest, seen[1:], name_of):
        return True
    return step.optional and _fits(rest, seen, name_of)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_packet_follows_the_page(recorded: tuple[str, Path], scenario: str) -> None:
    model_name, out = recorded
    path = MODELS[model_name].path(TRAFFIC[scenario])
    assert path is not None
    source_pod, target_pod = PODS[scenario]
    port = POD_PORT[model_name]

    def namer(sender: str | None, receiver: str | None) -> Callable[[Step], str]:
        """Interface names of the steps: a pod port is the sender's on the source side, the receiver's on the other."""
        return lambda step: port(sender if step.side is Side.SOURCE else receiver) if step.role is Role.HOST_VETH else step.iface  # type: ignore[arg-type]

    report = analyze([InputSpec(str(p), node=p.stem) for p in sorted((out / scenario).glob("node*.pcapng"))],
                     cluster=str(out / scenario / "cluster.yaml"))
    client = CLIENT[scenario]
    packets = [j for j in report.journeys if j.summary.startswith("TCP ")]
    assert len(packets) >= 6 and all(j.retransmission_of is None for j in packets)  # a whole HTTP exchange, no re-send
    for journey in packets:
        request = journey.summary.startswith(f"TCP {client}:")
        for node, side in zip(NODES[scenario], (Side.SOURCE, Side.DESTINATION) if not path.one_node else (None,)):
            steps = path.steps if side is None else path.segment(side)
            if not steps:
                continue  # the page leaves this side out: an external client (here node1 calling a NodePort)
            steps = steps if request else reply(steps)  # a reply's source side is the server's
            name_of = namer(source_pod, target_pod) if request else namer(target_pod, source_pod)
            seen = [(h.iface, "In" if h.direction in ("In", "P") else "Out") for h in journey.hops if h.node == node]
            assert _fits(steps, seen, name_of), (journey.summary, node, seen, [(name_of(s), s.direction, s.optional) for s in steps])
    if scenario != "same-node":  # one node's pod ports alone do not tell the models apart
        assert report.model.name == model_name, report.model.evidence
    assert [f.title for f in report.findings if f.severity in (Severity.WARNING, Severity.ERROR)] == []
