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

from cniscope.models.base import Encap, IfacePattern, Model, PortSignature, Role
from cniscope.models.paths import bridged
from cniscope.packets.schema import Tunnel

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
    paths=bridged("weave", "vethweplXXXXXXX", tunnel="vxlan-6784"),
    service_proxy="kube-proxy-iptables",
    prior=1.0,
    inventory_pods=(r"weave-net-[a-z0-9]{5}",),
    sources=(
        "weaveworks/weave: weave script, PR #1712, docs/fastdp.md",
        "weave-kube: IPALLOC_RANGE default 10.32.0.0/12",
    ),
    notes=("Pods across nodes share one L2 segment: the inner TTL is unchanged between pods.",),
)
