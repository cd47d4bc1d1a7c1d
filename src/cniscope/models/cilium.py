"""Cilium: eBPF programs on `lxc*` host veths, `cilium_host`/`cilium_net` gateway pair, VXLAN or Geneve tunnel.

Packets between pods and the tunnel are redirected by eBPF without the IP
stack forwarding them, so the inner TTL is not decremented on the way. The
VXLAN/Geneve VNI carries the source endpoint's security identity, so it
varies between pods. Sources: cilium pkg/defaults (TunnelPortVXLAN 8472,
TunnelPortGeneve 6081, VxlanDevice cilium_vxlan, GeneveDevice cilium_geneve),
pkg/mtu (50-byte tunnel overhead), helm values (ipam cluster-pool
clusterPoolIPv4PodCIDRList 10.0.0.0/8), node annotations network.cilium.io/*.
"""

from __future__ import annotations

from functools import partial

from cniscope.models.base import Encap, IfacePattern, Model, PortSignature, Role
from cniscope.models.shapes import switched
from cniscope.packets.kinds import Tunnel

_IFACES = (
    IfacePattern(r"lxc[0-9a-f]{6,12}", Role.HOST_VETH, 4.0, "host end of an endpoint's veth"),
    IfacePattern(r"lxc_health", Role.HOST_VETH, 4.0, "the health endpoint"),
    IfacePattern(r"cilium_host", Role.GATEWAY, 4.0, "router address for the node's pods"),
    IfacePattern(r"cilium_net", Role.GATEWAY, 4.0, "peer of cilium_host"),
)
_PORTS = (PortSignature(6, 4240, "cilium health checks", 2.0),)
_SOURCES = (
    "cilium pkg/defaults: TunnelPortVXLAN 8472, TunnelPortGeneve 6081, VxlanDevice, GeneveDevice",
    "cilium pkg/mtu: TunnelOverhead 50",
    "cilium helm values: ipam.operator.clusterPoolIPv4PodCIDRList [10.0.0.0/8]",
    "https://docs.cilium.io/en/stable/network/concepts/routing/",
)
# what every Cilium model shares
_cilium = partial(
    Model,
    family="cilium",
    pod_mtus=(1450,),
    macs=(),
    gateway_arp=None,
    pod_cidrs=("10.0.0.0/8",),
    service_cidrs=("10.96.0.0/12",),
    ports=_PORTS,
    bgp=0.05,
    routes_pods_beyond_nodes=False,
    kernel_forwarding=False,
    service_proxy="cilium-kpr",
    inventory_pods=(r"cilium-[a-z0-9]{5}",),
    node_annotations=(("network.cilium.io/", ""), ("io.cilium.network.", "")),
    sources=_SOURCES,
)

CILIUM_VXLAN = _cilium(
    name="cilium-vxlan",
    summary="lxc* veths with eBPF; cross-node traffic through cilium_vxlan (UDP 8472, VNI = source security identity)",
    ifaces=_IFACES + (IfacePattern(r"cilium_vxlan", Role.TUNNEL, 5.0, "VXLAN device in external (metadata) mode"),),
    encaps=(Encap(Tunnel.VXLAN, 8472, "identity", 50, "cilium_vxlan"),),
    paths=switched("lxcXXXXXXXXXXXX", "cilium_vxlan", "cilium_host", hidden_delivery=True),
    prior=0.8,
    notes=("Native routing mode (no tunnel) looks like direct routing with lxc* devices.",),
)

CILIUM_GENEVE = _cilium(
    name="cilium-geneve",
    summary="lxc* veths with eBPF; cross-node traffic through cilium_geneve (UDP 6081, VNI = source security identity)",
    ifaces=_IFACES + (IfacePattern(r"cilium_geneve", Role.TUNNEL, 5.0, "Geneve device in external (metadata) mode"),),
    encaps=(Encap(Tunnel.GENEVE, 6081, "identity", 50, "cilium_geneve", "DSR adds a 12-byte option"),),
    paths=switched("lxcXXXXXXXXXXXX", "cilium_geneve", "cilium_host", hidden_delivery=True),
    prior=0.3,
)
