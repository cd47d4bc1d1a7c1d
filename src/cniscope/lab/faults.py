"""Faults a lab can inject, each reproducing a failure seen in real clusters.

`KINDS` maps a fault kind to its parameters, its planner and what it breaks.
A fault is planned into ordinary steps, so `lab fault --dry-run` and tests
can read it without root.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from cniscope.errors import UsageError
from cniscope.lab.naming import UNDERLAY, ns_name, veth_name, weave_port
from cniscope.lab.spec import Fault, LabSpec
from cniscope.lab.steps import Ip, Iptables, Step, Sysctl, in_ns

ASYMMETRIC_SUBNET = "192.168.201.0/24"  # the second NIC the rp-filter fault gives a node


def _node_ns(spec: LabSpec, node: str, allow_underlay: bool = False) -> str:
    if not (allow_underlay and node == UNDERLAY):
        spec.node(node)
    return ns_name(spec.name, node)


def _network(kind: str, key: str, text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f"fault {kind}: {key} must be an address or prefix, got {text!r}") from None


def _drop(spec: LabSpec, a: dict[str, str]) -> list[Step]:
    if a.get("dir", "in") not in ("in", "out"):
        raise UsageError(f"fault drop: dir must be in or out, got {a['dir']!r}")
    flag = "-i" if a.get("dir", "in") == "in" else "-o"
    rule = f'-I FORWARD {flag} {a["iface"]} -m comment --comment "cniscope fault drop" -j DROP'
    return [Iptables(_node_ns(spec, a["node"]), f"*filter\n{rule}\nCOMMIT\n")]


def _mtu(spec: LabSpec, a: dict[str, str]) -> list[Step]:
    """A lower MTU on one link; with blackhole=yes the node also swallows its ICMP frag-needed (a PMTU black hole).

    Veths forward GSO packets whatever their MTU, so lower it where the kernel
    routes out (a node's eth0), not on a receiving end.
    """
    if not a["mtu"].isdigit() or not 68 <= int(a["mtu"]) <= 9000:
        raise UsageError(f"fault mtu: mtu must be 68-9000, got {a['mtu']!r}")
    if a.get("blackhole", "no") not in ("yes", "no"):
        raise UsageError(f"fault mtu: blackhole must be yes or no, got {a['blackhole']!r}")
    ns = _node_ns(spec, a["node"], allow_underlay=True)
    steps: list[Step] = [Ip(ns, ("link", "set", "dev", a["iface"], "mtu", a["mtu"]))]
    if a.get("blackhole") == "yes":
        rule = '-I OUTPUT -p icmp --icmp-type fragmentation-needed -m comment --comment "cniscope fault mtu" -j DROP'
        steps.append(Iptables(ns, f"*filter\n{rule}\nCOMMIT\n"))
    return steps


def _rp_filter(spec: LabSpec, a: dict[str, str]) -> list[Step]:
    """Strict reverse-path filtering on eth0 while the route back to `source` leaves by a second NIC, eth1.

    eth1 is a veth whose other end sits unconnected in the underlay namespace: another network, a dead end.
    """
    ns = _node_ns(spec, a["node"])
    source = str(_network("rp-filter", "source", a["source"]))
    index = [n.name for n in spec.nodes].index(a["node"]) + 1
    address = ipaddress.ip_network(ASYMMETRIC_SUBNET).network_address + 10 + index
    return [
        Ip(ns, ("link", "add", "eth1", "type", "veth", "peer", "name", f"asym{index}", "netns", ns_name(spec.name, UNDERLAY))),
        Ip(ns_name(spec.name, UNDERLAY), ("link", "set", f"asym{index}", "up")),
        Ip(ns, ("addr", "add", f"{address}/24", "dev", "eth1")),
        Ip(ns, ("link", "set", "eth1", "up")),
        Ip(ns, ("route", "add", source, "dev", "eth1")),
        Sysctl(ns, "net.ipv4.conf.all.rp_filter", "1"),
        Sysctl(ns, "net.ipv4.conf.eth0.rp_filter", "1"),
    ]


def _missing_route(spec: LabSpec, a: dict[str, str]) -> list[Step]:
    return [Ip(_node_ns(spec, a["node"]), ("route", "del", str(_network("missing-route", "prefix", a["prefix"]))))]


def _br_netfilter_off(spec: LabSpec, a: dict[str, str]) -> list[Step]:
    return [Sysctl(_node_ns(spec, a["node"]), "net.bridge.bridge-nf-call-iptables", "0")]


def _hairpin_off(spec: LabSpec, a: dict[str, str]) -> list[Step]:
    if spec.model.startswith("calico") or spec.model == "antrea-geneve":
        raise UsageError(f"fault hairpin-off: {spec.model} has no Linux bridge, so no hairpin setting")
    pod = spec.pod(a["pod"])
    if pod is None:
        raise UsageError(f"fault hairpin-off: no pod named {a['pod']!r}")
    port = weave_port(pod.name) if spec.model == "weave" else veth_name(pod.name)
    return [Ip(ns_name(spec.name, pod.node), ("link", "set", port, "type", "bridge_slave", "hairpin", "off"))]


def _conntrack_flush(spec: LabSpec, a: dict[str, str]) -> list[Step]:
    return [in_ns(_node_ns(spec, a["node"]), ("conntrack", "-F"), f"flush the conntrack table of {a['node']}")]


@dataclass(frozen=True)
class FaultKind:
    params: tuple[str, ...]  # required
    optional: tuple[str, ...]
    plan: Callable[[LabSpec, dict[str, str]], list[Step]]
    breaks: str


KINDS: dict[str, FaultKind] = {
    "drop": FaultKind(("node", "iface"), ("dir",), _drop, "packets forwarded in (dir=in) or out (dir=out) of IFACE on NODE are dropped"),
    "mtu": FaultKind(("node", "iface", "mtu"), ("blackhole",), _mtu,
                     "IFACE on NODE gets a lower MTU: frag-needed, or with blackhole=yes full-size packets vanish"),
    "rp-filter": FaultKind(("node", "source"), (), _rp_filter, "strict rp_filter on NODE while the route back to SOURCE leaves by eth1"),
    "missing-route": FaultKind(("node", "prefix"), (), _missing_route, "NODE loses its route to PREFIX"),
    "br-netfilter-off": FaultKind(("node",), (), _br_netfilter_off, "bridged traffic on NODE skips iptables: same-node service replies are not un-NATed"),
    "hairpin-off": FaultKind(("node", "pod"), (), _hairpin_off, "POD can no longer reach itself through its Service"),
    "conntrack-flush": FaultKind(("node",), (), _conntrack_flush, "NODE forgets its NAT tuples mid-connection"),
}


def usage(name: str) -> str:
    """`mtu node=NODE iface=IFACE mtu=MTU [blackhole=yes|no]`, for help texts."""
    kind = KINDS[name]
    return " ".join([name, *(f"{p}={p.upper()}" for p in kind.params), *(f"[{o}={OPTIONAL_VALUES.get(o, o.upper())}]" for o in kind.optional)])


OPTIONAL_VALUES = {"dir": "in|out", "blackhole": "yes|no"}


def parse_fault(kind: str, args: list[str]) -> Fault:
    """`drop node=node3 iface=eth0` from the command line, its keys checked before any lab is looked at."""
    values: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise UsageError(f"fault {kind}: expected KEY=VALUE, got {arg!r}")
        values[key] = value
    fault = Fault(kind, values)
    _check_keys(fault)
    return fault


def _check_keys(fault: Fault) -> None:
    if fault.kind not in KINDS:
        raise UsageError(f"unknown fault {fault.kind!r}; known: {', '.join(KINDS)}")
    kind = KINDS[fault.kind]
    missing = [p for p in kind.params if p not in fault.args]
    unknown = [k for k in fault.args if k not in kind.params + kind.optional]
    if missing or unknown:
        raise UsageError(
            f"fault {fault.kind}: needs {' '.join(p + '=...' for p in kind.params)}"
            + (f" (optional: {' '.join(kind.optional)})" if kind.optional else "")
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
        )


def plan_fault(spec: LabSpec, fault: Fault) -> list[Step]:
    _check_keys(fault)
    return KINDS[fault.kind].plan(spec, fault.args)
