"""Antrea: pods on ports of the OVS bridge `br-int`, gateway `antrea-gw0`, Geneve tunnel `antrea-tun0`.

Cross-node traffic is forwarded at L3 by OpenFlow and sent to the remote node
with inner destination MAC aa:bb:cc:dd:ee:ff (the global virtual MAC).
Sources: antrea pkg/agent/openflow (GlobalVirtualMAC aa:bb:cc:dd:ee:ff),
docs/design/architecture.md (antrea-gw0, antrea-tun0, trafficEncapMode
encap default, tunnelType geneve default), OVS geneve vport genev_sys_6081.
"""

from __future__ import annotations

from cniscope.models.base import Encap, IfacePattern, MacSignature, Model, Role
from cniscope.models.paths import switched
from cniscope.packets.schema import Tunnel

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
    paths=switched("pod-xxxxxx", "genev_sys_6081", "antrea-gw0"),
    service_proxy="antrea-proxy",
    prior=1.0,
    inventory_pods=(r"antrea-agent-[a-z0-9]{5}",),
    node_annotations=(("node.antrea.io/", ""),),
    sources=(
        "antrea pkg/agent/openflow: GlobalVirtualMAC = aa:bb:cc:dd:ee:ff",
        "https://antrea.io/docs/main/docs/design/architecture/",
    ),
    notes=("Pod CIDRs come from Node spec.podCIDR (NodeIPAMController).",),
)
