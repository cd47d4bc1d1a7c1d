"""flannel: pods on veths in `cni0`, one subnet per node, three backends (VXLAN, host-gw, UDP).

Sources: flannel Documentation/backends.md (VXLAN VNI 1 and port 8472 on
Linux, 4789 on Windows; host-gw needs L2 adjacency; UDP port 8285 for
debugging only), kube-flannel.yml (Network 10.244.0.0/16), node annotations
`flannel.alpha.coreos.com/backend-type`, LAB-NOTES (flannel.1 MTU 1450).
"""

from __future__ import annotations

from cniscope.models.base import Encap, IfacePattern, MacSignature, Model, PortSignature, Role
from cniscope.models.shapes import bridged
from cniscope.packets.kinds import Tunnel

_BRIDGE = (
    IfacePattern(r"cni0", Role.POD_BRIDGE, 1.5, "CNI bridge plugin bridge; gets the first address of the node subnet"),
    IfacePattern(r"veth[0-9a-f]{8}", Role.HOST_VETH, 0.5, "CNI bridge plugin: veth + 8 hex"),
)
_MACS = (MacSignature("0a:58", "CNI bridge plugin MAC derived from the pod IP (0a:58 + IPv4)", 0.5, prefix=True),)
_PODS = (r"kube-flannel-ds-[a-z0-9]{5}", r"kube-flannel-ds-[a-z0-9-]+")
_SOURCES = (
    "flannel-io/flannel Documentation/backends.md",
    "flannel-io/flannel Documentation/kube-flannel.yml (net-conf.json Network 10.244.0.0/16)",
    "containernetworking/plugins pkg/utils/hwaddr: PrivateMACPrefix 0a:58",
)

FLANNEL_VXLAN = Model(
    name="flannel-vxlan",
    family="flannel",
    summary="cni0 bridge; cross-node traffic routed to flannel.1, a VXLAN VTEP (VNI 1, UDP 8472)",
    ifaces=_BRIDGE + (IfacePattern(r"flannel\.[0-9]+", Role.TUNNEL, 5.0, "VXLAN VTEP; the number is the VNI"),),
    encaps=(Encap(Tunnel.VXLAN, 8472, "1", 50, "flannel.1", "Linux kernel default port; Windows uses 4789 and VNI >= 4096"),),
    pod_mtus=(1450,),
    macs=_MACS,
    gateway_arp=None,
    pod_cidrs=("10.244.0.0/16",),
    service_cidrs=("10.96.0.0/12",),
    ports=(),
    bgp=0.0,
    routes_pods_beyond_nodes=False,
    kernel_forwarding=True,
    paths=bridged("cni0", "vethXXXXXXXX", tunnel="flannel.1"),
    service_proxy="kube-proxy-iptables",
    prior=1.0,
    inventory_pods=_PODS,
    node_annotations=(("flannel.alpha.coreos.com/backend-type", "vxlan"),),
    sources=_SOURCES,
    notes=("DirectRouting=true sends same-subnet traffic unencapsulated, like host-gw.",),
)

FLANNEL_HOST_GW = Model(
    name="flannel-host-gw",
    family="flannel",
    summary="cni0 bridge; routes to other nodes' subnets via their node IPs (nodes must share an L2 segment)",
    ifaces=_BRIDGE,
    encaps=(),
    pod_mtus=(1500,),
    macs=_MACS,
    gateway_arp=None,
    pod_cidrs=("10.244.0.0/16",),
    service_cidrs=("10.96.0.0/12",),
    ports=(),
    bgp=0.0,
    routes_pods_beyond_nodes=False,
    kernel_forwarding=True,
    paths=bridged("cni0", "vethXXXXXXXX", routed_in=True),
    service_proxy="kube-proxy-iptables",
    prior=0.4,
    inventory_pods=_PODS,
    node_annotations=(("flannel.alpha.coreos.com/backend-type", "host-gw"),),
    sources=_SOURCES,
    notes=("Routes exist only on nodes running flanneld: hosts outside the cluster cannot reach pod IPs.",),
)

FLANNEL_UDP = Model(
    name="flannel-udp",
    family="flannel",
    summary="cni0 bridge; flanneld reads packets from the TUN device flannel0 and sends them in UDP 8285 (debugging only)",
    ifaces=_BRIDGE + (IfacePattern(r"flannel0", Role.TUNNEL, 5.0, "TUN device read by flanneld"),),
    encaps=(Encap(Tunnel.FLANNEL_UDP, 8285, "any", 28, "flannel0", "user-space encapsulation: IP in UDP, no inner Ethernet"),),
    pod_mtus=(1472,),
    macs=_MACS,
    gateway_arp=None,
    pod_cidrs=("10.244.0.0/16",),
    service_cidrs=("10.96.0.0/12",),
    ports=(PortSignature(17, 8285, "flannel UDP backend", 3.0),),
    bgp=0.0,
    routes_pods_beyond_nodes=False,
    kernel_forwarding=True,
    paths=bridged("cni0", "vethXXXXXXXX", tunnel="flannel0"),
    service_proxy="kube-proxy-iptables",
    prior=0.1,
    inventory_pods=_PODS,
    node_annotations=(("flannel.alpha.coreos.com/backend-type", "udp"),),
    sources=_SOURCES,
)
