"""kube-router: pods on veths in `kube-bridge`, pod CIDRs advertised between nodes by BGP (GoBGP), IPVS service proxy.

Nodes in one subnet reach each other's pod CIDRs by plain routes (next hop =
node IP); nodes in other subnets through IPIP `tun-*` devices
(`--enable-overlay`, `--overlay-type=subnet`). Sources: kube-router.io/docs
(tunnels, see-it-in-action), cloudnativelabs/kube-router flags (`--auto-mtu`
default true: pod MTU accounts for IPIP when the overlay is on), LAB-NOTES.
"""

from __future__ import annotations

from cniscope.models.base import Encap, IfacePattern, Model, Role
from cniscope.models.shapes import bridged
from cniscope.packets.kinds import Tunnel

KUBE_ROUTER = Model(
    name="kube-router",
    family="kube-router",
    summary="Linux bridge kube-bridge, direct routes to other nodes' pod CIDRs learned by iBGP; IPIP only across subnets",
    ifaces=(
        IfacePattern(r"kube-bridge", Role.POD_BRIDGE, 4.0, "CNI bridge plugin, gateway = first address of the node's pod CIDR"),
        IfacePattern(r"kube-dummy-if", Role.SERVICE_DUMMY, 4.0, "dummy holding service VIPs for IPVS"),
        IfacePattern(r"tun-?[0-9a-f]{1,11}", Role.TUNNEL, 1.5, "IPIP tunnel to a node in another subnet"),
        IfacePattern(r"veth[0-9a-f]{8}", Role.HOST_VETH, 0.5, "CNI bridge plugin: veth + 8 hex"),
    ),
    encaps=(Encap(Tunnel.IPIP, None, "any", 20, "tun-*", "only towards nodes in other subnets (overlay-type subnet)", usual=False),),
    pod_mtus=(1500, 1480),
    macs=(),
    gateway_arp=None,
    pod_cidrs=("10.244.0.0/16",),
    service_cidrs=("10.96.0.0/12",),
    ports=(),
    bgp=1.0,
    routes_pods_beyond_nodes=True,
    kernel_forwarding=True,
    paths=bridged("kube-bridge", "vethXXXXXXXX", routed_in=True),
    service_proxy="kube-router-ipvs",
    prior=1.0,
    inventory_pods=(r"kube-router-[a-z0-9]{5}",),
    node_annotations=(("kube-router.io/", ""),),
    sources=(
        "https://kube-router.io/docs/tunnels",
        "https://kube-router.io/docs/see-it-in-action/",
        "kube-router pkg/options: --auto-mtu (default true), --enable-overlay, --overlay-type",
        "containernetworking/plugins ip.RandomVethName: veth%x of 4 random bytes",
    ),
    notes=(
        "Pod CIDRs come from Node spec.podCIDR; 10.244.0.0/16 is the kubeadm documentation example, not a kube-router default.",
        "Pod CIDRs are advertised to external BGP peers too, so a host outside the cluster can reach pod IPs without NAT.",
    ),
)
