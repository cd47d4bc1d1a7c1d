"""Each buildable model: real HTTP over the four paths, and the sightings per packet its datapath gives."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest

from cniscope.analyze import analyze
from cniscope.lab.cluster import Lab
from cniscope.lab.cluster_yaml import write_inventory
from cniscope.lab.naming import antrea_port, cali_name, veth_name, weave_port
from cniscope.lab.record import capture
from cniscope.lab.spec import default_spec
from cniscope.packets.schema import Direction, Tunnel
from cniscope.sources import InputSpec
from tests.marks import needs_root

from .conftest import lab_name
from .helpers import BUILDABLE, read_captures, syn_sightings

pytestmark = needs_root
INGRESS = (Direction.IN, Direction.OTHERHOST)  # OVS ports see frames addressed to the switch's MACs as otherhost

# Where a pod-to-pod SYN from node1 shows on the destination node (node2), in order.
DESTINATION_PATH = {
    "kube-router": ["eth0", "kube-bridge", "veth"],
    "flannel-vxlan": ["eth0", "flannel.1", "cni0", "veth"],
    "flannel-host-gw": ["eth0", "cni0", "veth"],
    "calico-bgp": ["eth0", "cali"],
    "calico-vxlan": ["eth0", "vxlan.calico", "cali"],
    "flannel-udp": ["eth0", "flannel0", "cni0", "veth"],  # the relay writes the packet into flannel0
    "antrea-geneve": ["eth0", "veth"],
    "weave": ["eth0", "vethwe-datapath", "vethwe-bridge", "veth"],  # bridged through the vethwe pair, never routed  # userspace OVS: no kernel Geneve device, the envelope is opened in OVS
}
POD_PORT = {"kube-router": veth_name, "flannel-vxlan": veth_name, "flannel-host-gw": veth_name, "flannel-udp": veth_name, "calico-bgp": cali_name,
            "calico-vxlan": cali_name, "antrea-geneve": antrea_port, "weave": weave_port}
ENVELOPE = {"flannel-vxlan": (8472, 1), "calico-vxlan": (4789, 4096), "antrea-geneve": (6081, 0),
            "flannel-udp": (8285, None), "weave": (6784, 1 << 12 | 2)}  # UDP port, VNI (flannel's UDP backend has none)


@pytest.fixture(scope="module", params=BUILDABLE)
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    with Lab.up(default_spec(request.param, nodes=2, name=lab_name(request.param))) as built:
        yield built


@pytest.mark.parametrize(
    ("source", "target", "answer"),
    [
        ("client1", "web1", "web1 on node1"),  # pod to pod, same node
        ("client1", "web2", "web2 on node2"),  # pod to pod, across nodes
        ("client1", "web", "web2 on node2"),  # pod to ClusterIP (DNAT on node1)
        ("node1", "node2:30080", "web2 on node2"),  # node to NodePort (DNAT + masquerade on node2)
        ("node1", "web", "web2 on node2"),  # host to ClusterIP (DNAT in OUTPUT)
        ("web1", "web-local", "web1 on node1"),  # a pod through its own Service (hairpin)
    ],
)
def test_http(lab: Lab, source: str, target: str, answer: str) -> None:
    result = lab.curl(source, target)
    assert (result.returncode, result.stdout) == (0, answer + "\n"), result.stderr


def test_sightings_on_the_destination_node(lab: Lab, tmp_path) -> None:
    nodes = [n.name for n in lab.spec.nodes]
    captures, result = capture(lab, nodes, tmp_path, lambda: lab.curl("client1", "web2"))
    assert result.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "merged.pcapng", "node1.pcapng", "node2.pcapng"]
    assert all(c.dropped == 0 for c in captures)
    table = read_captures(captures)
    syn = syn_sightings(table, "node2", "10.244.2.10")
    pod_iface = POD_PORT[lab.spec.model]("web2")
    expected = [pod_iface if name in ("veth", "cali") else name for name in DESTINATION_PATH[lab.spec.model]]
    assert syn["iface"].to_list() == expected
    assert syn["src"].n_unique() == 1 and syn["seq"].n_unique() == 1  # one packet, seen len(expected) times
    assert syn["direction"].to_list()[0] in INGRESS and syn["direction"].to_list()[-1] == Direction.OUT
    tunnelled = syn.filter(pl.col("tunnel") != Tunnel.NONE)
    if lab.spec.model in ENVELOPE:
        assert tunnelled["iface"].to_list() == ["eth0"]
        assert tunnelled.select("outer_dport", "vni").row(0) == ENVELOPE[lab.spec.model]
    else:
        assert tunnelled.height == 0
    if lab.spec.model == "antrea-geneve":  # tunnelled frames go to Antrea's global virtual MAC
        assert tunnelled["inner_eth_dst"].to_list() == [0xAABBCCDDEEFF]
    inventory = write_inventory(lab.spec, tmp_path / "cluster.yaml")
    report = analyze([InputSpec(str(c.path), node=c.node) for c in captures], cluster=str(inventory))
    assert report.model.name == lab.spec.model, report.model.evidence
