"""Inference, roles and expected paths on real kernel captures: lab clusters of the models this kernel can build.

Each lab is built from network namespaces by `cniscope.lab` (real bridges, veths, VXLAN, proxy ARP,
iptables), two scenarios are captured with tcpdump on every node, and the capture must name its model,
label every hop, and raise no path finding.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cniscope.ingest import manifest_inputs, read
from cniscope.inventory import load
from cniscope.models.infer import infer
from cniscope.models.roles import compare, label
from tests.marks import needs_root

from .helpers import journeys_of

PREFIX = f"m{os.getpid() % 100000}"  # lab names of this module: cnl-m<pid>-<model>...


# The models this kernel can build (no ipip, kernel geneve or ipvs here: see LAB-NOTES; OVS runs in user space).
BUILDABLE = ["kube-router", "flannel-vxlan", "flannel-host-gw", "calico-bgp", "calico-vxlan", "antrea-geneve", "flannel-udp", "weave"]


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if PREFIX in line.split()[0]]


@needs_root
@pytest.mark.parametrize("model", BUILDABLE)
def test_lab_capture_names_its_model(model: str, tmp_path: Path) -> None:
    from cniscope.lab.cluster import Lab
    from cniscope.lab.scenarios import record
    from cniscope.lab.spec import default_spec

    spec = default_spec(model, 2, name=f"{PREFIX}{BUILDABLE.index(model)}")
    with Lab.up(spec) as lab:
        for scenario in ("cross-node", "node-port"):
            assert record(lab, scenario, tmp_path).ok
    assert _namespaces() == []
    for scenario in ("cross-node", "node-port"):
        table = read(manifest_inputs(str(tmp_path / scenario))).table  # one pcapng per node, as the manifest names them
        journeys = journeys_of(table)
        for inventory in (None, load(str(tmp_path / scenario / "cluster.yaml"))):
            verdict = infer(table, journeys, inventory)
            assert verdict.name == model, (scenario, verdict.candidates[:3], verdict.evidence)
            labelled = label(journeys, table, verdict, inventory)
            assert all(h.role for j in labelled for h in j.hops)
            assert compare(labelled, table, verdict, inventory) == []
