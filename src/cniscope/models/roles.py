"""Hop roles from the network model, and each journey compared with the model's expected path.

`label` gives every hop a role. A named interface gets its role from the
model's interface table ("pod bridge kube-bridge, out", "veth to pod
default/nginx", "flannel.1 VTEP (decapsulated)"). Where a capture names no
interfaces (old `tcpdump -i any` text), the k copies of a packet on one node
are matched, by position, to the model's expected per-node segment of length
k whose ends fit the packet (a segment ending at a pod veth for a packet to a
pod, starting at one for a packet from a pod).

`compare` finds what the expected path says should have happened next and
did not, and paths the model does not have (`Mismatch`; the findings are
made by `cniscope.findings.paths`). It is conservative: a node
where the packet was seen once says nothing (a single-interface capture);
hops before the first sighting are never reported (capture filters hide
them); a hop after the last sighting is reported missing only when this
capture shows that capture point on that node for other packets.
"""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import polars as pl

from cniscope.journeys import _once_per_distinct, at_rows, columns_of, distinct_rows, hop_arrays
from cniscope.models import MODELS
from cniscope.models.base import IfacePattern, Model, Path, Role, Step, role_of
from cniscope.models.evidence import _ip4_texts, nat_changes, pod_addresses_of, reflected, row_view
from cniscope.models.shapes import segments
from cniscope.packets.schema import IFINDEX_PREFIX, Tunnel, ip4_text, named_iface
from cniscope.results import Hop, Journey, ModelVerdict, set_roles

if TYPE_CHECKING:  # (imported with --cluster or an inventory beside the capture)
    from cniscope.inventory import Inventory

INGRESS = {"In", "P", "B", "M"}
_Verdict = tuple[str | None, str, str, tuple[int, int] | None]  # Mismatch fields after (journey, node, hops)


@dataclass(frozen=True)
class Mismatch:
    """A journey's sightings on one node against the model's expected paths."""

    journey: Journey
    node: str
    hops: tuple[Hop, ...]  # the journey's sightings on that node
    expected: str | None  # the expected next point that is missing; None: no path of the model crosses these points in order
    traffic: str  # the expected path's traffic kind ("" for a deviation)
    model: str
    copies: tuple[int, int] | None = None  # (copies of other packets, of this one) when the capture names no interfaces


@dataclass(frozen=True)
class _Context:
    model: Model | None
    keys: dict[int, str]
    src: dict[int, str | None]
    dst: dict[int, str | None]
    tunnel: dict[int, int]
    pods: set[str]
    inventory: Inventory | None
    patterns: dict[str, IfacePattern | None] = field(default_factory=dict)  # interface name -> the model's pattern
    texts: dict[tuple[object, ...], str] = field(default_factory=dict)  # `_role_text`
    observed: dict[tuple[str | None, str | None], tuple[Role | None, str | None]] = field(default_factory=dict)  # `_observed`
    reflects: dict[int, bool] = field(default_factory=dict)  # `_reflected`, by the changes' identity (the shapes' hops hold them)
    compared: dict[tuple[str, tuple[tuple[Role | None, str | None], ...]], _Verdict | None] = field(default_factory=dict)  # `_compare_named`
    coarse: bool = False  # shapes without the addresses: a pod veth's words are a `_Veth`, worded per hop (`_veth_words`)

    def pattern(self, iface: str) -> IfacePattern | None:
        """`role_of` the model, once per interface name."""
        if iface not in self.patterns:
            self.patterns[iface] = role_of(self.model, iface)
        return self.patterns[iface]

    def is_pod(self, addr: str | None) -> bool:
        if addr is None:
            return False
        if addr in self.pods:
            return True
        if self.inventory is not None and self.inventory.nodes:
            return self.inventory.is_pod_address(addr)
        if self.model is None or ":" in addr:
            return False
        return _in_default_range(addr, self.model.pod_cidrs)

    def who(self, addr: str | None) -> str:
        if addr is None:
            return "?"
        if self.inventory is not None:
            pod = self.inventory.pod_of(addr)
            if pod is not None:
                return pod.ref
        return addr


@lru_cache(maxsize=65536)
def _in_default_range(addr: str, cidrs: tuple[str, ...]) -> bool:
    """In one of a model's default pod ranges, if the range is narrow enough to mean something (/12 or longer)."""
    ip = ipaddress.ip_address(addr)
    return any(ip in net and net.prefixlen >= 12 for net in map(ipaddress.ip_network, cidrs))


@lru_cache(maxsize=65536)
def _addressed(dst: str | None) -> bool:
    """A unicast destination (not ARP, broadcast or multicast)."""
    return dst is not None and not ipaddress.ip_address(dst).is_multicast and not dst.endswith(".255")  # ff02:: etc. are multicast


def _model(verdict: ModelVerdict) -> Model | None:
    return MODELS.get(verdict.name) or (MODELS.get(verdict.runner_up) if verdict.runner_up else None)


def _context(journeys: list[Journey], viewed: list[Journey], table: pl.DataFrame, verdict: ModelVerdict,
             inventory: Inventory | None, coarse: bool = False, pods: set[str] | None = None) -> _Context:
    """The context of labelling and comparing `journeys`, with the rows of the `viewed` ones only (their shapes':
    the only ones read); `pods`: their `_pods`, when known."""
    model = _model(verdict)
    view = row_view(table, viewed)
    return _Context(
        model=model,
        keys=view.key,
        src=view.src,
        dst=view.dst,
        tunnel=view.tunnel,
        pods=_pods(table, journeys, inventory) if pods is None else pods,
        inventory=inventory,
        coarse=coarse,
    )


def _pods(table: pl.DataFrame, journeys: list[Journey], inventory: Inventory | None) -> set[str]:
    return pod_addresses_of(table, journeys, list(MODELS.values()), inventory)


@dataclass
class _Group:
    """A journey's sightings on one node, and what labelling, covering and comparing each ask of them."""

    node: str
    idx: list[int]  # the sightings' indexes among the journey's hops
    hops: list[Hop]
    named: bool  # every sighting names its interface
    reflected: bool  # one of them is the packet sent back
    packet: _Packet | None = None  # `_packet` of the sightings, once asked


def _groups(journey: Journey, ctx: _Context) -> list[_Group]:
    """A journey's sightings grouped by node in order of first sighting."""
    order: dict[str, list[int]] = {}
    for i, hop in enumerate(journey.hops):
        order.setdefault(ctx.keys[hop.row], []).append(i)
    return [  # (most hops change nothing: not reflected, no call asked)
        _Group(node, idx, group, all(named_iface(h.iface) for h in group), any(h.changes and _reflected(h, ctx) for h in group))
        for node, idx in order.items() for group in ([journey.hops[i] for i in idx],)
    ]


def _reflected(hop: Hop, ctx: _Context) -> bool:
    """`reflected`, once per tuple of changes (hops with equal changes share one: materialise)."""
    found = ctx.reflects.get(id(hop.changes))
    if found is None:
        found = ctx.reflects[id(hop.changes)] = reflected(hop)
    return found


def _segments(model: Model) -> list[tuple[Path, tuple[Step, ...]]]:
    return [(path, steps) for path, steps, _ in segments(model)]


class _Packet(NamedTuple):
    """What segment fitting needs to know of the copies of one packet on one node (a tuple: made and hashed, as the
    fits' cache key, once per shape)."""

    src_pod: bool
    dst_pod: bool
    tunnelled: tuple[bool, ...]
    nat: bool


def _packet(group: _Group, ctx: _Context) -> _Packet:
    if group.packet is None:
        hops = group.hops
        group.packet = _Packet(
            src_pod=ctx.is_pod(ctx.src[hops[0].row]),
            dst_pod=ctx.is_pod(ctx.dst[hops[-1].row]),
            tunnelled=tuple(bool(ctx.tunnel[h.row]) for h in hops),
            nat=any(nat_changes(h) for h in hops[1:]),
        )
    return group.packet


def _fit(steps: tuple[Step, ...], packet: _Packet) -> float:
    """How well a segment's ends fit the packet (used to pick a segment for unnamed copies)."""
    score = 0.0
    if steps[-1].role is Role.HOST_VETH and steps[-1].direction == "Out":
        score += 2.0 if packet.dst_pod else -2.0
    if steps[0].role is Role.HOST_VETH and steps[0].direction == "In":
        score += 2.0 if packet.src_pod else -2.0
    score -= sum(1.0 for step, tunnelled in zip(steps, packet.tunnelled) if step.encapsulated != tunnelled)
    if packet.nat != any(s.nat for s in steps[1:]):
        score -= 1.5
    return score


def _positional(group: _Group, ctx: _Context, most: int) -> tuple[Step, ...] | None:
    """The expected segment the k unnamed copies are the first k steps of (the whole segment when k == most)."""
    if ctx.model is None:
        return None
    copies = len(group.hops)
    return _best_prefix(ctx.model.name, copies, max(most, copies), _packet(group, ctx))


@lru_cache(maxsize=4096)
def _best_prefix(model: str, copies: int, length: int, packet: _Packet) -> tuple[Step, ...] | None:
    fitting = [(steps[:copies], _fit(steps, packet)) for _, steps in _segments(MODELS[model]) if len(steps) == length]
    if not fitting:
        return None
    best = max(fitting, key=lambda f: f[1])
    return best[0] if best[1] > -1.0 else None


@dataclass(frozen=True)
class _Veth:
    """A pod veth's role where the shapes leave out the addresses its words name: worded hop by hop (`_veth_words`)."""

    iface: str | None
    direction: str | None


_Role = str | _Veth


def _step_text(step: Step, hop: Hop, ctx: _Context) -> _Role:
    """The role of an unnamed copy at `step` of the expected segment."""
    iface = "" if "X" in step.iface or step.role is Role.NIC else step.iface
    return _role_text(step.role, iface, step.direction, hop, ctx)


def _role_text(role: Role, iface: str | None, direction: str | None, hop: Hop, ctx: _Context) -> _Role:
    """The words for a role, once per distinct role, interface, direction and what else the words say: a pod veth's
    addresses, a NIC's envelope (the shapes' hops at a NIC, a bridge, a tunnel device say the same)."""
    if role is Role.HOST_VETH and ctx.coarse:
        return _Veth(iface, direction)
    row = hop.row
    key = (role, iface, direction, ctx.src[row], ctx.dst[row]) if role is Role.HOST_VETH else (role, iface, direction, bool(ctx.tunnel[row]))
    text = ctx.texts.get(key)
    if text is None:
        text = ctx.texts[key] = _words(role, iface, direction, bool(ctx.tunnel[row]), ctx.src[row], ctx.dst[row], ctx)
    return text


def _words(role: Role, iface: str | None, direction: str | None, encapsulated: bool, src: str | None, dst: str | None,
           ctx: _Context) -> str:
    if role is Role.HOST_VETH:
        return _veth_text(iface, direction, _addressed(dst), dst is not None, {"Out": dst, "In": src}.get(direction or ""), ctx)
    name = f" {iface}" if iface else ""
    way = f", {direction.lower()}" if direction else ""
    if role is Role.TUNNEL:
        kind = "VTEP" if ctx.model is not None and any(e.kind is Tunnel.VXLAN for e in ctx.model.encaps) else "tunnel device"
        state = {"In": " (decapsulated)", "Out": " (to be encapsulated)"}.get(direction or "", "")
        return f"{iface or 'tunnel'} {kind}{state}" if iface else f"tunnel device{state}"
    if role is Role.NIC:
        return f"node NIC{name}{way}{' (encapsulated)' if encapsulated else ''}"
    return f"{role.value}{name}{way}"


def _veth_text(iface: str | None, direction: str | None, addressed: bool, has_dst: bool, peer: str | None, ctx: _Context) -> str:
    """A pod veth's words: of its packet's destination, whether it has one and is unicast; of the pod's address (the
    destination going out to the pod, the source coming in), who it is."""
    name = f" {iface}" if iface else ""
    way = f", {direction.lower()}" if direction else ""
    if not addressed:
        return f"pod veth{name}{way} (flooded)" if has_dst else f"pod veth{name}{way}"
    if direction == "Out":
        return f"veth{name} to pod {ctx.who(peer)}"
    if direction == "In":
        return f"veth{name} from pod {ctx.who(peer)}"
    return f"pod veth{name}"


# a journey as labelling reads it: per hop its place (key, src, dst, tunnel), interface, direction, changes' identity
Signature = tuple[tuple[tuple[str, str | None, str | None, int], str | None, str | None, int], ...]


def _signature(journey: Journey, ctx: _Context) -> Signature:
    """Everything labelling and comparing read of a journey but its ids: the journeys of one conversation
    direction share it, so the work is done once per distinct signature, not once per journey."""
    keys, src, dst, tunnel = ctx.keys, ctx.src, ctx.dst, ctx.tunnel
    # changes by identity: materialising gives equal changes one shared tuple (no deep hashing)
    return tuple(((keys[h.row], src[h.row], dst[h.row], tunnel[h.row]), h.iface, h.direction, id(h.changes)) for h in journey.hops)


class _Hops(NamedTuple):
    """The journeys' hops as arrays, journey after journey: each journey's count, each hop's row and changes' identity."""

    lengths: np.ndarray
    rows: np.ndarray
    changes: np.ndarray


def _hops_of(journeys: list[Journey]) -> _Hops:
    made = hop_arrays(journeys)
    if made is not None:
        return _Hops(made.lengths, made.rows, made.changes)
    lengths = np.fromiter((len(j.hops) for j in journeys), dtype=np.int64, count=len(journeys))
    total = int(lengths.sum())
    rows = np.fromiter((h.row for j in journeys for h in j.hops), dtype=np.int64, count=total)
    changes = np.fromiter((id(h.changes) for j in journeys for h in j.hops), dtype=np.int64, count=total)
    return _Hops(lengths, rows, changes)


# the table's columns of a sighting's addresses
_ADDRESS_COLUMNS = ("src", "dst", "src6", "dst6")


def _texts(at: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """The sources and destinations of the sightings `at` (their `_ADDRESS_COLUMNS`) as text, as `row_view` writes them."""
    return (at.select(pl.coalesce(_ip4_texts(at["src"]), pl.col("src6"))).to_series(),
            at.select(pl.coalesce(_ip4_texts(at["dst"]), pl.col("dst6"))).to_series())


def _unicast_at(at: pl.DataFrame) -> np.ndarray:
    """`_addressed` of the destination of each of the sightings `at` (their `dst`, `dst6`, as `_texts` picks): an IPv4
    one from its number (no multicast, 224.0.0.0/4; not ending in .255), no text made; an IPv6 one by `_unicast_flags`."""
    dst = at.get_column("dst")
    ip4 = dst.is_not_null().to_numpy()
    number = dst.fill_null(0).to_numpy()
    flags: np.ndarray = ip4 & (number >> 28 != 0xE) & (number & 0xFF != 0xFF)
    ip6 = ~ip4 & at.get_column("dst6").is_not_null().to_numpy()
    if ip6.any():
        flags[ip6] = _unicast_flags(at.get_column("dst6").cast(pl.String).filter(pl.Series(ip6)))
    return flags


def _unicast_flags(dst: pl.Series) -> np.ndarray:
    """`_addressed` of each destination, once per distinct one."""
    distinct = dst.unique()
    flags = dst.replace_strict(distinct, [_addressed(d) for d in distinct.to_list()], return_dtype=pl.Boolean)
    found: np.ndarray = flags.fill_null(False).to_numpy()
    return found


# the table's columns a hop's shape reads besides its addresses (its place in `_signature`, its interface and direction)
_SHAPE_COLUMNS = ("node", "input", "tunnel", "iface", "direction")


def _shape_numbers(journeys: list[Journey], table: pl.DataFrame, hops: _Hops,
                   probe: _Context) -> tuple[np.ndarray, dict[_Pair, int]] | None:
    """Each journey's shape, numbered over the table's columns in order of first appearance, and the copies `_Coverage`
    counts. A hop's part of the shape is its sighting's columns that labelling and comparing read (raw: two places
    `_signature` reads alike may differ here; journeys of one signature may then be of several shapes, each labelled and
    compared alike) and its changes' identity; a journey's first hop's, whether its destination is unicast (`_unicast`);
    a hop's on a node where the journey's sightings do not all name their interface, what fitting and counting its
    copies read of their addresses (`_copies`), a pod veth's words being made hop by hop (`_veth_words`). `probe`: a
    context to ask `is_pod` of. None when a journey has no hops."""
    lengths = hops.lengths
    if not len(lengths) or not lengths.all():
        return None
    total = len(hops.rows)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    unicast = np.zeros(total, dtype=bool)
    unicast[starts] = _unicast_at(at_rows(columns_of(table, "dst", "dst6"), hops.rows[starts]))
    keyed = at_rows(columns_of(table, *_SHAPE_COLUMNS), hops.rows).with_columns(changes=pl.Series(hops.changes), unicast=pl.Series(unicast))
    unnamed = keyed["iface"].cast(pl.String).str.starts_with(IFINDEX_PREFIX).fill_null(True)
    copies: dict[_Pair, int] = {}
    if unnamed.any():
        fitted, copies = _copies(table, hops, unnamed, probe)
        keyed = keyed.with_columns(fitted)
    return _sequences_numbered(distinct_rows(keyed)[0], lengths, starts), copies


_WIDEST = 64  # hops of a journey at most for `_sequences_numbered` to take a column a hop


def _sequences_numbered(codes: np.ndarray, lengths: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each journey's sequence of hop codes (`lengths` of them from `starts`), numbered in order of first appearance:
    as a row of a column a hop (-1 after its last), its distinct rows numbered (no list a journey: 8.5 -> 4 ms for
    20,000)."""
    count, width = len(lengths), int(lengths.max())
    if width <= _WIDEST:
        columns = np.full((width, count), -1, dtype=np.int64)
        columns[np.arange(len(codes)) - np.repeat(starts, lengths), np.repeat(np.arange(count), lengths)] = codes
        return distinct_rows(pl.DataFrame({f"hop {n}": column for n, column in enumerate(columns)}))[0]
    sequences = pl.DataFrame({"journey": np.repeat(np.arange(count), lengths), "code": codes}).group_by(
        "journey", maintain_order=True).agg("code").select("code")
    return distinct_rows(sequences)[0]


_Pair = tuple[str, str | None, str | None]  # a node's key, a packet's source and destination there (`_Coverage.copies`)


def _copies(table: pl.DataFrame, hops: _Hops, unnamed: pl.Series, probe: _Context) -> tuple[pl.DataFrame, dict[_Pair, int]]:
    """Of each hop in a group of its journey's sightings on one node (`_groups`) that do not all name their interface:
    what fitting and counting the group's copies reads of their addresses, whether its first sighting's source and its
    last one's destination are pods (`_packet`) and the most copies of a packet between the two on the node
    (`_Coverage.most_copies`); false and -1 for the others. And those most copies, counted over every journey as
    `_covered` counts them over the shapes' (not a pass over each journey in Python: 3,991 shapes -> 163 at 2M pcap)."""
    at = at_rows(columns_of(table, "node", "input", *_ADDRESS_COLUMNS), hops.rows)
    # the addresses as their columns hold them, each IPv6 one where there is no IPv4 one (as `_texts` picks), written
    # as text once per distinct pair of ends
    frame = at.select(
        journey=pl.Series(np.repeat(np.arange(len(hops.lengths)), hops.lengths)),
        key=pl.coalesce(pl.col("node"), pl.lit("input ") + pl.col("input").cast(pl.Utf8)),
        **{f"{side}{v6}": pl.when(pl.col(side).is_null()).then(pl.col(f"{side}6")) if v6 else pl.col(side)
           for side in ("src", "dst") for v6 in ("", "6")},
        unnamed=unnamed,
    )
    ends = ["src", "src6", "dst", "dst6"]
    groups = frame.with_row_index("at").group_by("journey", "key").agg(
        "at", pl.col("src", "src6").first(), pl.col("dst", "dst6").last(), copies=pl.len(), unnamed=pl.col("unnamed").any()
    ).filter("unnamed")
    most = groups.group_by("key", *ends).agg(most=pl.col("copies").max())
    src, dst = _texts(most)
    texts = pl.concat([src, dst]).unique()
    pods = pl.Series([probe.is_pod(a) for a in texts.to_list()], dtype=pl.Boolean)
    most = most.with_columns(src_text=src, dst_text=dst, src_pod=src.replace_strict(texts, pods, default=False),
                             dst_pod=dst.replace_strict(texts, pods, default=False))
    groups = groups.join(most, on=["key", *ends], how="left", nulls_equal=True).select("at", "most", "src_pod", "dst_pod").explode("at")
    fitted = {"src_pod": np.zeros(len(frame), dtype=bool), "dst_pod": np.zeros(len(frame), dtype=bool),
              "most": np.full(len(frame), -1, dtype=np.int64)}
    places = groups.get_column("at").to_numpy()
    for name, values in fitted.items():
        values[places] = groups.get_column(name).to_numpy()
    return pl.DataFrame(fitted), dict(zip(most.select("key", "src_text", "dst_text").iter_rows(), most.get_column("most").to_list()))


@dataclass(frozen=True)
class _Shaped:
    """What labelling and comparing read of a list of journeys: the context, their hops, each journey's shape, the
    shapes' first journeys, their groups (`_groups`: labelling, covering and comparing each read them), the capture
    points they cover."""

    ctx: _Context
    hops: _Hops
    shape_of: np.ndarray
    shapes: list[Journey]
    groups: list[list[_Group]]
    coverage: _Coverage


# the last journeys shaped: `compare` asks for the journeys `label` shaped, labelled (their hops the same but
# for their roles, which neither reads)
_last: list[tuple[weakref.ref[pl.DataFrame], ModelVerdict, Inventory | None, tuple[int, ...], _Shaped]] = []


def _shaped(journeys: list[Journey], table: pl.DataFrame, verdict: ModelVerdict, inventory: Inventory | None) -> _Shaped:
    ids = tuple(map(attrgetter("id"), journeys))  # in one table, a journey's id says which sightings it holds
    for ref, seen_verdict, seen_inventory, seen_ids, shaped in _last:
        if ref() is table and seen_verdict is verdict and seen_inventory is inventory and seen_ids == ids:
            return shaped
    hops = _hops_of(journeys)
    probe = _Context(_model(verdict), {}, {}, {}, {}, _pods(table, journeys, inventory), inventory)
    numbered = _shape_numbers(journeys, table, hops, probe)
    if numbered is None:  # a journey without hops: numbered by signature, over every journey's rows
        ctx = _context(journeys, journeys, table, verdict, inventory)
        index: dict[Signature, int] = {}
        shape_of = np.array([index.setdefault(_signature(journey, ctx), len(index)) for journey in journeys], dtype=np.int64)
    else:
        shape_of = numbered[0]
    firsts = [journeys[i] for i in np.unique(shape_of, return_index=True)[1].tolist()]  # shapes number in order of first appearance
    if numbered is not None:
        ctx = _context(journeys, firsts, table, verdict, inventory, coarse=True, pods=probe.pods)
    groups = [_groups(journey, ctx) for journey in firsts]
    shaped = _Shaped(ctx, hops, shape_of, firsts, groups, _covered(groups, ctx, None if numbered is None else numbered[1]))
    _last[:] = [(weakref.ref(table), verdict, inventory, ids, shaped)]
    return shaped


def label(journeys: list[Journey], table: pl.DataFrame, verdict: ModelVerdict, inventory: Inventory | None = None) -> list[Journey]:
    """Every journey with a role on every hop: the journeys given, their hops' roles set (`set_roles`)."""
    shaped = _shaped(journeys, table, verdict, inventory)
    of_shapes = [_roles(journey, groups, shaped.ctx, shaped.coverage) for journey, groups in zip(shaped.shapes, shaped.groups)]
    roles = np.empty(sum(map(len, of_shapes)), dtype=object)
    roles[:] = [role for of_shape in of_shapes for role in of_shape]  # (`_Veth` is no sequence: numpy keeps it whole)
    lengths = shaped.hops.lengths
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    shape_starts = np.concatenate(([0], np.cumsum([len(r) for r in of_shapes])[:-1])).astype(np.int64)
    # each hop's role among its shape's: its shape's first, then its place in its journey
    at = np.repeat(shape_starts[shaped.shape_of] - starts, lengths) + np.arange(int(lengths.sum()))
    of_hops = roles[at]
    if shaped.ctx.coarse:  # each distinct veth numbered among the shapes' roles, not hashed hop by hop (97k at 2M pcap)
        kinds: dict[_Veth, int] = {}
        kind = np.fromiter((kinds.setdefault(r, len(kinds)) if isinstance(r, _Veth) else -1 for r in roles), dtype=np.int64,
                           count=len(roles))[at]
        veths = np.flatnonzero(kind >= 0)
        if len(veths):
            of_hops[veths] = _veth_words(list(kinds), kind[veths], at_rows(columns_of(table, *_ADDRESS_COLUMNS), shaped.hops.rows[veths]),
                                         shaped.ctx)
    set_roles(journeys, of_hops.tolist())
    return journeys


def _veth_words(veth_of: list[_Veth], kind: np.ndarray, at: pl.DataFrame, ctx: _Context) -> np.ndarray:
    """The words of pod veth hops (each hop's veth `veth_of[kind]`, their sightings' addresses `at`), once per distinct
    veth, kind of destination and pod: the pod's address as its columns hold it (an IPv4 number, or else an IPv6 one's
    code), written as text for each distinct one only."""
    going = np.array([[v.direction == "Out", v.direction == "In"] for v in veth_of], dtype=bool)[kind]
    addressed = pl.Series(_unicast_at(at))
    out, into = pl.Series(going[:, 0]), pl.Series(going[:, 1])

    def peer(kind: str) -> pl.Expr:  # the pod: the destination going out to it, the source coming in; flooded: none
        return pl.when(addressed & out).then(pl.col(f"dst{kind}")).when(addressed & into).then(pl.col(f"src{kind}"))

    frame = at.select(kind=pl.Series(kind), addressed=addressed, has_dst=pl.col("dst").is_not_null() | pl.col("dst6").is_not_null(),
                      peer=peer(""), peer6=peer("6"))
    frame = frame.with_columns(peer6=pl.when(pl.col("peer").is_null()).then(pl.col("peer6")))  # (as `_texts` picks)
    words, which = _once_per_distinct(frame, lambda row: _veth_text(
        veth_of[row["kind"]].iface, veth_of[row["kind"]].direction, row["addressed"], row["has_dst"],
        ip4_text(row["peer"]) if row["peer"] is not None else row["peer6"], ctx))
    spread: np.ndarray = np.empty(len(words), dtype=object)
    spread[:] = words
    gathered: np.ndarray = spread[which]
    return gathered


def _roles(journey: Journey, groups: list[_Group], ctx: _Context, coverage: _Coverage) -> list[_Role]:
    """The role of each hop of `journey` (its `groups`)."""
    out: list[_Role] = [""] * len(journey.hops)
    for g in groups:
        group = g.hops
        roles: list[_Role]
        if g.named:
            roles = [_named_role(h, ctx) for h in group]
        elif g.reflected:
            roles = ["packet sent back (source and destination swapped)" if reflected(h) else "capture point" for h in group]
        else:
            steps = _positional(g, ctx, coverage.most_copies(g.node, group, ctx)) if len(group) > 1 else None
            if steps is not None:
                roles = [_step_text(s, h, ctx) for s, h in zip(steps, group)]
            elif len(group) == 1:
                roles = ["single capture point"]
            else:
                roles = [f"capture point {n + 1} of {len(group)}" for n in range(len(group))]
        for i, role in zip(g.idx, roles):
            out[i] = role
    return out


def _named_role(hop: Hop, ctx: _Context) -> _Role:
    assert hop.iface is not None
    pattern = ctx.pattern(hop.iface)
    direction = "In" if hop.direction in INGRESS else ("Out" if hop.direction == "Out" else None)
    if pattern is None:
        way = f", {direction.lower()}" if direction else ""
        return f"interface {hop.iface}{way}"
    return _role_text(pattern.role, hop.iface, direction, hop, ctx)


# ---- expected vs observed ------------------------------------------------------------------------------


def _observed(hop: Hop, ctx: _Context) -> tuple[Role | None, str | None]:
    """The (role, direction) point a sighting shows, once per distinct interface and direction."""
    key = (hop.iface, hop.direction)
    found = ctx.observed.get(key)
    if found is None:
        pattern = ctx.pattern(hop.iface) if named_iface(hop.iface) else None
        direction = "In" if hop.direction in INGRESS else ("Out" if hop.direction == "Out" else None)
        found = ctx.observed[key] = ((pattern.role if pattern else None), direction)
    return found


def _embed(observed: Sequence[tuple[Role | None, str | None]], steps: tuple[Step, ...]) -> list[int] | None:
    """Positions of the observed (role, direction) pairs in `steps`, in order; None if they do not fit."""
    positions, start = [], 0
    for role, direction in observed:
        for i in range(start, len(steps)):
            if steps[i].role is role and (direction is None or steps[i].direction == direction):
                positions.append(i)
                start = i + 1
                break
        else:
            return None
    return positions


def compare(journeys: list[Journey], table: pl.DataFrame, verdict: ModelVerdict, inventory: Inventory | None = None) -> list[Mismatch]:
    """Missing or unexpected hops, journey by journey, against the model's expected paths."""
    if _model(verdict) is None or not journeys:
        return []
    shaped = _shaped(journeys, table, verdict, inventory)
    _last.clear()  # comparing comes after labelling: nothing asks again
    ctx, shape_of, shapes, coverage = shaped.ctx, shaped.shape_of, shaped.shapes, shaped.coverage
    verdicts = [_verdicts(journey, groups, coverage, ctx) for journey, groups in zip(shapes, shaped.groups)]
    found = np.flatnonzero(np.array([bool(v) for v in verdicts], dtype=bool)[shape_of])  # the journeys of shapes with some
    return [
        Mismatch(journey, node, tuple(journey.hops[i] for i in idx), *verdict)
        for at in found.tolist()
        for journey in (journeys[at],)
        for node, idx, verdict in verdicts[shape_of[at]]
    ]


def _verdicts(journey: Journey, groups: list[_Group], coverage: _Coverage, ctx: _Context) -> list[tuple[str, list[int], _Verdict]]:
    """What comparing `journey` with the model finds, per node, as the fields of a Mismatch for any journey of its signature."""
    if not _unicast(journey, ctx):
        return []  # flooded frames (ARP, broadcast, multicast) take every port: no expected path
    out: list[tuple[str, list[int], _Verdict]] = []
    for g in groups:
        if len(g.hops) < 2 or g.reflected:
            continue
        verdict = _compare_named(g.node, g.hops, coverage, ctx) if g.named else _compare_unnamed(g, coverage, ctx)
        if verdict is not None:
            out.append((g.node, g.idx, verdict))
    return out


def _unicast(journey: Journey, ctx: _Context) -> bool:
    first = journey.hops[0].row
    dst = ctx.dst[first]
    return _addressed(dst) and not any(h.direction in ("B", "M") for h in journey.hops)


@dataclass
class _Coverage:
    """Per node, the (role, direction) points the capture names; per (node, source, destination), the most
    copies of one packet the capture shows where it names no interfaces."""

    points: dict[str, set[tuple[Role | None, str | None]]]
    copies: dict[_Pair, int]

    def most_copies(self, node: str, group: list[Hop], ctx: _Context) -> int:
        """The most copies this capture shows on `node` of any packet between the same two addresses."""
        return self.copies.get((node, ctx.src[group[0].row], ctx.dst[group[-1].row]), len(group))


def _covered(groups: list[list[_Group]], ctx: _Context, copies: dict[_Pair, int] | None = None) -> _Coverage:
    """The points the shapes' groups name, and the copies their other groups show; `copies`: those counted already
    (over every journey: `_copies`), if so."""
    coverage = _Coverage({}, {} if copies is None else copies)
    for of_journey in groups:
        for g in of_journey:
            group, node = g.hops, g.node
            points = coverage.points.setdefault(node, set())
            if g.named:
                points.update(_observed(h, ctx) for h in group)
            elif copies is None:
                pair = (node, ctx.src[group[0].row], ctx.dst[group[-1].row])
                coverage.copies[pair] = max(coverage.copies.get(pair, 0), len(group))
    return coverage


def _expected(step: Step) -> str:
    name = "" if "X" in step.iface or step.role is Role.NIC else f" {step.iface}"
    return f"{step.role.value}{name}, {step.direction.lower()}"


def _compare_named(node: str, group: list[Hop], coverage: _Coverage, ctx: _Context) -> _Verdict | None:
    """`_compared`, once per node and sequence of points (the shapes of many conversations share them)."""
    observed = tuple(_observed(h, ctx) for h in group)
    key = (node, observed)
    if key not in ctx.compared:
        ctx.compared[key] = _compared(node, observed, coverage, ctx)
    return ctx.compared[key]


def _compared(node: str, observed: tuple[tuple[Role | None, str | None], ...], coverage: _Coverage, ctx: _Context) -> _Verdict | None:
    assert ctx.model is not None
    model = ctx.model
    if any(role is None for role, _ in observed):
        return None
    fits = [(path, steps, pos) for path, steps in _segments(model) if (pos := _embed(observed, steps)) is not None]
    if not fits:
        return (None, "", model.name, None)
    # the tightest explanation: the segment that leaves the fewest expected steps after the last sighting
    path, steps, pos = min(fits, key=lambda f: len(f[1]) - f[2][-1])
    missing = [s for s in steps[pos[-1] + 1:] if not s.optional and (s.role, s.direction) in coverage.points.get(node, set())]
    if not missing:
        return None
    return (_expected(missing[0]), path.traffic.value, model.name, None)


def _compare_unnamed(group: _Group, coverage: _Coverage, ctx: _Context) -> _Verdict | None:
    assert ctx.model is not None
    copies = len(group.hops)
    most = coverage.most_copies(group.node, group.hops, ctx)
    if most <= copies:
        return None
    return _missing_copy(ctx.model.name, most, copies, _packet(group, ctx))


@lru_cache(maxsize=4096)
def _missing_copy(model: str, most: int, copies: int, packet: _Packet) -> _Verdict | None:
    """The step after the `copies` a packet showed of the first segment of `most` steps that fits it."""
    fitting = [(path, steps) for path, steps in _segments(MODELS[model]) if len(steps) == most and _fit(steps, packet) > -1.0]
    if not fitting:
        return None
    path, steps = fitting[0]
    return (_expected(steps[copies]), path.traffic.value, model, (most, copies))
