"""What a capture shows that tells network models apart, gathered once from the packet table and the journeys.

Everything here is counted over whole columns (polars); only the journeys,
which are already objects, are walked in Python, and only their hop counts.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from cniscope.journeys import at_rows, columns_of, hop_arrays
from cniscope.last import Last
from cniscope.models.base import COMMON_IFACES, Model, Role
from cniscope.packets.schema import ip4_text, mac_value
from cniscope.results import Change, ChangeKind, Hop, Journey

if TYPE_CHECKING:  # (imported with --cluster or an inventory beside the capture)
    from cniscope.inventory import Inventory

MAC_COLUMNS = ("eth_src", "eth_dst", "inner_eth_src", "inner_eth_dst", "arp_sha")
INITIAL_TTLS = (64, 128, 255)


@dataclass(frozen=True)
class TunnelSeen:
    kind: int  # Tunnel value
    port: int | None
    vnis: tuple[int, ...]
    rows: int


@dataclass(frozen=True)
class Shape:
    """How one packet showed up on one node when the capture names no interfaces: copies, tunnel, NAT."""

    copies: int
    encapsulated: bool
    nat: bool


@dataclass
class Observations:
    rows: int
    ifaces: dict[str, int]  # interface names (not the common NIC/loopback names) -> sightings
    tunnels: list[TunnelSeen]
    ports: Counter[tuple[int, int]]  # (proto, port) -> plain sightings, for the ports any model declares
    bgp_rows: int
    macs: Counter[int]  # MAC value -> sightings, for MACs any model declares
    mac_prefixes: Counter[int]  # 16-bit prefix -> sightings, for prefixes any model declares
    gateway_arps: Counter[str]  # gateway address -> ARP sightings asking for it
    pod_addresses: set[str]
    pod_values: frozenset[int]  # the IPv4 ones of `pod_addresses`, as the table stores them
    node_addresses: set[str]
    mss_from_pods: Counter[int]  # MSS -> SYN sightings sent by pod addresses
    ttl_at_tunnel: Counter[tuple[str, int]]  # (iface, ttl) -> sightings of pod-sent packets on tunnel devices
    shapes: Counter[Shape]  # Shape -> journeys
    direct_from_outside: list[tuple[str, str]] = field(default_factory=list)  # (client, pod) reached without NAT or tunnel


def _ids(journeys: list[Journey]) -> tuple[int, ...]:
    """In one table, a journey's id says which sightings it holds: journeys compared by their ids."""
    return tuple(j.id for j in journeys)


_interfaces: Last[dict[str, int]] = Last()  # asked twice by inference (its evidence, the pod veths' names)


def interface_sightings(table: pl.DataFrame) -> dict[str, int]:
    """Sightings per interface name, counted over the categorical column's codes (no name hashed per sighting:
    4 ms against 18 at 2M)."""
    return _interfaces.get(table, (), lambda: named_counts(table.get_column("iface")))


def named_counts(column: pl.Series) -> dict[str, int]:
    """How many times each name of a categorical column appears (nulls left out), counted over its codes: in C over
    the chunks in place (10M sightings: 0.01 against 0.04 s of CPU), or by numpy a chunk at a time."""
    if COMPILED:
        counts = np.frombuffer(code_counts(column.cat.physical().__arrow_c_stream__(), column.len()), dtype=np.int64)
    else:  # chunk by chunk, where the codes are (one array of every code was a copy of the column)
        chunks = [a for chunk in column.cat.physical().get_chunks() if len(a := chunk.drop_nulls().to_numpy())]
        counts = np.zeros(max((int(a.max()) + 1 for a in chunks), default=0), dtype=np.int64)
        for a in chunks:
            counts += np.bincount(a, minlength=len(counts))
    return code_names(counts, column.dtype)


def code_names(counts: np.ndarray, dtype: pl.DataType) -> dict[str, int]:
    """The names of categorical `dtype` whose codes have a count (`counts` by code), in code order, with it."""
    present = np.flatnonzero(counts)
    if not len(present):
        return {}
    names = pl.Series(present.astype(np.uint32)).cat.to(dtype).to_list()
    return dict(zip(names, counts[present].tolist()))


def gather(table: pl.DataFrame, journeys: list[Journey], models: list[Model], inventory: Inventory | None) -> Observations:
    ifaces = {
        name: n for name, n in interface_sightings(table).items()
        if name != "any" and not any(p.matches(name) for p in COMMON_IFACES)
    }
    seen = scanned(table, models, inventory)
    envelopes: dict[tuple[int, int | None], tuple[set[int], list[int]]] = {}  # (kind, port) -> VNIs, sightings
    for (kind, port, vni), n in seen.envelopes.items():
        vnis, rows = envelopes.setdefault((kind, port), (set(), [0]))
        vnis.update(() if vni is None else (vni,))
        rows[0] += n
    tunnels = [  # ties in the order of kind and port: the groups come in any order
        TunnelSeen(kind, port, tuple(sorted(vnis)), rows[0])
        for (kind, port), (vnis, rows) in sorted(envelopes.items(), key=lambda e: (-e[1][1][0], e[0][0], e[0][1] is None, e[0][1] or 0))
    ]
    node_addresses = node_addresses_of(seen, inventory)
    pod_addresses = pod_addresses_of(table, journeys, models, inventory) - node_addresses
    # the pods' IPv4 addresses as the table stores them: those the table showed by their values, the rest parsed
    values = {text: value for value, text in seen.texts.items()}
    pods = {v for a in pod_addresses if (v := values[a] if a in values else _ip4(a)) is not None}
    mss_from_pods: Counter[int] = Counter()
    for (mss, src), n in seen.syns.items():
        if src in pods:
            mss_from_pods[mss] += n
    ttl_at_tunnel: Counter[tuple[str, int]] = Counter()
    for (iface, src, ttl), n in seen.ttls.items():
        if src in pods:
            ttl_at_tunnel[iface, ttl] += n

    return Observations(
        rows=table.height,
        ifaces=ifaces,
        tunnels=tunnels,
        ports=Counter({port: n for port, n in seen.ports.items() if n}),
        bgp_rows=seen.bgp_rows,
        macs=Counter({mac: n for mac, n in seen.macs.items() if n}),
        mac_prefixes=Counter({prefix: n for prefix, n in seen.prefixes.items() if n}),
        gateway_arps=Counter({gateway: n for gateway, n in seen.gateways.items() if n}),
        pod_addresses=pod_addresses,
        pod_values=frozenset(pods),
        node_addresses=node_addresses,
        mss_from_pods=mss_from_pods,
        ttl_at_tunnel=ttl_at_tunnel,
        shapes=_shapes(table, journeys),
        direct_from_outside=_direct_from_outside(table, journeys, inventory),
    )


TUNNELLED, VETH, BGP, EVERY, OUTER = 1, 2, 4, 8, 16  # what an IPv4 address was seen as (`Scan.addresses`)


@dataclass(frozen=True)
class Asked:
    """What `scan` looks for: the models' ports, MACs, MAC prefixes (top 16 bits) and gateways (IPv4), the capture's
    interfaces that are a model's pod host veths or tunnel devices, and whether every sighting's addresses are wanted
    (an inventory says which are pods)."""

    ports: tuple[tuple[int, int], ...]  # (proto, port)
    macs: tuple[int, ...]
    prefixes: tuple[int, ...]
    gateways: tuple[str, ...]
    veths: tuple[str, ...]
    devices: tuple[str, ...]
    every: bool


_asked: Last[Asked] = Last()


def asked(table: pl.DataFrame, models: list[Model], inventory: Inventory | None) -> Asked:
    """What to look for in `table` (`scan`) for `models`; with an `inventory`, every sighting's addresses."""
    return _asked.get(table, (inventory is not None, *models), lambda: _asked_of(table, models, inventory is not None))


def _asked_of(table: pl.DataFrame, models: list[Model], every: bool) -> Asked:
    names = interface_sightings(table)

    def plays(name: str, role: Role) -> bool:
        return any((p := m.role_of(name)) is not None and p.role is role for m in models)

    return Asked(
        ports=tuple(sorted({(p.proto, p.port) for m in models for p in m.ports})),
        macs=tuple(sorted({mac_value(s.mac) for m in models for s in m.macs if not s.prefix})),
        prefixes=tuple(sorted({int(s.mac.replace(":", ""), 16) for m in models for s in m.macs if s.prefix})),
        gateways=tuple(sorted({gw for m in models if (gw := m.gateway_arp) and _ip4(gw) is not None})),
        veths=tuple(name for name in names if plays(name, Role.HOST_VETH)),
        devices=tuple(name for name in names
                      if name != "any" and not any(p.matches(name) for p in COMMON_IFACES) and plays(name, Role.TUNNEL)),
        every=every,
    )


@dataclass(frozen=True)
class Scan:
    """What the packet table shows of what was `Asked`."""

    envelopes: dict[tuple[int, int | None, int | None], int]  # (tunnel, outer port, VNI) -> sightings
    ports: dict[tuple[int, int], int]  # each asked (proto, port) -> plain (not tunnelled) sightings to or from it
    bgp_rows: int  # plain sightings of TCP port 179
    macs: dict[int, int]  # each asked MAC -> sightings with it in any MAC column (once however many)
    prefixes: dict[int, int]  # the same for each prefix
    gateways: dict[str, int]  # each asked gateway -> ARP sightings whose target it is
    addresses: dict[int, int]  # IPv4 address -> what it was seen as (TUNNELLED | VETH | BGP | EVERY | OUTER)
    syns: dict[tuple[int, int], int]  # (MSS, source) -> SYN sightings with them
    ttls: dict[tuple[str, int, int], int]  # (tunnel device, source, TTL) -> sightings on it with them

    @cached_property
    def texts(self) -> dict[int, str]:
        """Each of `addresses` as text."""
        return {value: text for value in self.addresses if (text := ip4_text(value))}


_scanned: Last[Scan] = Last()  # asked by inference and, for the pods' addresses, by labelling


def scanned(table: pl.DataFrame, models: list[Model], inventory: Inventory | None) -> Scan:
    wanted = asked(table, models, inventory)
    return _scanned.get(table, (wanted,), lambda: scan(table, wanted))


def scan(table: pl.DataFrame, wanted: Asked) -> Scan:
    """What `table` shows of `wanted`: in C, one pass over the columns' own buffers, or in polars."""
    return c_scan(table, wanted) if COMPILED and len(wanted.devices) < 0x7fff and len(wanted.macs) + len(wanted.prefixes) <= 8 \
        else python_scan(table, wanted)


# the columns `_evidence.scan` reads, in its order
SCANNED = ("tunnel", "outer_dport", "vni", "proto", "sport", "dport", "src", "dst", "outer_src", "outer_dst", "mss", "tcp_flags",
           "iface", "ttl", "arp_tpa", *MAC_COLUMNS)


def c_scan(table: pl.DataFrame, wanted: Asked) -> Scan:
    """`scan` in C (`_evidence.scan`)."""
    kinds = np.zeros(0, dtype=np.uint16)  # by interface code: a pod host veth (bit 15), a tunnel device's number + 1
    named = [(name, 0x8000) for name in wanted.veths] + [(name, number + 1) for number, name in enumerate(wanted.devices)]
    if named:
        codes = pl.Series([name for name, _ in named], dtype=table.schema["iface"]).to_physical().to_numpy()
        kinds = np.zeros(int(codes.max()) + 1, dtype=np.uint16)
        for code, (_, kind) in zip(codes.tolist(), named, strict=True):
            kinds[code] |= kind
    columns = tuple(None if (s := table.get_column(name)).null_count() == s.len() > 0 else s.to_physical().__arrow_c_stream__()
                    for name in SCANNED)  # None: a column of nulls, not read
    port_rows, mac_rows, prefix_rows, gateway_rows = (np.zeros(len(asked), dtype=np.int64)
                                                      for asked in (wanted.ports, wanted.macs, wanted.prefixes, wanted.gateways))
    bgp_rows, envelopes, addresses, syns, ttls = evidence_scan(
        columns, table.height, kinds, np.array([proto << 16 | port for proto, port in wanted.ports], dtype=np.uint32),
        np.array(wanted.macs, dtype=np.uint64), np.array(wanted.prefixes, dtype=np.uint64),
        np.array([_ip4(gw) for gw in wanted.gateways], dtype=np.uint32), wanted.every, port_rows, mac_rows, prefix_rows, gateway_rows)

    def pairs(found: bytes) -> list[tuple[int, int]]:  # a map's keys and values side by side
        keys, values = np.frombuffer(found, dtype=np.uint64).reshape(-1, 2).T.tolist()
        return list(zip(keys, values, strict=True))

    def present(key: int, bit: int, mask: int) -> int | None:  # the field above `bit` if `bit` says it is there
        return key >> (bit + 1) & mask if key >> bit & 1 else None

    return Scan(
        envelopes={(key & 0xff, present(key, 8, 0xffff), present(key, 25, 0xffffffff)): n for key, n in pairs(envelopes)},
        ports=dict(zip(wanted.ports, port_rows.tolist(), strict=True)),
        bgp_rows=bgp_rows,
        macs=dict(zip(wanted.macs, mac_rows.tolist(), strict=True)),
        prefixes=dict(zip(wanted.prefixes, prefix_rows.tolist(), strict=True)),
        gateways=dict(zip(wanted.gateways, gateway_rows.tolist(), strict=True)),
        addresses=dict(pairs(addresses)),
        syns={(key >> 32, key & 0xffffffff): n for key, n in pairs(syns)},
        ttls={(wanted.devices[(key >> 40) - 1], key & 0xffffffff, key >> 32 & 0xff): n for key, n in pairs(ttls)},
    )


def python_scan(table: pl.DataFrame, wanted: Asked) -> Scan:
    """`scan` in polars, where C was not built."""
    envelopes = {(kind, port, vni): n for kind, port, vni, n in
                 table.lazy().filter(_tunnelled).group_by("tunnel", "outer_dport", "vni").len().collect().rows()}
    # the plain sightings on any of the ports, grouped by their ports (one filter, not one pass per port: 3 ms against
    # 10 at 2M); a sighting counts once for each wanted port it is to or from
    numbers = sorted({port for _, port in wanted.ports} | {179})
    on_ports = table.lazy().filter((pl.col("tunnel").fill_null(0) == 0) & (pl.col("sport").is_in(numbers) | pl.col("dport").is_in(numbers)))
    grouped = on_ports.group_by("proto", "sport", "dport").len().collect().rows()
    ports = {(proto, port): sum(k for p, sport, dport, k in grouped if p == proto and port in (sport, dport)) for proto, port in wanted.ports}
    bgp_rows = sum(k for p, sport, dport, k in grouped if p == 6 and 179 in (sport, dport))
    macs, prefixes = _mac_sightings(table, wanted)
    gateways = {gw: table.select((pl.col("arp_tpa") == _ip4(gw)).sum()).item() for gw in wanted.gateways}
    addresses: dict[int, int] = {}
    for where, kind, columns in ((_tunnelled, TUNNELLED, ("src", "dst")), (_on_port(6, 179), BGP, ("src", "dst")),
                                 (None, OUTER, ("outer_src", "outer_dst")),
                                 *([(pl.col("iface").is_in(list(wanted.veths)), VETH, ("src", "dst"))] if wanted.veths else []),
                                 *([(None, EVERY, ("src", "dst"))] if wanted.every else [])):
        for value in _addresses(table, where, *columns):
            addresses[value] = addresses.get(value, 0) | kind
    # the few sightings that can count (with an MSS; on a tunnel device) taken first, then grouped (every sighting
    # grouped: 0.029 -> 0.015 s of CPU at 10M)
    has_src = pl.col("src").is_not_null()
    with_mss = table.lazy().select("tcp_flags", "mss", "src").filter(pl.col("mss").is_not_null() & has_src).collect()
    syns = {(mss, src): n for mss, src, n in
            with_mss.lazy().filter(pl.col("tcp_flags").fill_null(0) & 2 != 0).group_by("mss", "src").len().collect().rows()}
    ttls: dict[tuple[str, int, int], int] = {}
    if wanted.devices:
        on_devices = table.lazy().select("iface", "src", "ttl").filter(pl.col("iface").is_in(list(wanted.devices))).collect()
        ttls = {(iface, src, ttl): n for iface, src, ttl, n in on_devices.lazy().filter(has_src & pl.col("ttl").is_not_null())
                .group_by("iface", "src", "ttl").len().collect().rows()}
    return Scan(envelopes, ports, bgp_rows, macs, prefixes, gateways, addresses, syns, ttls)


def _mac_sightings(table: pl.DataFrame, wanted: Asked) -> tuple[dict[int, int], dict[int, int]]:
    """The sightings whose MAC columns hold each asked MAC, or one under each asked prefix: a frame counts once however
    many of its MACs match (as Wireshark's `eth.addr` counts it)."""
    held = [column for column in MAC_COLUMNS if table[column].null_count() < table.height]
    if not held or not (wanted.macs or wanted.prefixes):
        return dict.fromkeys(wanted.macs, 0), dict.fromkeys(wanted.prefixes, 0)

    def rows(matches: list[pl.Expr]) -> pl.Expr:  # the sightings where any column matches
        return pl.any_horizontal(*(m.fill_null(False) for m in matches)).sum()

    found = table.select(
        *(rows([pl.col(c).eq(v) for c in held]).alias(f"mac {v}") for v in wanted.macs),
        # a prefix as a range of values (22 -> 15 ms at 2M against dividing each)
        *(rows([pl.col(c).is_between(p << 32, ((p + 1) << 32) - 1) for c in held]).alias(f"prefix {p}") for p in wanted.prefixes),
    ).row(0)
    return (dict(zip(wanted.macs, found[:len(wanted.macs)], strict=True)),
            dict(zip(wanted.prefixes, found[len(wanted.macs):], strict=True)))


def nat_changes(hop: Hop) -> list[Change]:
    """The DNAT/SNAT changes of a hop, unless they only swap source and destination (a reply grouped with its request)."""
    if not hop.changes:  # most hops
        return []
    dnat = [c for c in hop.changes if c.kind is ChangeKind.DNAT]
    snat = [c for c in hop.changes if c.kind is ChangeKind.SNAT]
    if dnat and snat and dnat[0].after == snat[0].before and snat[0].after == dnat[0].before:
        return []
    return dnat + snat


def any_rewrite(journeys: list[Journey]) -> bool:
    """Does some hop show an address rewritten (DNAT, SNAT)? Each distinct tuple of changes looked at once
    (materialising gives equal changes one shared tuple): most captures have none, and then no hop is asked again."""
    made = hop_arrays(journeys)
    distinct = made.distinct if made is not None else {id(changes): changes for j in journeys for h in j.hops if (changes := h.changes)}.values()
    return any(c.kind in (ChangeKind.DNAT, ChangeKind.SNAT) for changes in distinct for c in changes)


def reflected(hop: Hop) -> bool:
    """The packet came back reflected (source and destination swapped): an echo, not another copy."""
    if not hop.changes:
        return False
    if any(c.kind is ChangeKind.SWAP for c in hop.changes):
        return True
    return any(c.kind in (ChangeKind.DNAT, ChangeKind.SNAT) for c in hop.changes) and not nat_changes(hop)


def _on_port(proto: int, port: int) -> pl.Expr:
    """Sightings of `proto` to or from `port` (False where unknown)."""
    return ((pl.col("proto") == proto) & ((pl.col("dport") == port) | (pl.col("sport") == port))).fill_null(False)


def _ip4(text: str) -> int | None:
    """The address as the table stores it; None for IPv6 or what is not an address (an unresolved name)."""
    try:
        return int(ipaddress.IPv4Address(text))
    except ipaddress.AddressValueError:
        return None


_tunnelled = pl.col("tunnel").fill_null(0) != 0


def _addresses(table: pl.DataFrame, where: pl.Expr | None, *columns: str) -> set[int]:
    """The IPv4 addresses in `columns` of the rows `where` selects (all when None): each column's distinct values,
    with no copy of the rows selected. Hashed in order of appearance (a set is made of them): polars' `unique` sorts
    integers (2M tunnelled sources and destinations at 10M: 0.05 s of CPU, 0.02 hashed)."""
    rows = table.lazy() if where is None else table.lazy().filter(where)
    found = rows.select(pl.col(c).drop_nulls().unique(maintain_order=True).implode() for c in columns).collect().row(0)
    return {v for values in found for v in values}


def _seen_as(seen: Scan, kinds: int) -> set[str]:
    """The IPv4 addresses the table showed as any of `kinds` (`Scan.addresses`), as text."""
    return {seen.texts[value] for value, were in seen.addresses.items() if were & kinds}


def node_addresses_of(seen: Scan, inventory: Inventory | None) -> set[str]:
    """Tunnel endpoints and BGP speakers are nodes; so is every address the inventory gives a node."""
    found = _seen_as(seen, OUTER | BGP)
    if inventory is not None:
        found |= {a for node in inventory.nodes for a in node.addresses}
    return found


# inference and labelling ask for the same journeys' (labelled or not: roles change none)
_pods: Last[frozenset[str]] = Last()


def pod_addresses_of(table: pl.DataFrame, journeys: list[Journey], models: list[Model], inventory: Inventory | None) -> set[str]:
    """Addresses known to be pods: inside tunnels, on pod-side veths, DNAT targets, and the inventory's pods."""
    same = (_ids(journeys), inventory, *models)  # models and inventory compared by value
    return set(_pods.get(table, same, lambda: frozenset(_pod_addresses_of(table, journeys, models, inventory))))


def _pod_addresses_of(table: pl.DataFrame, journeys: list[Journey], models: list[Model], inventory: Inventory | None) -> set[str]:
    seen = scanned(table, models, inventory)
    found = _seen_as(seen, TUNNELLED | VETH)
    targets: set[str] = set()  # DNAT's: text of a change, perhaps not an address
    # a request's DNAT target is a service endpoint; a reply's DNAT only restores a masqueraded client
    translated: set[str] = set()
    rewritten = journeys if journeys and any_rewrite(journeys) else []
    # each journey's first sighting's proto, flags, port: read for these rows only, and only when some change rewrites
    # an address (the row view of every hop held them for each of its rows: 3 of its 8 dicts, 0.01 s at 20,000 journeys)
    firsts = columns_of(table, "proto", "tcp_flags", "dport")[[j.hops[0].row for j in rewritten]] if rewritten else None
    heads = zip(*(firsts[c].to_list() for c in ("proto", "tcp_flags", "dport")), strict=True) if firsts is not None else ()
    for journey, (proto, flags, dport) in zip(rewritten, heads, strict=True):
        request = (proto == 6 and flags is not None and flags & 0x12 == 0x02) or (proto == 17 and dport is not None and dport < 32768)
        if not request:
            continue
        for hop in journey.hops:
            if not hop.changes:  # most hops: nothing to look at
                continue
            for change in nat_changes(hop):
                if change.kind is ChangeKind.DNAT:
                    targets.add(change.after.rsplit(":", 1)[0])
                    translated.add(change.before.rsplit(":", 1)[0])  # a service or node port address
                else:
                    translated.add(change.after.rsplit(":", 1)[0])  # a masquerade source: a node
    if inventory is not None:
        found |= {a for a in _seen_as(seen, EVERY) if inventory.is_pod_address(a)}
    # never a masquerade source (a node's bridge address is inside its pod CIDR) nor a service or node port address
    return (found - translated) | {a for a in targets - translated if _is_address(a)}


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class RowView:
    """The few columns the journey walks need, for the rows the journeys refer to only (tables can be huge)."""

    key: dict[int, str]  # node name, or `input N` when the input names no node (one file = one capture host)
    src: dict[int, str | None]  # IPv4 or IPv6 text
    dst: dict[int, str | None]
    tunnel: dict[int, int]


# inference asks twice when the capture names no interfaces (copies; with an inventory, who reached pods)
_viewed: Last[RowView] = Last()


def row_view(table: pl.DataFrame, journeys: list[Journey]) -> RowView:
    return _viewed.get(table, (_ids(journeys),), lambda: _row_view(table, journeys))


def _row_view(table: pl.DataFrame, journeys: list[Journey]) -> RowView:
    rows = sorted({hop.row for journey in journeys for hop in journey.hops})
    at = at_rows(columns_of(table, "node", "input", "src", "dst", "src6", "dst6", "tunnel"), np.array(rows, dtype=np.int64))
    sub = at.select(
        pl.coalesce(pl.col("node"), pl.lit("input ") + pl.col("input").cast(pl.Utf8)).alias("key"),
        pl.coalesce(_ip4_texts(at["src"]), pl.col("src6")).alias("src"),
        pl.coalesce(_ip4_texts(at["dst"]), pl.col("dst6")).alias("dst"),
        pl.col("tunnel").fill_null(0),
    )

    def column(name: str) -> dict[int, Any]:
        return dict(zip(rows, sub[name].to_list()))

    return RowView(column("key"), column("src"), column("dst"), column("tunnel"))


def _ip4_texts(column: pl.Series) -> pl.Series:
    """`_ip4_text` of a column of IPv4 addresses, written once per distinct address (the rows of a view share a
    few: 1,070 sources among the 73k rows of 20,000 journeys at 200k sightings)."""
    values = column.unique().drop_nulls()
    texts = values.to_frame().select(_ip4_text(pl.col(column.name))).to_series()
    return column.replace_strict(values, texts, default=None, return_dtype=pl.String)


def _ip4_text(value: pl.Expr) -> pl.Expr:
    """Dotted quad of an IPv4 address stored as an integer (as `ip4_text`, over a whole column)."""
    octets = [((value // (1 << shift)) % 256).cast(pl.Utf8) for shift in (24, 16, 8, 0)]
    return pl.concat_str(octets, separator=".")


def _shapes(table: pl.DataFrame, journeys: list[Journey]) -> Counter[Shape]:
    """Copies of one packet on one node, for journeys whose sightings there name no interface."""
    if not table["iface"].null_count():
        return Counter()  # every sighting names its interface (most captures): no copies to count
    unnamed = [j for j in journeys if not all(h.iface is not None for h in j.hops)]
    view = row_view(table, unnamed)
    keys, tunnels = view.key, view.tunnel
    shapes: Counter[Shape] = Counter()
    for journey in unnamed:
        by_node: dict[str, list[Hop]] = {}
        for hop in journey.hops:
            by_node.setdefault(keys[hop.row], []).append(hop)
        for hops in by_node.values():
            if len(hops) < 2 or any(h.iface is not None for h in hops) or any(reflected(h) for h in hops):
                continue
            nat = any(nat_changes(h) for h in hops[1:])
            shapes[Shape(len(hops), any(tunnels[h.row] for h in hops), nat)] += 1
    return shapes


def _direct_from_outside(table: pl.DataFrame, journeys: list[Journey], inventory: Inventory | None) -> list[tuple[str, str]]:
    """Packets from a host the inventory does not know (not a node, not a pod) to a pod, with no NAT and no tunnel."""
    if inventory is None or not inventory.nodes:
        return []
    view = row_view(table, journeys)
    src, dst, tunnels = view.src, view.dst, view.tunnel
    pairs: set[tuple[str, str]] = set()
    for journey in journeys:
        first = journey.hops[0].row
        if src[first] is None or dst[first] is None or any(tunnels[h.row] for h in journey.hops):
            continue
        if any(nat_changes(h) for h in journey.hops):
            continue
        client, pod = src[first], dst[first]
        if client is None or pod is None:
            continue
        if inventory.is_pod_address(pod) and not inventory.is_node_address(client) and not inventory.is_pod_address(client):
            pairs.add((client, pod))
    return sorted(pairs)


try:
    from cniscope._evidence import code_counts
    from cniscope._evidence import scan as evidence_scan
    COMPILED = True
except ImportError:  # built without a C compiler
    COMPILED = False
