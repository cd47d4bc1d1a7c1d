"""Cluster inventory: which node, pod or service an address belongs to.

`load(path)` reads either of two forms (picked by content):

1. What `kubectl get nodes,pods,services,endpointslices -A -o json` prints:
   a `v1 List` whose items are v1 Node, v1 Pod, v1 Service and
   discovery.k8s.io/v1 EndpointSlice objects, exactly as the API returns
   them (`-o yaml` works too). Used fields: Node `metadata.name`,
   `metadata.annotations`, `spec.podCIDR(s)`, `status.addresses`; Pod
   `metadata.namespace/name`, `spec.nodeName`, `spec.hostNetwork`,
   `status.podIP(s)`; Service `spec.clusterIP(s)`, `spec.ports`
   (port, targetPort, nodePort, protocol); EndpointSlice
   `metadata.labels["kubernetes.io/service-name"]`, `endpoints[].addresses`,
   `endpoints[].nodeName`, `ports`.
2. A short YAML written by hand::

       serviceCIDR: 10.96.0.0/12          # optional
       nodes:
         - name: node3
           addresses: [192.168.200.23]
           podCIDRs: [10.244.3.0/24]       # or podCIDR: 10.244.3.0/24
       pods:
         - name: nginx-7c5                 # namespace defaults to "default"
           namespace: default
           ip: 10.244.3.10                 # or ips: [...]
           node: node3
       services:
         - name: nginx
           clusterIP: 10.96.0.10
           ports: [{port: 80, targetPort: 80, nodePort: 30080, protocol: TCP}]

Anything that cannot be used raises `InputError` naming the file and the item.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from cniscope.errors import InputError


@dataclass(frozen=True)
class NodeInfo:
    name: str
    addresses: tuple[str, ...]
    pod_cidrs: tuple[str, ...]
    annotations: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    ips: tuple[str, ...]
    node: str | None
    host_network: bool = False

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str | None
    node_port: int | None
    protocol: str = "TCP"


@dataclass(frozen=True)
class ServiceInfo:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]
    ports: tuple[ServicePort, ...]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class EndpointInfo:
    service: str  # namespace/name
    addresses: tuple[str, ...]
    node: str | None
    ports: tuple[int, ...]


@dataclass
class Inventory:
    source: str
    nodes: list[NodeInfo] = field(default_factory=list)
    pods: list[PodInfo] = field(default_factory=list)
    services: list[ServiceInfo] = field(default_factory=list)
    endpoints: list[EndpointInfo] = field(default_factory=list)
    service_cidrs: tuple[str, ...] = ()

    # ---- lookups ---------------------------------------------------------------------------------

    def node_of_address(self, addr: str) -> NodeInfo | None:
        """The node that owns `addr` as one of its own addresses."""
        for node in self.nodes:
            if addr in node.addresses:
                return node
        return None

    def pod_of(self, addr: str) -> PodInfo | None:
        """The pod with IP `addr` (host-network pods are left to `node_of_address`)."""
        for pod in self.pods:
            if addr in pod.ips and not pod.host_network:
                return pod
        return None

    def node_of_pod_address(self, addr: str) -> NodeInfo | None:
        """The node whose pod CIDR holds `addr`, or which runs the pod with that IP."""
        pod = self.pod_of(addr)
        if pod is not None and pod.node is not None:
            found = next((n for n in self.nodes if n.name == pod.node), None)
            if found is not None:
                return found
        ip = _ip(addr)
        if ip is None:
            return None
        for node in self.nodes:
            if any(ip in ipaddress.ip_network(c, strict=False) for c in node.pod_cidrs):
                return node
        return None

    def service_of(self, addr: str, port: int | None = None) -> tuple[ServiceInfo, ServicePort | None] | None:
        """The service with cluster IP `addr` (and `port` when given); or with node port `port` when `addr` is a node's."""
        for svc in self.services:
            if addr in svc.cluster_ips:
                match = next((p for p in svc.ports if p.port == port), None) if port is not None else None
                if port is None or match is not None or not svc.ports:
                    return svc, match
        if port is not None and self.node_of_address(addr) is not None:
            for svc in self.services:
                for p in svc.ports:
                    if p.node_port == port:
                        return svc, p
        return None

    def is_pod_address(self, addr: str) -> bool:
        return self.pod_of(addr) is not None or (self.node_of_address(addr) is None and self.node_of_pod_address(addr) is not None)

    def is_node_address(self, addr: str) -> bool:
        return self.node_of_address(addr) is not None

    def pod_cidrs(self) -> list[str]:
        return [c for node in self.nodes for c in node.pod_cidrs]

    def describe(self, addr: str, port: int | None = None) -> str | None:
        """`pod default/nginx-7c5 on node3`, `service default/nginx (10.96.0.10:80)`, `node node3`; None if unknown."""
        found = self.service_of(addr, port)
        if found is not None and addr in found[0].cluster_ips:
            svc = found[0]
            where = f"{addr}:{port}" if port is not None else addr
            return f"service {svc.ref} ({where})"
        node = self.node_of_address(addr)
        if node is not None:
            if found is not None:
                svc, sp = found
                return f"node {node.name}, NodePort {sp.node_port if sp else port} of service {svc.ref}"
            return f"node {node.name}"
        pod = self.pod_of(addr)
        if pod is not None:
            return f"pod {pod.ref}" + (f" on {pod.node}" if pod.node else "")
        owner = self.node_of_pod_address(addr)
        if owner is not None:
            return f"pod address on {owner.name} (pod CIDR)"
        return None


# ---- loading -------------------------------------------------------------------------------------


def load(path: str) -> Inventory:
    """Read an inventory file (kubectl JSON/YAML List, or the short YAML form)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the cluster inventory: {exc.strerror}") from exc
    return parse(text, path)


def parse(text: str, source: str = "<inventory>") -> Inventory:
    import yaml  # here: most analyses read no inventory, and yaml takes 10 ms to import

    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{source}: not JSON or YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a kubectl List or a mapping with nodes/pods/services, found {type(data).__name__}")
    if data.get("kind") == "List" or "items" in data:
        return _from_list(data, source)
    return _from_short(data, source)


def _from_list(data: dict[str, Any], source: str) -> Inventory:
    inv = Inventory(source=source)
    items = data.get("items")
    if not isinstance(items, list):
        raise InputError(f"{source}: a List needs an items array")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{source}: items[{index}] is not an object")
        kind = item.get("kind")
        meta = item.get("metadata") or {}
        spec = item.get("spec") or {}
        status = item.get("status") or {}
        where = f"{source}: items[{index}] ({kind} {meta.get('name', '?')})"
        reader = _LIST_READERS.get(kind) if isinstance(kind, str) else None
        if reader is None:
            continue  # other kinds (ConfigMap, ...) say nothing about addresses
        reader(inv, item, meta, spec, status, where)
    return inv


def _list_node(inv: Inventory, item: dict[str, Any], meta: dict[str, Any], spec: dict[str, Any], status: dict[str, Any], where: str) -> None:
    cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    addresses = tuple(a["address"] for a in status.get("addresses") or [] if a.get("type") in ("InternalIP", "ExternalIP"))
    inv.nodes.append(NodeInfo(
        name=_required(meta, "name", where),
        addresses=tuple(_check_ip(a, where) for a in addresses),
        pod_cidrs=tuple(_check_cidr(c, where) for c in cidrs),
        annotations=dict(meta.get("annotations") or {}),
    ))


def _list_pod(inv: Inventory, item: dict[str, Any], meta: dict[str, Any], spec: dict[str, Any], status: dict[str, Any], where: str) -> None:
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")] or ([status["podIP"]] if status.get("podIP") else [])
    inv.pods.append(PodInfo(
        namespace=meta.get("namespace") or "default",
        name=_required(meta, "name", where),
        ips=tuple(_check_ip(ip, where) for ip in ips),
        node=spec.get("nodeName"),
        host_network=bool(spec.get("hostNetwork")),
    ))


def _list_service(inv: Inventory, item: dict[str, Any], meta: dict[str, Any], spec: dict[str, Any], status: dict[str, Any], where: str) -> None:
    ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    ips = [ip for ip in ips if ip != "None"]  # headless
    inv.services.append(ServiceInfo(
        namespace=meta.get("namespace") or "default",
        name=_required(meta, "name", where),
        cluster_ips=tuple(_check_ip(ip, where) for ip in ips),
        ports=tuple(_service_port(p, where) for p in spec.get("ports") or []),
    ))


def _list_slice(inv: Inventory, item: dict[str, Any], meta: dict[str, Any], spec: dict[str, Any], status: dict[str, Any], where: str) -> None:
    service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    namespace = meta.get("namespace") or "default"
    ports = tuple(int(p["port"]) for p in item.get("ports") or [] if isinstance(p, dict) and p.get("port") is not None)
    for ep in item.get("endpoints") or []:
        inv.endpoints.append(EndpointInfo(
            service=f"{namespace}/{service}" if service else f"{namespace}/{meta.get('name', '?')}",
            addresses=tuple(ep.get("addresses") or ()),
            node=ep.get("nodeName"),
            ports=ports,
        ))


_LIST_READERS = {
    "Node": _list_node,
    "Pod": _list_pod,
    "Service": _list_service,
    "EndpointSlice": _list_slice,
}


def _from_short(data: dict[str, Any], source: str) -> Inventory:
    unknown = set(data) - {"nodes", "pods", "services", "serviceCIDR", "serviceCIDRs"}
    if unknown:
        raise InputError(f"{source}: unknown keys {sorted(unknown)}; expected nodes, pods, services, serviceCIDR")
    inv = Inventory(source=source)
    for i, node in enumerate(_list_of(data, "nodes", source)):
        where = f"{source}: nodes[{i}]"
        cidrs = node.get("podCIDRs") or ([node["podCIDR"]] if node.get("podCIDR") else [])
        addresses = node.get("addresses") or ([node["address"]] if node.get("address") else [])
        inv.nodes.append(NodeInfo(
            name=str(_required(node, "name", where)),
            addresses=tuple(_check_ip(str(a), where) for a in addresses),
            pod_cidrs=tuple(_check_cidr(str(c), where) for c in cidrs),
            annotations={str(k): str(v) for k, v in (node.get("annotations") or {}).items()},
        ))
    for i, pod in enumerate(_list_of(data, "pods", source)):
        where = f"{source}: pods[{i}]"
        ips = pod.get("ips") or ([pod["ip"]] if pod.get("ip") else [])
        inv.pods.append(PodInfo(
            namespace=str(pod.get("namespace") or "default"),
            name=str(_required(pod, "name", where)),
            ips=tuple(_check_ip(str(ip), where) for ip in ips),
            node=pod.get("node"),
            host_network=bool(pod.get("hostNetwork")),
        ))
    for i, svc in enumerate(_list_of(data, "services", source)):
        where = f"{source}: services[{i}]"
        ips = svc.get("clusterIPs") or ([svc["clusterIP"]] if svc.get("clusterIP") else [])
        inv.services.append(ServiceInfo(
            namespace=str(svc.get("namespace") or "default"),
            name=str(_required(svc, "name", where)),
            cluster_ips=tuple(_check_ip(str(ip), where) for ip in ips),
            ports=tuple(_service_port(p, where) for p in svc.get("ports") or []),
        ))
    cidrs = data.get("serviceCIDRs") or ([data["serviceCIDR"]] if data.get("serviceCIDR") else [])
    inv.service_cidrs = tuple(_check_cidr(str(c), source) for c in cidrs)
    return inv


def _list_of(data: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError(f"{source}: {key} must be a list of mappings")
    return value


def _service_port(p: Any, where: str) -> ServicePort:
    if isinstance(p, int):
        return ServicePort(port=p, target_port=p, node_port=None)
    if not isinstance(p, dict) or "port" not in p:
        raise InputError(f"{where}: a service port needs 'port', found {p!r}")
    try:
        return ServicePort(
            port=int(p["port"]),
            target_port=p.get("targetPort", p["port"]),
            node_port=int(p["nodePort"]) if p.get("nodePort") is not None else None,
            protocol=str(p.get("protocol") or "TCP"),
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: bad service port {p!r}: {exc}") from exc


def _required(mapping: dict[str, Any], key: str, where: str) -> Any:
    if not mapping.get(key):
        raise InputError(f"{where}: '{key}' is missing")
    return mapping[key]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _check_ip(text: str, where: str) -> str:
    if _ip(text) is None:
        raise InputError(f"{where}: not an IP address: {text!r}")
    return text


def _check_cidr(text: str, where: str) -> str:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise InputError(f"{where}: not a CIDR: {text!r}") from exc
    return text
