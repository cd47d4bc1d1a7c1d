"""Plan a lab: the common layout, then what each model's agent programs.

Layout (LAB-NOTES): an `underlay` namespace holds bridge br0 (192.168.200.1,
every node's default gateway and a dead end); each node is a namespace whose
eth0 is a veth into br0; each pod is a namespace whose eth0 is a veth into
its node. Links are created inside their namespaces, so deleting the
namespaces deletes every link. `MODEL_BUILDERS` maps a model to the
functions that attach pods and connect nodes the way its agent does.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cniscope.lab import antrea, bird, faults, kubeproxy, ovs, weave
from cniscope.lab.naming import UNDERLAY, antrea_port, cali_name, ns_name, state_dir, underlay_port, veth_name, vtep_mac, weave_port
from cniscope.lab.spec import CLUSTER_CIDR, NODE_GATEWAY, NODE_SUBNET, LabSpec, Node, Pod
from cniscope.lab.steps import Bridge, Daemon, File, Ip, Iptables, Netns, Step, Sysctl, WaitRoutes, in_ns

VXLAN_MTU = 1450
FLANNEL_UDP_MTU = 1472  # 1500 less the 28 bytes of IP and UDP around each packet
CALICO_MAC = "ee:ee:ee:ee:ee:ee"
CALICO_GATEWAY = "169.254.1.1"
BIG_FILE_BYTES = 256 * 1024  # /big on every pod: a transfer that needs full-size segments (MTU faults)


@dataclass(frozen=True)
class Ctx:
    spec: LabSpec
    root: Path

    def ns(self, member: str) -> str:
        return ns_name(self.spec.name, member)

    def prefix_len(self) -> int:
        return ipaddress.ip_network(NODE_SUBNET).prefixlen


def plan_lab(spec: LabSpec, root: Path | None = None) -> list[Step]:
    """Every step to build `spec`, in order; faults last."""
    ctx = Ctx(spec, root or state_dir(spec.name))
    model = MODEL_BUILDERS[spec.model]
    steps: list[Step] = [Netns(ctx.ns(m)) for m in [UNDERLAY, *(n.name for n in spec.nodes), *(p.name for p in spec.pods)]]
    steps += _base_sysctls(ctx)
    steps += _underlay(ctx)
    steps += model.start(ctx)
    for node in spec.nodes:
        steps += _node(ctx, node, addressed=not model.uplink_bridge)
        steps += model.node(ctx, node)
        for pod in spec.pods_on(node.name):
            steps += model.pod_link(ctx, node, pod)
    for index in range(1, len(spec.nodes) + 1):
        steps.append(Ip(ctx.ns(UNDERLAY), ("link", "set", underlay_port(index), "master", "br0", "up")))
    for pod in spec.pods:
        steps += model.pod_inside(ctx, spec.node(pod.node), pod)
    for node in spec.nodes:
        steps += model.after_pods(ctx, node)
        steps.append(Iptables(ctx.ns(node.name), kubeproxy.nat_payload(spec)))
    daemons = [step for pod in spec.pods for step in _nginx(ctx, pod)] + model.routing(ctx)
    # files first, then every daemon in a row: the executor starts consecutive daemons together
    steps += [s for s in daemons if isinstance(s, File)] + [s for s in daemons if not isinstance(s, File)]
    for fault in spec.faults:
        steps += faults.plan_fault(spec, fault)
    return steps


def _base_sysctls(ctx: Ctx) -> list[Step]:
    steps: list[Step] = []
    for member in [UNDERLAY, *(n.name for n in ctx.spec.nodes), *(p.name for p in ctx.spec.pods)]:
        ns = ctx.ns(member)
        steps += [Sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1"), Sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")]
        if member in {n.name for n in ctx.spec.nodes}:
            steps.append(Sysctl(ns, "net.ipv4.ip_forward", "1"))
    return steps


def _underlay(ctx: Ctx) -> list[Step]:
    ns = ctx.ns(UNDERLAY)
    return [
        Ip(ns, ("link", "set", "lo", "up")),
        Ip(ns, ("link", "add", "br0", "type", "bridge")),
        Ip(ns, ("addr", "add", f"{NODE_GATEWAY}/{ctx.prefix_len()}", "dev", "br0")),
        Ip(ns, ("link", "set", "br0", "up")),
    ]


def _node(ctx: Ctx, node: Node, addressed: bool = True) -> list[Step]:
    """The node's eth0 into the underlay; with `addressed`, its address and default route (else the model puts them elsewhere)."""
    ns = ctx.ns(node.name)
    index = ctx.spec.nodes.index(node) + 1
    steps: list[Step] = [
        Ip(ns, ("link", "set", "lo", "up")),
        Ip(ns, ("link", "add", "eth0", "type", "veth", "peer", "name", underlay_port(index), "netns", ctx.ns(UNDERLAY))),
        Ip(ns, ("link", "set", "eth0", "up")),
    ]
    if addressed:
        steps[2:2] = [Ip(ns, ("addr", "add", f"{node.ip}/{ctx.prefix_len()}", "dev", "eth0"))]
        steps.append(Ip(ns, ("route", "add", "default", "via", NODE_GATEWAY, "dev", "eth0")))
    return steps


def _others(ctx: Ctx, node: Node) -> list[Node]:
    return [other for other in ctx.spec.nodes if other != node]


def _nginx(ctx: Ctx, pod: Pod) -> list[Step]:
    base = ctx.root / "pods" / pod.name
    conf = base / "nginx.conf"
    pidfile = base / "nginx.pid"
    config = (
        "user root root;\nworker_processes 1;\ndaemon on;\n"
        f"pid {pidfile};\nerror_log {base}/error.log warn;\n"
        "events { worker_connections 64; }\n"
        "http {\n  access_log off;\n  keepalive_timeout 5;\n"
        f"  client_body_temp_path {base}/tmp;\n  proxy_temp_path {base}/tmp;\n"
        f"  fastcgi_temp_path {base}/tmp;\n  uwsgi_temp_path {base}/tmp;\n  scgi_temp_path {base}/tmp;\n"
        f"  server {{ listen {pod.ip}:80; root {base}/www; }}\n}}\n"
    )
    return [
        File(str(conf), config),
        File(str(base / "www" / "index.html"), f"{pod.name} on {pod.node}\n"),
        File(str(base / "www" / "big"), "x" * (BIG_FILE_BYTES - 1) + "\n"),
        File(str(base / "tmp" / ".keep"), ""),
        Daemon(ctx.ns(pod.name), f"nginx {pod.name}", ("nginx", "-e", f"{base}/error.log", "-c", str(conf)), str(pidfile)),
    ]


# --- bridge models: kube-router, flannel (CNI bridge plugin) ---------------------------------


def _bridge_pod_link(bridge: str, mtu: int | None, name: Callable[[str], str] = veth_name) -> Callable[[Ctx, Node, Pod], list[Step]]:
    def build(ctx: Ctx, node: Node, pod: Pod) -> list[Step]:
        ns, host = ctx.ns(node.name), name(pod.name)
        mtu_args = ("mtu", str(mtu)) if mtu else ()
        return [
            Ip(ns, ("link", "add", host, *mtu_args, "type", "veth", "peer", "name", "eth0", *mtu_args, "netns", ctx.ns(pod.name))),
            Ip(ns, ("link", "set", host, "master", bridge, "up")),
            Ip(ns, ("link", "set", host, "type", "bridge_slave", "hairpin", "on")),
        ]

    return build


def _bridge_pod_inside(ctx: Ctx, node: Node, pod: Pod) -> list[Step]:
    ns = ctx.ns(pod.name)
    prefix = ipaddress.ip_network(node.pod_cidr).prefixlen
    return [
        Ip(ns, ("link", "set", "lo", "up")),
        Ip(ns, ("addr", "add", f"{pod.ip}/{prefix}", "dev", "eth0")),
        Ip(ns, ("link", "set", "eth0", "up")),
        Ip(ns, ("route", "add", "default", "via", node.gateway, "dev", "eth0")),
    ]


def _bridge_node(bridge: str, mtu: int | None) -> Callable[[Ctx, Node], list[Step]]:
    def build(ctx: Ctx, node: Node) -> list[Step]:
        ns = ctx.ns(node.name)
        prefix = ipaddress.ip_network(node.pod_cidr).prefixlen
        mtu_args = ("mtu", str(mtu)) if mtu else ()
        return [
            Ip(ns, ("link", "add", bridge, *mtu_args, "type", "bridge")),
            Ip(ns, ("addr", "add", f"{node.gateway}/{prefix}", "dev", bridge)),
            Ip(ns, ("link", "set", bridge, "up")),
        ]

    return build


def _flannel_vxlan_node(ctx: Ctx, node: Node) -> list[Step]:
    ns = ctx.ns(node.name)
    base = str(ipaddress.ip_network(node.pod_cidr).network_address)
    steps = _bridge_node("cni0", VXLAN_MTU)(ctx, node) + [
        Ip(ns, ("link", "add", "flannel.1", "address", vtep_mac(node.ip, "0e:f1"), "mtu", str(VXLAN_MTU), "type", "vxlan",
                "id", "1", "local", node.ip, "dev", "eth0", "dstport", "8472", "nolearning")),
        Ip(ns, ("addr", "add", f"{base}/32", "dev", "flannel.1")),
        Ip(ns, ("link", "set", "flannel.1", "up")),
    ]
    return steps + _vxlan_peers(ctx, node, "flannel.1", "0e:f1")


def _vxlan_peers(ctx: Ctx, node: Node, dev: str, mac_prefix: str) -> list[Step]:
    """Per remote node, as flanneld / calico-felix program them: onlink route, permanent neighbour, FDB entry."""
    ns = ctx.ns(node.name)
    steps: list[Step] = []
    for other in _others(ctx, node):
        base = str(ipaddress.ip_network(other.pod_cidr).network_address)
        mac = vtep_mac(other.ip, mac_prefix)
        steps += [
            Ip(ns, ("neigh", "replace", base, "lladdr", mac, "dev", dev, "nud", "permanent")),
            Ip(ns, ("route", "add", other.pod_cidr, "via", base, "dev", dev, "onlink")),
        ]
    for other in _others(ctx, node):
        steps.append(Bridge(ns, ("fdb", "replace", vtep_mac(other.ip, mac_prefix), "dev", dev, "dst", other.ip, "self", "permanent")))
    return steps


def _flannel_udp_relays(ctx: Ctx) -> list[Step]:
    """flanneld's UDP backend per node: the relay creates flannel0 (subnet base, cluster prefix) and carries it in UDP 8285."""
    cluster = ipaddress.ip_network(CLUSTER_CIDR).prefixlen
    steps: list[Step] = []
    for node in ctx.spec.nodes:
        base = ipaddress.ip_network(node.pod_cidr).network_address
        pidfile = ctx.root / "nodes" / node.name / "flanneld.pid"
        peers = [arg for other in _others(ctx, node) for arg in ("--peer", f"{other.pod_cidr}={other.ip}")]
        steps += [
            File(str(pidfile.parent / "README"), "flanneld's UDP relay of this lab node: its pid file.\n"),
            Daemon(ctx.ns(node.name), f"flanneld-udp {node.name}",
                   (*ovs.PRIORITY, sys.executable, "-m", "cniscope.lab.relay", "--dev", "flannel0", "--mtu", str(FLANNEL_UDP_MTU),
                    "--address", f"{base}/{cluster}", "--listen", node.ip, *peers, "--pidfile", str(pidfile)), str(pidfile)),
        ]
    return steps


def _host_gw_routes(ctx: Ctx) -> list[Step]:
    return [
        Ip(ctx.ns(node.name), ("route", "add", other.pod_cidr, "via", other.ip, "dev", "eth0"))
        for node in ctx.spec.nodes
        for other in _others(ctx, node)
    ]


# --- calico: routed cali veths, proxy ARP, /32 routes -----------------------------------------


def _calico_pod_link(mtu: int | None) -> Callable[[Ctx, Node, Pod], list[Step]]:
    def build(ctx: Ctx, node: Node, pod: Pod) -> list[Step]:
        ns, host = ctx.ns(node.name), cali_name(pod.name)
        mtu_args = ("mtu", str(mtu)) if mtu else ()
        return [
            Ip(ns, ("link", "add", host, "address", CALICO_MAC, *mtu_args, "type", "veth", "peer", "name", "eth0", *mtu_args,
                    "netns", ctx.ns(pod.name))),
            Ip(ns, ("link", "set", host, "up")),
            Ip(ns, ("route", "add", f"{pod.ip}/32", "dev", host, "scope", "link")),
        ]

    return build


def _calico_pod_inside(ctx: Ctx, node: Node, pod: Pod) -> list[Step]:
    ns = ctx.ns(pod.name)
    return [
        Ip(ns, ("link", "set", "lo", "up")),
        Ip(ns, ("addr", "add", f"{pod.ip}/32", "dev", "eth0")),
        Ip(ns, ("link", "set", "eth0", "up")),
        Ip(ns, ("route", "add", CALICO_GATEWAY, "dev", "eth0", "scope", "link")),
        Ip(ns, ("route", "add", "default", "via", CALICO_GATEWAY, "dev", "eth0")),
    ]


def _calico_after_pods(ctx: Ctx, node: Node) -> list[Step]:
    ns = ctx.ns(node.name)
    steps: list[Step] = []
    for pod in ctx.spec.pods_on(node.name):
        host = cali_name(pod.name)
        steps += [Sysctl(ns, f"net.ipv4.conf.{host}.proxy_arp", "1"), Sysctl(ns, f"net.ipv4.neigh.{host}.proxy_delay", "0")]
    return steps


def _calico_vxlan_node(ctx: Ctx, node: Node) -> list[Step]:
    ns = ctx.ns(node.name)
    base = str(ipaddress.ip_network(node.pod_cidr).network_address)
    return [
        Ip(ns, ("route", "add", "blackhole", node.pod_cidr)),
        Ip(ns, ("link", "add", "vxlan.calico", "address", vtep_mac(node.ip, "66:c4"), "mtu", str(VXLAN_MTU), "type", "vxlan",
                "id", "4096", "local", node.ip, "dev", "eth0", "dstport", "4789", "nolearning")),
        Ip(ns, ("addr", "add", f"{base}/32", "dev", "vxlan.calico")),
        Ip(ns, ("link", "set", "vxlan.calico", "up")),
    ] + _vxlan_peers(ctx, node, "vxlan.calico", "66:c4")


# --- BGP (BIRD) --------------------------------------------------------------------------------


def _bgp(exports: list[str], blackhole: bool) -> Callable[[Ctx], list[Step]]:
    def build(ctx: Ctx) -> list[Step]:
        steps: list[Step] = []
        for node in ctx.spec.nodes:
            base = ctx.root / "nodes" / node.name
            conf, sock, pidfile = base / "bird.conf", base / "bird.ctl", base / "bird.pid"
            peers = [(other.name, other.ip) for other in _others(ctx, node)]
            text = bird.bird_config(node.ip, peers, exports, [node.pod_cidr] if blackhole else [], str(base / "bird.log"))
            steps += [
                File(str(conf), text),
                Daemon(ctx.ns(node.name), f"bird {node.name}", ("bird", "-c", str(conf), "-s", str(sock), "-P", str(pidfile)),
                       str(pidfile)),
            ]
        for node in ctx.spec.nodes:
            remote = tuple(other.pod_cidr for other in _others(ctx, node))
            if remote:
                steps.append(WaitRoutes(ctx.ns(node.name), remote))
        return steps

    return build


# --- Open vSwitch, userspace datapath (see ovs.py): antrea ---------------------------------------


def _ovs(ctx: Ctx, node: Node) -> ovs.Ovs:
    return ovs.Ovs(ctx.ns(node.name), ctx.root / "nodes" / node.name, node.name)


def _ovs_start(ctx: Ctx) -> list[Step]:
    """Every node's own ovsdb-server and ovs-vswitchd."""
    return ovs.start([_ovs(ctx, node) for node in ctx.spec.nodes])


def _ovs_node(ctx: Ctx, node: Node) -> list[Step]:
    """The uplink bridge holding the node's address."""
    return ovs.uplink(_ovs(ctx, node), f"{node.ip}/{ctx.prefix_len()}", NODE_GATEWAY, antrea.uplink_mac(node))


def _ovs_pod_link(bridge: str, name: Callable[[str], str], port_of: Callable[[Ctx, Node, Pod], int]) -> Callable[[Ctx, Node, Pod], list[Step]]:
    """The pod's veth as a port of the OVS bridge, its host end silent to the node's stack (see ovs.py)."""

    def build(ctx: Ctx, node: Node, pod: Pod) -> list[Step]:
        ns, host = ctx.ns(node.name), name(pod.name)
        mtu = ("mtu", str(antrea.MTU))
        return [
            Ip(ns, ("link", "add", host, *mtu, "type", "veth", "peer", "name", "eth0", *mtu, "netns", ctx.ns(pod.name))),
            Ip(ns, ("link", "set", host, "arp", "off", "up")),
            _ovs(ctx, node).vsctl("--no-wait", "add-port", bridge, host, "--", "set", "interface", host,
                                  f"ofport_request={port_of(ctx, node, pod)}"),  # waited for once per node, see _ovs_ports_ready
        ]

    return build


def _ovs_pod_inside(ctx: Ctx, node: Node, pod: Pod) -> list[Step]:
    """A pod of the CNI bridge plugin's shape with a fixed MAC (flows name it) and no checksum offload (OVS reads its frames)."""
    ns = ctx.ns(pod.name)
    return [Ip(ns, ("link", "set", "eth0", "address", antrea.pod_mac(pod.ip)))] + _bridge_pod_inside(ctx, node, pod) + [
        in_ns(ns, ("ethtool", "-K", "eth0", "tx", "off"), f"turn transmit checksum offload off in {pod.name}"),
    ]


def _antrea_node(ctx: Ctx, node: Node) -> list[Step]:
    ns, switch = ctx.ns(node.name), _ovs(ctx, node)
    prefix = ipaddress.ip_network(node.pod_cidr).prefixlen
    return _ovs_node(ctx, node) + [
        switch.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
                     "--", "add-port", "br-int", "antrea-tun0", "--", "set", "interface", "antrea-tun0", "type=geneve",
                     f"ofport_request={antrea.TUNNEL_PORT}", "options:key=flow", "options:remote_ip=flow",
                     "--", "add-port", "br-int", "antrea-gw0", "--", "set", "interface", "antrea-gw0", "type=internal",
                     f"ofport_request={antrea.GATEWAY_PORT}", f'mac="{antrea.gateway_mac(node)}"'),
        Ip(ns, ("link", "set", "antrea-gw0", "mtu", str(antrea.MTU))),
        Ip(ns, ("addr", "add", f"{node.gateway}/{prefix}", "dev", "antrea-gw0")),
        Ip(ns, ("link", "set", "antrea-gw0", "up")),
    ]


def _ovs_ports_ready(ctx: Ctx, node: Node, name: Callable[[str], str], port_of: Callable[[Ctx, Node, Pod], int]) -> list[Step]:
    """Wait once until ovs-vswitchd has every pod port of the node at its OpenFlow number."""
    waits = [arg for pod in ctx.spec.pods_on(node.name)
             for arg in ("--", "wait-until", "Interface", name(pod.name), f"ofport={port_of(ctx, node, pod)}")]
    return [_ovs(ctx, node).vsctl(*waits[1:])] if waits else []


def _antrea_after_pods(ctx: Ctx, node: Node) -> list[Step]:
    """The pipeline's flows, and what antrea-agent gives the node's stack: a route per remote pod CIDR through antrea-gw0."""
    ns, switch = ctx.ns(node.name), _ovs(ctx, node)
    steps = _ovs_ports_ready(ctx, node, antrea_port, _antrea_port)
    steps += switch.add("br-int", "groups", antrea.groups(ctx.spec)) if ctx.spec.services else []
    steps += switch.add("br-int", "flows", antrea.flows(ctx.spec, node))
    steps += ovs.tunnel_neighbours(switch, [(other.ip, antrea.uplink_mac(other)) for other in _others(ctx, node)])
    for other in _others(ctx, node):
        steps += [
            Ip(ns, ("neigh", "replace", other.gateway, "lladdr", antrea.VIRTUAL_MAC, "dev", "antrea-gw0", "nud", "permanent")),
            Ip(ns, ("route", "add", other.pod_cidr, "via", other.gateway, "dev", "antrea-gw0", "onlink")),
        ]
    return steps


# --- weave: the weave bridge, its vethwe pair into OVS's "datapath", VXLAN 6784 between nodes ------


def _weave_node(ctx: Ctx, node: Node) -> list[Step]:
    """weave (bridge, the node's address in the one pod network) -- vethwe-bridge/vethwe-datapath -- OVS datapath -- vxlan-6784."""
    ns, switch = ctx.ns(node.name), _ovs(ctx, node)
    mtu = ("mtu", str(weave.MTU))
    cluster = ipaddress.ip_network(CLUSTER_CIDR).prefixlen
    return _ovs_node(ctx, node) + [
        Ip(ns, ("link", "add", "weave", "address", weave.bridge_mac(node), *mtu, "type", "bridge")),
        Ip(ns, ("addr", "add", f"{node.gateway}/{cluster}", "dev", "weave")),
        Ip(ns, ("link", "add", "vethwe-bridge", *mtu, "type", "veth", "peer", "name", "vethwe-datapath", *mtu)),
        Ip(ns, ("link", "set", "vethwe-bridge", "master", "weave", "up")),
        Ip(ns, ("link", "set", "vethwe-datapath", "arp", "off", "up")),
        Ip(ns, ("link", "set", "weave", "up")),
        in_ns(ns, ("ethtool", "-K", "vethwe-bridge", "tx", "off"),  # complete checksums before OVS reads the frames
              f"turn transmit checksum offload off on vethwe-bridge of {node.name}"),
        switch.vsctl("add-br", "datapath", "--", "set", "bridge", "datapath", "datapath_type=netdev", "fail_mode=secure",
                     "--", "add-port", "datapath", "vxlan-6784", "--", "set", "interface", "vxlan-6784", "type=vxlan",
                     f"ofport_request={weave.VXLAN_PORT}", f"options:dst_port={weave.UDP_PORT}", "options:key=flow",
                     "options:remote_ip=flow",
                     "--", "add-port", "datapath", "vethwe-datapath", "--", "set", "interface", "vethwe-datapath",
                     f"ofport_request={weave.BRIDGE_PORT}"),
    ]


def _weave_pod_inside(ctx: Ctx, node: Node, pod: Pod) -> list[Step]:
    """The weave CNI plugin's pod: an address in the one pod network (its whole prefix), default route via the node's bridge."""
    ns = ctx.ns(pod.name)
    cluster = ipaddress.ip_network(CLUSTER_CIDR).prefixlen
    return [
        Ip(ns, ("link", "set", "eth0", "address", weave.pod_mac(pod.ip))),
        Ip(ns, ("link", "set", "lo", "up")),
        Ip(ns, ("addr", "add", f"{pod.ip}/{cluster}", "dev", "eth0")),
        Ip(ns, ("link", "set", "eth0", "up")),
        Ip(ns, ("route", "add", "default", "via", node.gateway, "dev", "eth0")),
    ]


def _weave_after_pods(ctx: Ctx, node: Node) -> list[Step]:
    """What the weave router programs into the datapath once it knows every peer's MACs."""
    switch = _ovs(ctx, node)
    return switch.add("datapath", "flows", weave.flows(ctx.spec, node)) + ovs.tunnel_neighbours(
        switch, [(other.ip, antrea.uplink_mac(other)) for other in _others(ctx, node)])


def _antrea_port(ctx: Ctx, node: Node, pod: Pod) -> int:
    return antrea.pod_ports(ctx.spec, node)[pod.name]


def _nothing(*_args: object) -> list[Step]:
    return []


@dataclass(frozen=True)
class ModelBuilder:
    node: Callable[[Ctx, Node], list[Step]]  # node-side devices (bridge, VTEP, blackhole)
    pod_link: Callable[[Ctx, Node, Pod], list[Step]]  # the pod's veth, from the node's side
    pod_inside: Callable[[Ctx, Node, Pod], list[Step]]  # address and routes inside the pod
    after_pods: Callable[[Ctx, Node], list[Step]]  # per-interface sysctls once the pods' veths exist
    routing: Callable[[Ctx], list[Step]]  # how nodes reach each other's pod CIDRs
    uplink_bridge: bool = False  # the node's address sits on an OVS uplink bridge, not on eth0 (see ovs.py)
    start: Callable[[Ctx], list[Step]] = _nothing  # daemons every node needs before its devices (Open vSwitch)


MODEL_BUILDERS: dict[str, ModelBuilder] = {
    "kube-router": ModelBuilder(
        _bridge_node("kube-bridge", None), _bridge_pod_link("kube-bridge", None), _bridge_pod_inside, _nothing,
        _bgp(["kube-bridge"], blackhole=False),
    ),
    "flannel-vxlan": ModelBuilder(
        _flannel_vxlan_node, _bridge_pod_link("cni0", VXLAN_MTU), _bridge_pod_inside, _nothing, _nothing,
    ),
    "flannel-host-gw": ModelBuilder(
        _bridge_node("cni0", None), _bridge_pod_link("cni0", None), _bridge_pod_inside, _nothing, _host_gw_routes,
    ),
    "flannel-udp": ModelBuilder(
        _bridge_node("cni0", FLANNEL_UDP_MTU), _bridge_pod_link("cni0", FLANNEL_UDP_MTU), _bridge_pod_inside, _nothing,
        _flannel_udp_relays,
    ),
    "calico-bgp": ModelBuilder(
        _nothing, _calico_pod_link(None), _calico_pod_inside, _calico_after_pods, _bgp([], blackhole=True),
    ),
    "calico-vxlan": ModelBuilder(
        _calico_vxlan_node, _calico_pod_link(VXLAN_MTU), _calico_pod_inside, _calico_after_pods, _nothing,
    ),
    "weave": ModelBuilder(
        _weave_node, _bridge_pod_link("weave", weave.MTU, weave_port), _weave_pod_inside, _weave_after_pods, _nothing,
        uplink_bridge=True, start=_ovs_start,
    ),
    "antrea-geneve": ModelBuilder(
        _antrea_node, _ovs_pod_link("br-int", antrea_port, _antrea_port), _ovs_pod_inside, _antrea_after_pods, _nothing,
        uplink_bridge=True, start=_ovs_start,
    ),
}
