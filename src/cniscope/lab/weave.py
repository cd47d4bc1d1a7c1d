"""Weave Net's fast datapath, as the weave router programs it into Open vSwitch, for a lab node.

Pods sit on vethwepl* veths in the Linux bridge `weave`, which reaches the
OVS bridge `datapath` through the veth pair vethwe-bridge/vethwe-datapath;
all pods share one L2 network across nodes. The router learns every peer's
MACs and installs flows: a frame for a MAC on another node leaves through
the VXLAN port vxlan-6784 (UDP 6784) with that node as tunnel destination,
broadcasts go to every peer, and whatever arrives from the tunnel goes to the
bridge. The VNI carries the source and destination peers' short ids (here
their positions in the lab, 12 bits each). Ports: 1 vxlan-6784, 2 vethwe-datapath.
"""

from __future__ import annotations

from cniscope.lab.naming import lab_mac
from cniscope.lab.spec import LabSpec, Node

VXLAN_PORT, BRIDGE_PORT = 1, 2
UDP_PORT = 6784
MTU = 1376  # weave's default: room for the VXLAN envelope and its own headers


def bridge_mac(node: Node) -> str:
    return lab_mac(node.gateway, "02:e0")


def pod_mac(ip: str) -> str:
    return lab_mac(ip, "02:e0")


def vni(spec: LabSpec, source: Node, destination: Node) -> int:
    return (spec.nodes.index(source) + 1) << 12 | (spec.nodes.index(destination) + 1)


def flows(spec: LabSpec, node: Node) -> list[str]:
    def to(other: Node) -> str:
        return f"set_field:{other.ip}->tun_dst,set_field:{vni(spec, node, other)}->tun_id,output:{VXLAN_PORT}"

    others = [other for other in spec.nodes if other != node]
    out = [f"priority=200,in_port={VXLAN_PORT} actions=output:{BRIDGE_PORT}"]
    for other in others:
        for mac in [bridge_mac(other)] + [pod_mac(p.ip) for p in spec.pods_on(other.name)]:
            out.append(f"priority=200,in_port={BRIDGE_PORT},dl_dst={mac} actions={to(other)}")
    if others:
        out.append(f"priority=100,in_port={BRIDGE_PORT},dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions="
                   + ",".join(to(other) for other in others))
    out.append("priority=0 actions=drop")
    return out
