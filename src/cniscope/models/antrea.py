"""Antrea: pods on ports of the OVS bridge `br-int`, gateway `antrea-gw0`, Geneve tunnel `antrea-tun0`.

Cross-node traffic is forwarded at L3 by OpenFlow and sent to the remote node
with inner destination MAC aa:bb:cc:dd:ee:ff (the global virtual MAC).
Sources: antrea pkg/agent/openflow (GlobalVirtualMAC aa:bb:cc:dd:ee:ff),
docs/design/architecture.md (antrea-gw0, antrea-tun0, trafficEncapMode
encap default, tunnelType geneve default), OVS geneve vport genev_sys_6081.
"""

from __future__ import annotations

from dataclasses import replace

from cniscope.models.base import Encap, IfacePattern, MacSignature, Model, Path, Role, Side, Step, Traffic
from cniscope.models.shapes import switched
from cniscope.packets.kinds import Tunnel


def _paths() -> tuple[Path, ...]:
    """switched() paths, with the kernel's Geneve device optional and NodePorts through the host and antrea-gw0.

    genev_sys_6081 is the kernel datapath's device; with Open vSwitch's userspace datapath (the lab, OVS-DPDK)
    the envelope is built in user space and no tunnel device shows, while the node's own address sits on the
    uplink bridge br-phy that holds eth0, so the node's own packets cross br-phy too. NodePorts stay
    kube-proxy's with AntreaProxy's default (proxyAll off): DNAT in the node's stack, then antrea-gw0 into OVS.
    """
    src, dst = Side.SOURCE, Side.DESTINATION
    uplink = "userspace datapath: the node's address sits on the uplink bridge"
    out = []
    for path in switched("pod-xxxxxx", "genev_sys_6081", "antrea-gw0"):
        steps = tuple(replace(s, optional=True, note="kernel datapath only") if s.iface == "genev_sys_6081" else s
                      for s in path.steps)
        if path.traffic is Traffic.EXTERNAL_TO_NODEPORT:
            steps = (
                Step(Role.NIC, "Out", src, "br-phy", optional=True, note=uplink),
                Step(Role.NIC, "Out", src, "eth0", note="when the client is a node"),
                steps[0],
                Step(Role.NIC, "In", dst, "br-phy", optional=True, note=uplink),
                Step(Role.GATEWAY, "Out", dst, "antrea-gw0", nat="dnat+snat", note="kube-proxy's DNAT in the node's stack"),
                replace(steps[1], nat=""),
            )
        note = ("endpoint on another node; AntreaProxy translates in OVS right after the pod's port, "
                "so the service address shows only there") if path.traffic is Traffic.POD_TO_SERVICE else path.note
        out.append(replace(path, steps=steps, note=note))
    return tuple(out)


ANTREA_GENEVE = Model(
    name="antrea-geneve",
    family="antrea",
    summary="OVS bridge br-int with pod ports and antrea-gw0; cross-node traffic in Geneve (UDP 6081) through antrea-tun0",
    ifaces=(
        IfacePattern(r"antrea-gw[0-9]+", Role.GATEWAY, 5.0, "OVS internal port, the pods' gateway"),
        IfacePattern(r"antrea-tun[0-9]+", Role.TUNNEL, 5.0, "OVS tunnel port"),
        IfacePattern(r"genev_sys_6081", Role.TUNNEL, 2.0, "the kernel device behind OVS Geneve ports (also OVN-Kubernetes)"),
        IfacePattern(r"antrea-tc[0-9]+", Role.DATAPATH, 5.0, "traffic-control port"),
        IfacePattern(r"br-int", Role.DATAPATH, 1.0, "OVS integration bridge (also OVN-Kubernetes, OpenStack)"),
        IfacePattern(r"[a-z0-9-]{1,8}-[0-9a-f]{6}", Role.HOST_VETH, 1.0, "pod port: first characters of the pod name + '-' + hash"),
    ),
    encaps=(Encap(Tunnel.GENEVE, 6081, "any", 50, "genev_sys_6081"),),
    pod_mtus=(1450,),
    macs=(MacSignature("aa:bb:cc:dd:ee:ff", "Antrea's global virtual MAC, inner destination of tunnelled frames", 5.0),),
    gateway_arp=None,
    pod_cidrs=(),
    service_cidrs=("10.96.0.0/12",),
    ports=(),
    bgp=0.0,
    routes_pods_beyond_nodes=False,
    kernel_forwarding=False,
    dataplane_decrements_ttl=True,  # pkg/agent/openflow L3DecTTLTable: OVS itself decrements it
    paths=_paths(),
    service_proxy="antrea-proxy",
    prior=1.0,
    inventory_pods=(r"antrea-agent-[a-z0-9]{5}",),
    node_annotations=(("node.antrea.io/", ""),),
    sources=(
        "antrea pkg/agent/openflow: GlobalVirtualMAC = aa:bb:cc:dd:ee:ff",
        "https://antrea.io/docs/main/docs/design/architecture/",
    ),
    notes=(
        "Pod CIDRs come from Node spec.podCIDR (NodeIPAMController).",
        "OVS routes cross-node traffic itself and decrements the TTL once per node (L3DecTTL table).",
        "With the userspace datapath, pod ports show ingress frames as otherhost (tcpdump P): they are addressed to the gateway's MAC.",
    ),
)
