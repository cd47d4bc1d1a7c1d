"""A node's facts as recorded at capture time: interface table, routes, sysctls, versions.

Parsed from the output of `nodeside.INVENTORY_SCRIPT` (sections `== name`,
`ip -j` JSON inside). Bad or missing sections leave empty values and a note;
they never raise.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from cniscope.wire.convert import Interface


@dataclass
class NodeFacts:
    uid: int | None = None
    hostname: str | None = None
    ssh_connection: str | None = None  # "client_ip client_port server_ip server_port" as the node saw us
    interfaces: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    clock_ns: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> list[Interface]:
        return interface_table(self.interfaces)

    def by_index(self) -> dict[int, dict[str, Any]]:
        return {entry["index"]: entry for entry in self.interfaces}

    def uplinks(self) -> list[int]:
        """The node's NIC: interfaces of the default routes, else of routes through a gateway."""
        main = [r for r in self.routes if r.get("table") in (None, "main")]
        names = {r.get("dev") for r in main if r.get("dst") == "default"} or {r.get("dev") for r in main if r.get("gateway")}
        return sorted(entry["index"] for entry in self.interfaces if entry["name"] in names)


def split_sections(text: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in sections.items()}


def _json_list(text: str, what: str, notes: list[str]) -> list[dict[str, Any]]:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        notes.append(f"{what}: not JSON ({exc.msg} at character {exc.pos})")
        return []
    if not isinstance(value, list):
        notes.append(f"{what}: expected a JSON list")
        return []
    return [item for item in value if isinstance(item, dict)]


def _int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def link_entry(raw: dict[str, Any]) -> dict[str, Any]:
    """One `ip -j -d addr` entry -> the fields we keep (index, name, MAC, addresses, MTU, type, peer)."""
    info = raw.get("linkinfo") or {}
    addresses = [f"{a['local']}/{a['prefixlen']}" for a in raw.get("addr_info", []) if "local" in a and "prefixlen" in a]
    return {
        "index": raw.get("ifindex"),
        "name": raw.get("ifname"),
        "kind": info.get("info_kind"),
        "slave_kind": info.get("info_slave_kind"),
        "link_type": raw.get("link_type"),
        "mac": raw.get("address") if raw.get("link_type") == "ether" else None,
        "mtu": raw.get("mtu"),
        "addresses": addresses,
        "peer_index": raw.get("link_index"),
        "peer_netnsid": raw.get("link_netnsid"),
        "master": raw.get("master"),
        "state": raw.get("operstate"),
        "flags": raw.get("flags", []),
        "vxlan": {k: v for k, v in (info.get("info_data") or {}).items() if k in ("id", "port", "local", "link")}
        if info.get("info_kind") == "vxlan"
        else None,
    }


def parse_inventory(text: str) -> NodeFacts:
    sections = split_sections(text)
    facts = NodeFacts()
    for required in ("uid", "links", "routes", "end"):
        if required not in sections:
            facts.notes.append(f"inventory: section {required!r} missing (the node's output was cut or a tool failed)")
    facts.uid = _int(sections.get("uid"))
    facts.hostname = sections.get("hostname") or None
    facts.ssh_connection = sections.get("ssh") or None
    facts.interfaces = [
        e for e in (link_entry(raw) for raw in _json_list(sections.get("links", ""), "ip -j -d addr", facts.notes))
        if isinstance(e["index"], int) and isinstance(e["name"], str)
    ]
    facts.routes = _json_list(sections.get("routes", ""), "ip -j route", facts.notes)
    facts.neighbours = _json_list(sections.get("neigh", ""), "ip -j neigh", facts.notes)
    for line in sections.get("sysctl", "").splitlines():
        path, sep, value = line.partition(":")
        if sep and path.startswith("/proc/sys/"):
            facts.sysctls[path[len("/proc/sys/") :].replace("/", ".")] = value.strip()
    tcpdump = sections.get("tcpdump", "")
    for line in tcpdump.splitlines():
        for tool in ("tcpdump", "libpcap"):
            if line.startswith(f"{tool} version "):
                facts.versions[tool] = line.split()[2]
    if "ip" in sections:
        facts.versions["iproute2"] = sections["ip"].replace("ip utility, ", "").strip()
    if "uname" in sections:
        facts.versions["kernel"] = sections["uname"]
    if "tcpdump" not in facts.versions:
        facts.notes.append(f"tcpdump not found on the node: {tcpdump[:200]!r}")
    facts.clock_ns = _int(sections.get("clock"))
    return facts


def interface_table(entries: list[dict[str, Any]]) -> list[Interface]:
    table = []
    for e in sorted(entries, key=lambda e: e["index"]):
        ipv4 = tuple(a for a in e.get("addresses", []) if _is_ipv4(a))
        table.append(
            Interface(
                index=e["index"], name=e["name"], kind=e.get("kind"), mac=e.get("mac"), mtu=e.get("mtu"),
                ipv4=ipv4, peer_index=e.get("peer_index"), master=e.get("master"),
            )
        )
    return table


def _is_ipv4(cidr: str) -> bool:
    try:
        return isinstance(ipaddress.ip_interface(cidr), ipaddress.IPv4Interface)
    except ValueError:
        return False


def merge_tables(start: list[dict[str, Any]], stop: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Interfaces seen at start, plus those created during the capture (by ifindex)."""
    known = {e["index"] for e in start}
    return start + [e for e in stop if e["index"] not in known]


def host_side(facts: NodeFacts, pod_ip: str | None, peer_index: int | None) -> int | None:
    """The node's end of a pod's link: by the pod eth0's peer index, else the /32 route, else neighbour + bridge port."""
    by_index = facts.by_index()
    if peer_index is not None and peer_index in by_index:
        return peer_index
    if pod_ip is None:
        return None
    for route in facts.routes:
        if route.get("dst") in (pod_ip, f"{pod_ip}/32") and route.get("dev"):
            for entry in facts.interfaces:
                if entry["name"] == route["dev"] and entry.get("kind") != "bridge":
                    index: int = entry["index"]
                    return index
    return None
