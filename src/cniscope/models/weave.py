"""Weave Net: pods on `vethwepl*` veths in the `weave` bridge; an L2 overlay across nodes (fastdp VXLAN or sleeve UDP).

All pods share one subnet (IPALLOC_RANGE 10.32.0.0/12), so pod-to-pod traffic
across nodes is bridged, not routed. Fast datapath encapsulates in VXLAN on
UDP 6784 through the OVS `datapath` (device `vxlan-6784`); sleeve (used with
encryption) in UDP 6783 from the router process. Control: TCP 6783. Pod MTU
1376 by default. Sources: weaveworks/weave `weave` script and PR #1712
(bridge, datapath, ethwe), docs/fastdp.md, weave-kube logs (ipalloc-range),
`ip link` output on weave nodes (vethwepl*, vethwe-bridge, vethwe-datapath,
vxlan-6784, mtu 1376).
"""

from __future__ import annotations

from cniscope.models.base import Encap, IfacePattern, Model, Path, PortSignature, Role, Side, Step, Traffic
from cniscope.packets.kinds import Tunnel


def _paths() -> tuple[Path, ...]:
    """One L2 network: the weave bridge forwards a frame for another node to vethwe-bridge, OVS takes it from
    vethwe-datapath into VXLAN; only traffic to or from the node's own stack crosses the weave device.

    vxlan-6784 is the kernel datapath's device; with Open vSwitch's userspace datapath (the lab) the envelope is
    built in user space and the node's address sits on the uplink bridge br-phy holding eth0.
    """
    src, dst = Side.SOURCE, Side.DESTINATION
    veth, kernel, uplink = "vethweplXXXXXXX", "kernel datapath only", "userspace datapath: the node's address sits on the uplink bridge"
    out = (Step(Role.DATAPATH, "Out", src, "vethwe-bridge"), Step(Role.DATAPATH, "In", src, "vethwe-datapath"),
           Step(Role.TUNNEL, "Out", src, "vxlan-6784", optional=True, note=kernel), Step(Role.NIC, "Out", src, "eth0", encapsulated=True))
    into = (Step(Role.NIC, "In", dst, "eth0", encapsulated=True), Step(Role.TUNNEL, "In", dst, "vxlan-6784", optional=True, note=kernel),
            Step(Role.DATAPATH, "Out", dst, "vethwe-datapath"), Step(Role.DATAPATH, "In", dst, "vethwe-bridge"),
            Step(Role.HOST_VETH, "Out", dst, veth))
    return (
        Path(Traffic.POD_TO_POD_SAME_NODE, (Step(Role.HOST_VETH, "In", src, veth), Step(Role.HOST_VETH, "Out", dst, veth)),
             one_node=True, note="bridged between two ports: the bridge device does not see it"),
        Path(Traffic.POD_TO_POD_CROSS_NODE, (Step(Role.HOST_VETH, "In", src, veth),) + out + into,
             note="bridged on both nodes, never routed: the inner TTL is unchanged"),
        Path(Traffic.POD_TO_SERVICE, (
            Step(Role.HOST_VETH, "In", src, veth, note="destination is the service address"),
            Step(Role.POD_BRIDGE, "In", src, "weave", nat="dnat", optional=True,
                 note="br_netfilter DNATs at the bridge port; an endpoint behind the same bridge is sent straight back out"),
            Step(Role.POD_BRIDGE, "Out", src, "weave", nat="dnat", optional=True,
                 note="the request is routed back into the pod network; the reply, addressed to the client's own MAC, "
                      "is bridged straight to it (br_netfilter undoes the DNAT in the bridge)"),
        ) + out + into, note="endpoint on another node"),
        Path(Traffic.NODE_TO_POD, (Step(Role.POD_BRIDGE, "Out", dst, "weave"), Step(Role.HOST_VETH, "Out", dst, veth)), one_node=True),
        Path(Traffic.EXTERNAL_TO_NODEPORT, (
            Step(Role.NIC, "Out", src, "br-phy", optional=True, note=uplink),
            Step(Role.NIC, "Out", src, "eth0", note="when the client is a node"),
            Step(Role.NIC, "In", dst, "eth0", note="to node:nodePort"),
            Step(Role.NIC, "In", dst, "br-phy", optional=True, note=uplink),
            Step(Role.POD_BRIDGE, "Out", dst, "weave", nat="dnat+snat"),
            Step(Role.HOST_VETH, "Out", dst, veth),
        ), note="endpoint on this node; masquerade unless externalTrafficPolicy: Local"),
        Path(Traffic.POD_TO_EXTERNAL, (Step(Role.HOST_VETH, "In", src, veth), Step(Role.POD_BRIDGE, "In", src, "weave"),
                                       Step(Role.NIC, "Out", src, "br-phy", optional=True, nat="snat", note=uplink),
                                       Step(Role.NIC, "Out", src, "eth0", nat="snat"))),
    )

WEAVE = Model(
    name="weave",
    family="weave",
    summary="weave bridge with vethwepl* pod veths; L2 overlay between nodes (fastdp VXLAN UDP 6784 or sleeve UDP 6783)",
    ifaces=(
        IfacePattern(r"weave", Role.POD_BRIDGE, 5.0, "the weave bridge"),
        IfacePattern(r"vethwepl[0-9a-z]+", Role.HOST_VETH, 5.0, "host end of a pod veth (weave CNI plugin)"),
        IfacePattern(r"vethwe-(bridge|datapath)", Role.DATAPATH, 5.0, "veth pair between the weave bridge and the OVS datapath"),
        IfacePattern(r"datapath", Role.DATAPATH, 4.0, "OVS kernel datapath (fast datapath)"),
        IfacePattern(r"vxlan-6784", Role.TUNNEL, 5.0, "fast datapath VXLAN vport"),
        IfacePattern(r"ethwe", Role.POD_IFACE, 4.0, "the pod's weave interface (weave run)"),
    ),
    encaps=(Encap(Tunnel.VXLAN, 6784, "any", 50, "vxlan-6784", "fast datapath; the VNI encodes source and destination peer short ids"),),
    pod_mtus=(1376,),
    macs=(),
    gateway_arp=None,
    pod_cidrs=("10.32.0.0/12",),
    service_cidrs=("10.96.0.0/12",),
    ports=(
        PortSignature(6, 6783, "weave router control connection", 3.0),
        PortSignature(17, 6783, "weave sleeve encapsulation", 3.0),
        PortSignature(17, 6784, "weave fast datapath VXLAN", 3.0),
    ),
    bgp=0.0,
    routes_pods_beyond_nodes=False,
    kernel_forwarding=False,
    paths=_paths(),
    service_proxy="kube-proxy-iptables",
    prior=1.0,
    inventory_pods=(r"weave-net-[a-z0-9]{5}",),
    sources=(
        "weaveworks/weave: weave script, PR #1712, docs/fastdp.md",
        "weave-kube: IPALLOC_RANGE default 10.32.0.0/12",
    ),
    notes=(
        "Pods across nodes share one L2 segment: the inner TTL is unchanged between pods.",
        "With Open vSwitch's userspace datapath, vethwe-datapath shows frames for other MACs as otherhost (tcpdump P).",
    ),
)
