"""Calico: routed veths `cali*` (no bridge), proxy ARP for 169.254.1.1, BGP (BIRD), IPIP or VXLAN across nodes.

Every host-side veth has MAC ee:ee:ee:ee:ee:ee and answers the pod's ARP for
its gateway 169.254.1.1 by proxy ARP; the node holds a /32 route per pod.
Sources: docs.tigera.io (IPPool ipipMode/vxlanMode, FelixConfiguration
vxlanPort 4789 / vxlanVNI 4096, MTU: IPIP 20 bytes, VXLAN 50), calico
manifests (CALICO_IPV4POOL_CIDR 192.168.0.0/16), node annotations
projectcalico.org/IPv4Address, IPv4IPIPTunnelAddr, IPv4VXLANTunnelAddr; LAB-NOTES.
"""

from __future__ import annotations

from functools import partial

from cniscope.models.base import Encap, IfacePattern, MacSignature, Model, PortSignature, Role
from cniscope.models.shapes import routed
from cniscope.packets.kinds import Tunnel

_IFACES = (IfacePattern(r"cali[0-9a-f]{11}", Role.HOST_VETH, 5.0, "host end of the pod veth: cali + 11 hex"),)
_MACS = (MacSignature("ee:ee:ee:ee:ee:ee", "Calico's fixed MAC on every cali* host veth", 6.0),)
_PORTS = (PortSignature(6, 5473, "Typha", 2.0),)
_PODS = (r"calico-node-[a-z0-9]{5}",)
_SOURCES = (
    "https://docs.tigera.io/calico/latest/networking/configuring/vxlan-ipip",
    "https://docs.tigera.io/calico/latest/reference/resources/felixconfig (vxlanPort 4789, vxlanVNI 4096)",
    "https://docs.tigera.io/calico/latest/networking/configuring/mtu",
    "calico manifests: CALICO_IPV4POOL_CIDR 192.168.0.0/16, CALICO_IPV4POOL_IPIP Always",
)
# what every Calico model shares
_calico = partial(
    Model,
    family="calico",
    macs=_MACS,
    gateway_arp="169.254.1.1",
    pod_cidrs=("192.168.0.0/16",),
    service_cidrs=("10.96.0.0/12",),
    ports=_PORTS,
    routes_pods_beyond_nodes=True,
    kernel_forwarding=True,
    service_proxy="kube-proxy-iptables",
    inventory_pods=_PODS,
    sources=_SOURCES,
)

CALICO_BGP = _calico(
    name="calico-bgp",
    summary="cali* routed veths; other nodes' pod blocks learned by BGP and routed without encapsulation",
    ifaces=_IFACES,
    encaps=(),
    pod_mtus=(1500,),
    bgp=1.0,
    paths=routed("caliXXXXXXXXXXX"),
    prior=0.2,
    node_annotations=(("projectcalico.org/IPv4Address", ""),),
    notes=("ipipMode and vxlanMode Never: the IPPool resource's own default.",),
)

CALICO_IPIP = _calico(
    name="calico-ipip",
    summary="cali* routed veths; cross-node traffic through tunl0 in IPIP (IP protocol 4), routes learned by BGP",
    ifaces=_IFACES + (IfacePattern(r"tunl0", Role.TUNNEL, 4.0, "the kernel's IPIP fallback device Calico routes through"),),
    encaps=(Encap(Tunnel.IPIP, None, "any", 20, "tunl0", "ipipMode Always, or CrossSubnet: only between subnets"),),
    pod_mtus=(1480, 1440),
    bgp=0.9,
    paths=routed("caliXXXXXXXXXXX", tunnel="tunl0"),
    prior=0.45,
    node_annotations=(("projectcalico.org/IPv4IPIPTunnelAddr", ""),),
    notes=("1440 was the fixed veth_mtu of older calico.yaml manifests; newer releases detect the MTU.",),
)

CALICO_VXLAN = _calico(
    name="calico-vxlan",
    summary="cali* routed veths; cross-node traffic through vxlan.calico (VNI 4096, UDP 4789)",
    ifaces=_IFACES + (IfacePattern(r"vxlan\.calico", Role.TUNNEL, 5.0, "Calico's VXLAN device"),),
    encaps=(Encap(Tunnel.VXLAN, 4789, "4096", 50, "vxlan.calico", "vxlanMode Always or CrossSubnet"),),
    pod_mtus=(1450,),
    bgp=0.2,
    paths=routed("caliXXXXXXXXXXX", tunnel="vxlan.calico"),
    prior=0.35,
    node_annotations=(("projectcalico.org/IPv4VXLANTunnelAddr", ""),),
    notes=("With calico_backend: vxlan BIRD does not run, so no BGP between nodes.",),
)
