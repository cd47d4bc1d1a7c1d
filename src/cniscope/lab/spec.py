"""Cluster specs: what a lab holds (model, nodes, pods, services, faults).

A spec is plain data. `default_spec()` gives each model's textbook cluster;
`load_spec()` reads the same shape from YAML:

    name: demo
    model: kube-router
    nodes:
      - {name: node3, ip: 192.168.200.23, pod_cidr: 10.244.3.0/24}
    pods:
      - {name: nginx, node: node3, ip: 10.244.3.10}
    services:
      - {name: web, cluster_ip: 10.96.0.10, port: 80, node_port: 30080, pods: [nginx]}
    faults:
      - {kind: drop, node: node3, iface: kube-bridge}
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cniscope.errors import InputError, UsageError

NODE_SUBNET = "192.168.200.0/24"
NODE_GATEWAY = "192.168.200.1"  # the underlay bridge: default route of every node, a dead end
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


@dataclass(frozen=True)
class ModelInfo:
    """What the lab knows of a model: its pod CIDR per node, what it needs, and whether the lab builds it."""

    name: str
    block_prefix: int  # prefix length of each node's pod CIDR
    needs: str | None = None  # the feature probe (see cniscope.lab.kernel) the model needs
    buildable: bool = True  # False: refused even when `needs` is there (the lab has no builder)


MODELS: dict[str, ModelInfo] = {
    "kube-router": ModelInfo("kube-router", 24),
    "flannel-vxlan": ModelInfo("flannel-vxlan", 24),
    "flannel-host-gw": ModelInfo("flannel-host-gw", 24),
    "flannel-udp": ModelInfo("flannel-udp", 24, needs="tun"),
    "calico-bgp": ModelInfo("calico-bgp", 26),
    "calico-vxlan": ModelInfo("calico-vxlan", 26),
    # Open vSwitch's userspace datapath (a daemon per node), not the kernel's OVS module, which this kernel lacks.
    "antrea-geneve": ModelInfo("antrea-geneve", 24, needs="ovs-userspace"),
    "weave": ModelInfo("weave", 24, needs="ovs-userspace"),
    # Refused with the missing kernel feature named (checked for real, see kernel.py).
    "calico-ipip": ModelInfo("calico-ipip", 26, needs="ipip", buildable=False),
    "kube-router-ipip": ModelInfo("kube-router-ipip", 24, needs="ipip", buildable=False),
    "cilium-vxlan": ModelInfo("cilium-vxlan", 24, needs="cilium-ebpf", buildable=False),
    "cilium-geneve": ModelInfo("cilium-geneve", 24, needs="geneve", buildable=False),
    "kube-proxy-ipvs": ModelInfo("kube-proxy-ipvs", 24, needs="ipvs", buildable=False),
}


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    pod_cidr: str

    @property
    def gateway(self) -> str:
        """The node's first pod address (bridge address, or the block's base for calico)."""
        return str(ipaddress.ip_network(self.pod_cidr).network_address + 1)


@dataclass(frozen=True)
class Pod:
    name: str
    node: str
    ip: str


@dataclass(frozen=True)
class Service:
    name: str
    cluster_ip: str
    pods: tuple[str, ...]
    port: int = 80
    target_port: int = 80
    node_port: int | None = None


@dataclass(frozen=True)
class Fault:
    """One injected failure; `args` are the kind's parameters (see cniscope.lab.faults.KINDS)."""

    kind: str
    args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LabSpec:
    name: str
    model: str
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    services: tuple[Service, ...] = ()
    faults: tuple[Fault, ...] = ()

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise UsageError(f"lab {self.name}: no node named {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    def pod(self, name: str) -> Pod | None:
        return next((pod for pod in self.pods if pod.name == name), None)

    def service(self, name: str) -> Service | None:
        return next((svc for svc in self.services if svc.name == name), None)

    def pods_on(self, node: str) -> tuple[Pod, ...]:
        return tuple(pod for pod in self.pods if pod.node == node)


def default_spec(model: str, nodes: int = 3, name: str | None = None) -> LabSpec:
    """The textbook cluster: nodeI at 192.168.200.(10+I), pod webI on each node, client1 beside web1.

    Services: `web` (10.96.0.10:80, NodePort 30080) backed by the last node's pod,
    `web-local` (10.96.0.11:80) backed by web1, for same-node service traffic.
    """
    info = model_info(model)
    if not 1 <= nodes <= 9:
        raise UsageError(f"--nodes must be between 1 and 9, got {nodes}")
    node_list = tuple(
        Node(f"node{i}", f"192.168.200.{10 + i}", f"10.244.{i}.0/{info.block_prefix}") for i in range(1, nodes + 1)
    )
    pods = [Pod(f"web{i}", f"node{i}", f"10.244.{i}.10") for i in range(1, nodes + 1)]
    pods.insert(1, Pod("client1", "node1", "10.244.1.11"))
    services = (
        Service("web", "10.96.0.10", (f"web{nodes}",), node_port=30080),
        Service("web-local", "10.96.0.11", ("web1",)),
    )
    return validate(LabSpec(name or model, model, node_list, tuple(pods), services))


def seed_spec(name: str = "demo") -> LabSpec:
    """The seed capture's cluster: kube-router, master2, node2, node3, nginx 10.244.3.10 on node3."""
    nodes = (
        Node("master2", "192.168.200.21", "10.244.1.0/24"),
        Node("node2", "192.168.200.22", "10.244.2.0/24"),
        Node("node3", "192.168.200.23", "10.244.3.0/24"),
    )
    pods = (Pod("nginx", "node3", "10.244.3.10"),)
    services = (Service("nginx", "10.96.0.10", ("nginx",), node_port=30080),)
    return validate(LabSpec(name, "kube-router", nodes, pods, services))


def model_info(model: str) -> ModelInfo:
    if model not in MODELS:
        raise InputError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    return MODELS[model]


def load_spec(path: str | Path, name: str | None = None) -> LabSpec:
    """Read a YAML spec; errors name the file and the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping with model, nodes, pods")
    try:
        spec = LabSpec(
            name=str(name or data.get("name") or data["model"]),
            model=str(data["model"]),
            nodes=tuple(Node(str(n["name"]), str(n["ip"]), str(n["pod_cidr"])) for n in data["nodes"]),
            pods=tuple(Pod(str(p["name"]), str(p["node"]), str(p["ip"])) for p in data.get("pods") or ()),
            services=tuple(
                Service(
                    str(s["name"]),
                    str(s["cluster_ip"]),
                    tuple(str(p) for p in s["pods"]),
                    int(s.get("port", 80)),
                    int(s.get("target_port", 80)),
                    int(s["node_port"]) if s.get("node_port") is not None else None,
                )
                for s in data.get("services") or ()
            ),
            faults=tuple(
                Fault(str(f["kind"]), {str(k): str(v) for k, v in f.items() if k != "kind"}) for f in data.get("faults") or ()
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: missing or malformed field: {exc}") from exc
    return validate(spec, str(path))


def validate(spec: LabSpec, where: str = "spec") -> LabSpec:
    """Check names, addresses and references; raise InputError naming what is wrong."""

    def fail(message: str) -> None:
        raise InputError(f"{where}: {message}")

    model_info(spec.model)
    if not NAME_RE.match(spec.name):
        fail(f"lab name {spec.name!r}: use lower-case letters, digits and '-', at most 31 characters")
    names = [n.name for n in spec.nodes] + [p.name for p in spec.pods] + ["underlay"]
    for item in names:
        if not NAME_RE.match(item):
            fail(f"name {item!r}: use lower-case letters, digits and '-'")
    if len(set(names)) != len(names):
        fail("node and pod names must be unique (and not 'underlay')")
    if not spec.nodes:
        fail("a lab needs at least one node")
    subnet = ipaddress.ip_network(NODE_SUBNET)
    try:
        for node in spec.nodes:
            if ipaddress.ip_address(node.ip) not in subnet or node.ip == NODE_GATEWAY:
                fail(f"node {node.name}: ip {node.ip} must be in {NODE_SUBNET} and not {NODE_GATEWAY}")
            ipaddress.ip_network(node.pod_cidr)
        cidrs = {n.name: ipaddress.ip_network(n.pod_cidr) for n in spec.nodes}
        for pod in spec.pods:
            if pod.node not in cidrs:
                fail(f"pod {pod.name}: unknown node {pod.node!r}")
            address = ipaddress.ip_address(pod.ip)
            if address not in cidrs[pod.node] or address in (cidrs[pod.node].network_address, cidrs[pod.node].network_address + 1):
                fail(f"pod {pod.name}: ip {pod.ip} must be inside {pod.node}'s pod CIDR {cidrs[pod.node]}, past its first address")
        for svc in spec.services:
            if ipaddress.ip_address(svc.cluster_ip) not in ipaddress.ip_network(SERVICE_CIDR):
                fail(f"service {svc.name}: cluster_ip {svc.cluster_ip} must be in {SERVICE_CIDR}")
            for pod_name in svc.pods:
                if spec.pod(pod_name) is None:
                    fail(f"service {svc.name}: unknown pod {pod_name!r}")
            if svc.node_port is not None and not 30000 <= svc.node_port <= 32767:
                fail(f"service {svc.name}: node_port {svc.node_port} outside 30000-32767")
    except ValueError as exc:
        fail(str(exc))
    return spec
