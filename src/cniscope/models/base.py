"""The shape of a network model's knowledge: plain frozen dataclasses, filled in per model as data.

A `Model` says what a capture taken on a cluster running it looks like:
interface names and what each one is (`IfacePattern`), the tunnel envelope
(`Encap`), the MTU pods get, the MACs and gateway addresses it leaves in
frames (`MacSignature`, `gateway_arp`), default address ranges, and for each
kind of traffic the path a packet takes, node by node (`Path` of `Step`s).
Inference (`infer`), hop roles (`roles`), the CLI pages (`textbook`) and the
docs all read these same tables; nothing about a model lives in code paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from cniscope.packets.kinds import Tunnel


class Role(StrEnum):
    """What an interface is for, whatever the model calls it."""

    NIC = "node NIC"
    POD_BRIDGE = "pod bridge"
    HOST_VETH = "host veth"  # host end of a pod's veth pair
    POD_IFACE = "pod interface"  # inside the pod: eth0, ethwe
    TUNNEL = "tunnel device"
    GATEWAY = "gateway"  # a node-side router port pods use (cilium_host, antrea-gw0)
    SERVICE_DUMMY = "service dummy"  # holds service VIPs (kube-dummy-if, kube-ipvs0)
    DATAPATH = "datapath"  # OVS datapath / bridge ports between bridges
    LOOPBACK = "loopback"


class Traffic(StrEnum):
    """Kinds of traffic a model has an expected path for."""

    POD_TO_POD_SAME_NODE = "pod to pod, same node"
    POD_TO_POD_CROSS_NODE = "pod to pod, across nodes"
    POD_TO_SERVICE = "pod to service"
    NODE_TO_POD = "node to pod"
    EXTERNAL_TO_POD = "external client to pod IP"
    EXTERNAL_TO_NODEPORT = "external client to NodePort"
    POD_TO_EXTERNAL = "pod to outside"


class Side(StrEnum):
    SOURCE = "source node"
    DESTINATION = "destination node"


@dataclass(frozen=True)
class IfacePattern:
    """Interface names matching `regex` (full match) play `role` in this model.

    `weight` says how much seeing such a name tells about the model: 0 for
    names every model has (eth0), small for names a few models share (veth
    + 8 hex from the CNI bridge plugin), large for names only this model
    creates (flannel.1, cali*, cilium_vxlan).
    """

    regex: str
    role: Role
    weight: float
    note: str = ""

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.regex, name) is not None


@dataclass(frozen=True)
class Encap:
    """A tunnel envelope between nodes."""

    kind: Tunnel
    port: int | None  # UDP destination port; None for IPIP
    vni: str  # "1", "4096", "identity" (varies: the sender's security identity), "any"
    overhead: int  # bytes the envelope adds, so pod MTU = NIC MTU - overhead
    device: str  # name of the tunnel device on the node
    note: str = ""
    usual: bool = True  # False: used only in some setups (kube-router's IPIP only towards other subnets)


@dataclass(frozen=True)
class MacSignature:
    mac: str  # aa:bb:cc:dd:ee:ff, or a prefix like 0a:58
    meaning: str
    weight: float
    prefix: bool = False


@dataclass(frozen=True)
class Step:
    """One capture point on the path: where a packet shows up and which way it goes."""

    role: Role
    direction: str  # "In" (towards the node's stack or bridge) or "Out"
    side: Side
    iface: str = ""  # the usual name, for the textbook page ("cni0", "flannel.1", "vethXXXXXXXX")
    encapsulated: bool = False  # the packet is inside the tunnel envelope here
    nat: str = ""  # "dnat", "snat", "dnat+snat": rewritten before this point
    optional: bool = False  # not always visible (eBPF redirects skip some taps): never reported missing
    note: str = ""

    def label(self) -> str:
        name = f" {self.iface}" if self.iface else ""
        return f"{self.role.value}{name}, {self.direction.lower()}"


@dataclass(frozen=True)
class PortSignature:
    """A well-known port of the model's agents or data plane, seen as plain TCP/UDP."""

    proto: int  # 6 TCP, 17 UDP
    port: int
    meaning: str
    weight: float


@dataclass(frozen=True)
class Path:
    traffic: Traffic
    steps: tuple[Step, ...]
    one_node: bool = False  # source and destination on the same node: the whole path is one segment
    note: str = ""

    def segment(self, side: Side) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.side is side)


@dataclass(frozen=True)
class Model:
    name: str
    family: str  # "calico" for calico-bgp, calico-ipip, calico-vxlan
    summary: str
    ifaces: tuple[IfacePattern, ...]
    encaps: tuple[Encap, ...]  # empty: direct routing between nodes
    pod_mtus: tuple[int, ...]  # pod MTUs seen with a 1500-byte NIC (so MSS = MTU - 40)
    macs: tuple[MacSignature, ...]
    gateway_arp: str | None  # the address pods ARP for as their gateway (calico: 169.254.1.1)
    pod_cidrs: tuple[str, ...]  # defaults of the project's own manifests
    service_cidrs: tuple[str, ...]
    ports: tuple[PortSignature, ...]
    bgp: float  # how likely nodes speak BGP (TCP 179) to each other: 1 always ... 0 never
    routes_pods_beyond_nodes: bool  # pod addresses reachable from non-node hosts without NAT (BGP advertisement)
    kernel_forwarding: bool  # the node's IP stack forwards pod traffic (TTL drops by one per node)
    paths: tuple[Path, ...]
    service_proxy: str  # default service proxy name (see proxies.PROXIES)
    prior: float  # how common this variant is among clusters of its project, 0..1
    inventory_pods: tuple[str, ...] = ()  # regexes of the agent pods' names (kube-system daemonsets)
    node_annotations: tuple[tuple[str, str], ...] = ()  # (annotation key or prefix, value or "")
    sources: tuple[str, ...] = ()  # where the facts come from
    notes: tuple[str, ...] = field(default=())
    dataplane_decrements_ttl: bool = False  # forwarded outside the IP stack, yet the TTL drops (Antrea's L3DecTTL table)

    @property
    def decrements_ttl(self) -> bool:
        """Does a pod's packet lose TTL on the node before it reaches the tunnel device?"""
        return self.kernel_forwarding or self.dataplane_decrements_ttl

    def role_of(self, iface: str) -> IfacePattern | None:
        for pattern in self.ifaces:
            if pattern.matches(iface):
                return pattern
        return None

    def path(self, traffic: Traffic) -> Path | None:
        for path in self.paths:
            if path.traffic is traffic:
                return path
        return None


# Names that every model shares: what the node's own uplink and loopback are called.
COMMON_IFACES: tuple[IfacePattern, ...] = (
    IfacePattern(r"(eth|ens|enp|eno|em|enx|bond|team|wlan|wlp)[0-9a-z._-]*", Role.NIC, 0.0, "node uplink (or eth0 inside a pod)"),
    IfacePattern(r"p[0-9]+p[0-9]+", Role.NIC, 0.0, "node uplink, biosdevname style"),
    IfacePattern(r"br-phy", Role.NIC, 0.0, "Open vSwitch userspace datapath: the uplink bridge holding the node address (the OVS docs' name)"),
    IfacePattern(r"lo", Role.LOOPBACK, 0.0),
)


def role_of(model: Model | None, iface: str) -> IfacePattern | None:
    """The model's pattern for `iface`, else the common one, else None."""
    if model is not None:
        found = model.role_of(iface)
        if found is not None:
            return found
    for pattern in COMMON_IFACES:
        if pattern.matches(iface):
            return pattern
    return None
