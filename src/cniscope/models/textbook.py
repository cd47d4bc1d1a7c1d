"""The textbook page of each model, rendered from its data table (for `cniscope models show` and the docs)."""

from __future__ import annotations

from cniscope.models import MODELS, PROXIES
from cniscope.models.base import Model, Side
from cniscope.packets.kinds import Tunnel


def listing() -> str:
    """One line per model: name, family, summary."""
    width = max(len(name) for name in MODELS)
    lines = [f"{m.name:<{width}}  {m.summary}" for m in MODELS.values()]
    lines.append("")
    lines.append("service proxies: " + ", ".join(PROXIES))
    lines.append("`cniscope models show NAME` prints a model's expected paths, interfaces and signatures.")
    return "\n".join(lines)


def _encap(model: Model) -> list[str]:
    if not model.encaps:
        return ["  none: other nodes' pod addresses are routed to their node IPs"]
    out = []
    for e in model.encaps:
        port = f" UDP {e.port}" if e.port is not None else " (IP protocol 4)"
        vni = "" if e.kind is Tunnel.IPIP else f", VNI {e.vni}"
        usual = "" if e.usual else " [only in some setups]"
        out.append(f"  {e.kind.label}{port}{vni}, device {e.device}, {e.overhead} bytes overhead{usual}" + (f": {e.note}" if e.note else ""))
    return out


def page(model: Model) -> str:
    """Everything the tables say about one model, as plain text."""
    lines = [f"{model.name} ({model.family})", "=" * (len(model.name) + len(model.family) + 3), model.summary, ""]
    lines.append("Interfaces")
    for p in model.ifaces:
        lines.append(f"  {p.regex:<28} {p.role.value:<16} {p.note}")
    lines += ["", "Encapsulation"] + _encap(model)
    lines += ["", "Signatures"]
    lines.append(f"  pod MTU (1500-byte NIC): {', '.join(map(str, model.pod_mtus))}  ->  MSS {', '.join(str(m - 40) for m in model.pod_mtus)}")
    for mac in model.macs:
        lines.append(f"  MAC {mac.mac}{'..' if mac.prefix else ''}: {mac.meaning}")
    if model.gateway_arp:
        lines.append(f"  pods ARP for their gateway {model.gateway_arp}; the node answers by proxy ARP")
    for port in model.ports:
        lines.append(f"  {'TCP' if port.proto == 6 else 'UDP'} {port.port}: {port.meaning}")
    bgp = "always" if model.bgp >= 0.99 else "usually" if model.bgp >= 0.5 else "rarely" if model.bgp > 0 else "never"
    lines.append(f"  BGP (TCP 179) between nodes: {bgp}")
    lines.append(f"  IP forwarding by the node's stack: {'yes' if model.kernel_forwarding else 'no'}; "
                 f"TTL -1 per node: {'yes' if model.decrements_ttl else 'no'}")
    lines.append(f"  default pod range: {', '.join(model.pod_cidrs) or 'from Node spec.podCIDR'}; services: {', '.join(model.service_cidrs)}")
    lines.append(f"  service proxy: {PROXIES[model.service_proxy].summary}")
    lines += ["", "Expected paths (tcpdump -i any on each node)"]
    for path in model.paths:
        lines.append(f"  {path.traffic.value}" + (f"  ({path.note})" if path.note else ""))
        sides = [("this node", path.steps)] if path.one_node else [
            (Side.SOURCE.value, path.segment(Side.SOURCE)), (Side.DESTINATION.value, path.segment(Side.DESTINATION))]
        for name, steps in sides:
            if not steps:
                continue
            shown = []
            for s in steps:
                extra = "".join(f" [{x}]" for x in (
                    "encapsulated" if s.encapsulated else "", f"after {s.nat}" if s.nat else "", "may not show" if s.optional else "") if x)
                shown.append(f"{s.iface or s.role.value} {s.direction}{extra}")
            lines.append(f"    {name}: " + " -> ".join(shown))
    if model.notes:
        lines += ["", "Notes"] + [f"  {n}" for n in model.notes]
    lines += ["", "Sources"] + [f"  {s}" for s in model.sources]
    return "\n".join(lines)
