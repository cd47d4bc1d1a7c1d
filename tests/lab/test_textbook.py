"""The models built on Open vSwitch and on a TUN relay: each scenario's SYN is seen where the model's page says.

For every named scenario the lab records, the SYN's sightings on each node must be the model's expected
path segment for that kind of traffic (`cniscope models show MODEL`), step by step: same interface (or a
pod port of the right pod where the page names a pattern), same direction, only steps marked "may not show"
missing. The capture must also name the model and raise no warning or error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from cniscope.analyze import analyze
from cniscope.lab.cluster import Lab
from cniscope.lab.naming import antrea_port, veth_name, weave_port
from cniscope.lab.scenarios import SCENARIOS, record
from cniscope.lab.spec import BUILDABLE, default_spec
from cniscope.models import MODELS
from cniscope.models.base import Role, Side, Step, Traffic
from cniscope.packets.schema import Direction
from cniscope.results import Severity
from cniscope.sources import InputSpec

from tests.marks import needs_root

from .conftest import lab_name
from .helpers import SYN, read_captures

pytestmark = needs_root

NEW_MODELS = [m for m in ("antrea-geneve", "flannel-udp", "weave") if m in BUILDABLE]
POD_PORT: dict[str, Callable[[str], str]] = {"antrea-geneve": antrea_port, "flannel-udp": veth_name, "weave": weave_port}
TRAFFIC = {"same-node": Traffic.POD_TO_POD_SAME_NODE, "cross-node": Traffic.POD_TO_POD_CROSS_NODE,
           "cluster-ip": Traffic.POD_TO_SERVICE, "node-port": Traffic.EXTERNAL_TO_NODEPORT}
# (source pod or None for a node, destination pod) of each scenario in a two-node lab
PODS = {"same-node": ("client1", "web1"), "cross-node": ("client1", "web2"), "cluster-ip": ("client1", "web2"),
        "node-port": (None, "web2")}
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
def test_syn_follows_the_page(recorded: tuple[str, Path], scenario: str) -> None:
    model_name, out = recorded
    model = MODELS[model_name]
    path = model.path(TRAFFIC[scenario])
    assert path is not None
    source_pod, target_pod = PODS[scenario]
    port = POD_PORT.get(model_name)

    def name_of(step: Step) -> str:
        if step.role is Role.HOST_VETH and port is not None:
            return port(source_pod if step.direction == "In" else target_pod)  # type: ignore[arg-type]
        return step.iface

    table = read_captures(_captures(out / scenario))
    syn = table.filter(pl.col("tcp_flags") == SYN)
    for node, side in zip(NODES[scenario], (Side.SOURCE, Side.DESTINATION) if not path.one_node else (None,)):
        rows = syn.filter(pl.col("node") == node).sort("ts")
        seen = [(i, "In" if d in (Direction.IN, Direction.OTHERHOST) else "Out")
                for i, d in zip(rows["iface"].to_list(), rows["direction"].to_list(), strict=True)]
        steps = path.steps if side is None else path.segment(side)
        if not steps:
            continue  # the page leaves this side out: an external client (here node1 calling a NodePort)
        assert _fits(steps, seen, name_of), (scenario, node, seen, [(name_of(s), s.direction, s.optional) for s in steps])
    report = analyze([InputSpec(str(p), node=p.stem) for p in sorted((out / scenario).glob("node*.pcapng"))],
                     cluster=str(out / scenario / "cluster.yaml"))
    if scenario != "same-node":  # one node's pod ports alone do not tell the models apart
        assert report.model.name == model_name, report.model.evidence
    assert [f.title for f in report.findings if f.severity in (Severity.WARNING, Severity.ERROR)] == []


def _captures(directory: Path) -> list:
    from cniscope.lab.capture import NodeCapture

    return [NodeCapture(p.stem, p) for p in sorted(directory.glob("node*.pcapng"))]
