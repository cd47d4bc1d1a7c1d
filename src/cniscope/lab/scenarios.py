"""Named scenarios: the textbook capture of each model's traffic kinds.

Each scenario is an HTTP GET from a source to a target of the default lab
(see spec.default_spec), captured on every node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cniscope.lab.cluster import Lab
from cniscope.lab.cluster_yaml import write_inventory
from cniscope.lab.record import NodeCapture, capture
from cniscope.lab.spec import LabSpec


@dataclass(frozen=True)
class Scenario:
    source: str
    target: str  # {last} is the last node's index
    what: str


SCENARIOS: dict[str, Scenario] = {
    "same-node": Scenario("client1", "web1", "pod to pod on one node"),
    "cross-node": Scenario("client1", "web{last}", "pod to pod across nodes"),
    "cluster-ip": Scenario("client1", "web", "pod to a ClusterIP service (DNAT on the client's node)"),
    "node-port": Scenario("node1", "node{last}:30080", "node to another node's NodePort (DNAT + masquerade)"),
}


@dataclass
class Recorded:
    scenario: str
    ok: bool
    body: str
    captures: list[NodeCapture]
    inventory: Path


def target_of(spec: LabSpec, scenario: Scenario) -> str:
    return scenario.target.format(last=len(spec.nodes))


def record(lab: Lab, name: str, outdir: str | Path) -> Recorded:
    """Capture scenario `name` on every node of `lab` into outdir/<name>/."""
    scenario = SCENARIOS[name]
    target = target_of(lab.spec, scenario)
    directory = Path(outdir) / name
    captures, result = capture(lab, [n.name for n in lab.spec.nodes], directory, lambda: lab.curl(scenario.source, target))
    inventory = write_inventory(lab.spec, directory / "cluster.yaml")
    return Recorded(name, result.returncode == 0, result.stdout, captures, inventory)
