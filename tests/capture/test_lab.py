"""`--via lab:NAME` on a real lab (cniscope.lab): node names map to the lab's namespaces, --pod to its pods."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cniscope.lab.cluster import Lab
from cniscope.lab.naming import veth_name
from cniscope.lab.spec import default_spec
from tests.marks import needs_root

from .conftest import Capturing, cniscope, comm, tshark_names


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab.up(default_spec("flannel-host-gw", nodes=2, name=f"cstcap{os.getpid()}")) as running:
        yield running


@needs_root
def test_lab_capture_by_node_and_pod(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "cap"
    running = Capturing(
        cniscope("capture", "--via", f"lab:{lab.name}", "--nodes", "node1", "--pod", "default/web2", "--filter", "tcp port 80",
                 "--duration", "60", "-o", str(out))
    )
    assert lab.curl("client1", "web2").returncode == 0
    code, err = running.interrupt()
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["transport"] == {"kind": "lab", "lab": lab.name, "prefix": f"cnl-{lab.name}-"}
    assert [n["name"] for n in manifest["nodes"]] == ["node1", "node2"]
    assert manifest["pods"][0]["host_name"] == veth_name("web2")
    node2 = set(tshark_names(out / "node2.pcapng"))
    assert node2 == {"eth0", veth_name("web2")}  # the pod filter: its veth and the NIC, not the bridge
    node1 = set(tshark_names(out / "node1.pcapng"))
    assert {veth_name("client1"), "eth0"} <= node1
    for node in manifest["nodes"]:
        assert node["tcpdump"]["dropped"] == 0 and comm(node["pid"]) is None
