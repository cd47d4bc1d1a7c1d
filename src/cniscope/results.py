"""The closed set of result types: hop, journey, flow, finding, model verdict, report.

Correlation (journeys, flows), explanation (models, findings) produce these;
every renderer (text, JSON, HTML, pcapng) consumes them and recomputes nothing.
They refer to sightings by their row number in the packet table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import numpy as np
import polars as pl

from cniscope.errors import ReadWarning
from cniscope.packets.schema import Clock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from cniscope.inventory import Inventory
    from cniscope.packets.frames import FrameBatch


class ChangeKind(StrEnum):
    TTL = "ttl"  # routed: TTL decremented
    MAC = "mac"  # link-layer addresses changed (routed or bridged to another segment)
    DNAT = "dnat"  # destination address/port rewritten
    SNAT = "snat"  # source address/port rewritten (masquerade)
    ENCAP = "encap"  # wrapped in a tunnel envelope
    DECAP = "decap"  # unwrapped
    FRAGMENT = "fragment"
    SWAP = "swap"  # source and destination exchanged: the same packet sent back (a firewall in the path, a hairpin)


@dataclass(frozen=True, slots=True)  # as Hop (the JSON writer reads its slots: 52,717 changes of 73k hops at 2M)
class Change:
    kind: ChangeKind
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.before} -> {self.after}"


class HopDirection(StrEnum):
    """Which way a sighting went through its interface, as tcpdump prints it (packets.schema.Direction's labels)."""

    IN = "In"
    OUT = "Out"
    BROADCAST = "B"
    MULTICAST = "M"
    OTHERHOST = "P"  # to another host (promiscuous capture)


@dataclass(frozen=True, slots=True)  # no dict an instance: 240 -> 129 B a hop (73k in a report: 2,000 fresh pages fewer)
class Hop:
    row: int  # row of the sighting in the packet table
    node: str | None
    iface: str | None
    direction: HopDirection | None  # None when the capture does not say (pcap without -i any)
    ts: int | None  # ns, clock-corrected (see Report.clocks)
    delay_ns: int | None  # since the previous hop of the journey; None for the first
    # (the fields in the order of the JSON report's keys: `--json` writes the objects as they are)
    point: str = ""  # capture point label: "node3 eth0 In", or "point 2" when unnamed
    role: str | None = None  # from the network model: "node NIC", "pod bridge", "pod veth" ...
    changes: tuple[Change, ...] = ()  # what changed since the previous hop
    mac_to: str | None = None  # leaving a NIC: the destination MAC it was sent to (where the link type keeps it)
    mac_owner: str | None = None  # who owns mac_to, as the capture shows: a node, or the address ARP gives it

    def sent_to(self, mac: str, owner: str | None) -> Hop:
        """This hop with the MAC it was sent to and its owner (a copy: the frozen dataclass's per-field checks skipped)."""
        return make_hop(self.row, self.node, self.iface, self.direction, self.ts, self.delay_ns, self.point, self.role,
                        self.changes, mac, owner)

    def sent_to_text(self) -> str:
        """`sent to 52:54:00:00:00:0d (node3)`, or "" when the sighting shows no frame leaving a NIC."""
        if self.mac_to is None:
            return ""
        return f"sent to {self.mac_to} ({self.mac_owner or 'no captured node nor ARP owns it'})"


@dataclass(frozen=True, slots=True)  # as Hop: no dict a journey (20,000 in a report)
class Journey:
    """One packet followed through every place it was seen."""

    id: int
    flow: int | None
    summary: str  # "TCP 192.168.200.21:56888 > 10.244.3.10:80 [S] seq 779547779"
    retransmission_of: int | None  # journey id of the original when this is a re-send
    hops: tuple[Hop, ...]  # last, as in the JSON report (`--json` writes the objects as they are)


@dataclass(frozen=True, slots=True)  # no dict an end (40,000 of them at 20,000 conversations)
class Endpoint:
    addr: str
    port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return self.addr
        return f"[{self.addr}]:{self.port}" if ":" in self.addr else f"{self.addr}:{self.port}"


class Proto(StrEnum):
    """What a conversation carries."""

    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ICMP6 = "icmp6"
    ARP = "arp"
    OTHER = "other"


class FlowState(StrEnum):
    """Where a conversation stands at the end of the capture."""

    # TCP
    ESTABLISHED = "established"  # handshake seen (or its SYN and more than the SYN-ACK)
    HANDSHAKE_INCOMPLETE = "handshake incomplete"  # SYN and SYN-ACK, no more
    UNANSWERED = "unanswered"  # a SYN without SYN-ACK; for requests: none answered
    RESET = "reset"
    CLOSED = "closed"  # both FINs
    MID_STREAM = "mid-stream"  # no SYN seen: the capture began inside the conversation
    # DNS queries and ICMP echo requests
    ANSWERED = "answered"
    PARTLY_ANSWERED = "partly answered"
    ANSWERS_ONLY = "answers only"
    # the rest
    ERROR = "error"  # ICMP unreachable
    SEEN = "seen"


@dataclass(frozen=True, slots=True)  # as Hop: no dict a conversation (20,000 made: 7.6 -> 1.9 ms, and their memory)
class Flow:
    """A conversation: both directions, every leg before and after NAT."""

    id: int
    key: str  # direction-free flow id, stable across runs
    proto: Proto
    client: Endpoint
    server: Endpoint
    legs: tuple[tuple[Endpoint, Endpoint], ...]  # (client side, server side) as seen at each NAT stage
    journeys: tuple[int, ...]
    packets: int
    bytes: int  # payload bytes, counted once per journey
    first_ts: int | None
    last_ts: int | None
    state: FlowState
    handshake: dict[str, int | None] = field(default_factory=dict)  # "syn_synack_ns", "synack_ack_ns" ...
    retransmissions: int = 0
    out_of_order: int = 0
    zero_windows: int = 0
    resets: tuple[int, ...] = ()  # journey ids of RST packets
    notes: tuple[str, ...] = ()


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)


class FindingKind(StrEnum):
    DROP = "drop"
    UNANSWERED = "unanswered"
    RETRANSMISSION = "retransmission"
    RESET = "reset"
    NAT = "nat"
    TUNNEL = "tunnel"
    MTU = "mtu"
    CHECKSUM_OFFLOAD = "checksum_offload"
    ASYMMETRIC_PATH = "asymmetric_path"
    CLOCK_SKEW = "clock_skew"
    DEVIATION = "deviation"
    MISSING_SNAT = "missing_snat"
    MISSING_REVERSE_NAT = "missing_reverse_nat"
    ROUTE = "route"


@dataclass(frozen=True)
class Evidence:
    """What a finding states, typed: renderers and tests read these, never the sentences (unset: does not apply)."""

    packets: int | None = None  # packets the finding is about, counted as their conversation counts them
    sent: int | None = None  # of them: captured on the node that sent them
    received: int | None = None  # of them: captured after they arrived from another node
    retries: int | None = None  # re-sends among them
    size: int | None = None  # bytes of an IP packet: the one too big, the smallest that vanished
    passed: int | None = None  # bytes: the largest that passed the same place
    mtu: int | None = None  # the MTU that limits them
    overhead: int | None = None  # bytes a tunnel's envelope adds
    mss: int | None = None  # TCP MSS announced
    device: str | None = None  # the interface the finding is about (a tunnel device, a NIC)
    interfaces: tuple[str, ...] = ()  # places involved, "node iface [direction]"
    addresses: tuple[str, ...] = ()  # addresses involved, the most relevant first
    mac: str | None = None  # destination MAC the packet was sent to
    mac_owner: str | None = None  # who owns that MAC (a node, a gateway), when the capture shows it
    gaps_ms: tuple[int, ...] = ()  # between a packet and each re-send (the retransmission timeout pattern)
    offset_ns: int | None = None  # a clock offset
    peer: str | None = None  # the node a lost packet was on its way to
    rewrite: str | None = None  # the translation: "dnat", "snat"
    notes: tuple[str, ...] = ()  # the caveats the explanation adds, as catalogue keys ("envelopes_filtered", "one_way" ...)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    severity: Severity
    title: str  # one line
    explanation: str  # plain words: what the packets show
    next_step: str  # what to check next
    key: str = ""  # the case of its kind, as the catalogue names it ("drop.hairpin", "reset.refused"): what tools match on
    node: str | None = None
    iface: str | None = None
    journeys: tuple[int, ...] = ()
    flows: tuple[int, ...] = ()
    rows: tuple[int, ...] = ()  # the sightings that prove it
    evidence: Evidence = field(default_factory=Evidence)

    def __post_init__(self) -> None:
        # one rule for every finding, wherever its packets are listed: in numeric order, each once. Journeys are
        # numbered by their first sighting in the packet table, so this is the order they were first seen; the order
        # a check met them in (a tunnel's envelopes, a NAT's requests then its replies) read as a mistake: "30, 34, 33"
        object.__setattr__(self, "journeys", tuple(sorted(set(self.journeys))))


@dataclass(frozen=True)
class ModelVerdict:
    name: str  # one of cniscope.models.NAMES or "unknown"
    confidence: float  # 0..1
    evidence: tuple[str, ...] = ()
    runner_up: str | None = None
    candidates: tuple[tuple[str, float], ...] = ()
    service_proxy: str | None = None
    forced: bool = False


@dataclass(frozen=True)
class NodeClock:
    node: str
    offset_ns: int  # subtracted from this node's timestamps to align with the reference node
    uncertainty_ns: int
    samples: int
    reference: str
    method: str  # "two-way" (NTP-style), "one-way" (offset plus an unknown delay), "sender-clock"


@dataclass(frozen=True)
class Selection:
    """What `--filter` / `--flow` kept, and what the whole capture held (the report's counts are of the kept part)."""

    text: str  # the filter as given, or "conversation 12"
    sightings: int  # in the whole capture
    journeys: int
    flows: int


@dataclass(frozen=True)
class Point:
    """A capture point (node, interface) and how many sightings it gave."""

    node: str | None
    iface: str | None
    sightings: int


class InputHandle(Protocol):
    """The inputs a report was read from, opened again on demand (`cniscope.ingest.Reopen`): renderers that copy
    frames (`--pcapng`) read through it, never from files themselves."""

    def frames(self, index: int) -> Iterator[FrameBatch]: ...


@dataclass(frozen=True)
class InputSummary:
    """What reading found of one input, as the report tells it (the readers' InputInfo, frozen)."""

    index: int
    name: str
    format: str  # pcap | pcapng | text | unknown
    node: str | None
    clock: Clock
    packets: int
    unparsed_lines: int = 0
    damaged: bool = False
    warnings: tuple[ReadWarning, ...] = ()
    skipped: bool = False  # an entry of a directory that could not be opened (warned about; the rest was read)

    @property
    def unusable(self) -> bool:
        """An input the user named from which nothing could be read: not a capture, empty, missing."""
        return self.packets == 0 and self.damaged and not self.skipped


@dataclass
class Report:
    """What renderers render. `journeys` and `flows` hold the first ones (materialised); the totals count all."""

    inputs: list[InputSummary]
    table: pl.DataFrame  # the packet table (with corrected timestamps in column "ts")
    journeys: list[Journey]
    flows: list[Flow]
    findings: list[Finding]
    model: ModelVerdict
    clocks: list[NodeClock] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inventory: Inventory | None = None
    journeys_total: int = 0
    flows_total: int = 0
    points: list[Point] = field(default_factory=list)
    selection: Selection | None = None
    source: InputHandle | None = None  # None: the inputs cannot be read again (a report built in memory)

    def problem_flows(self) -> list[tuple[int, list[Finding]]]:
        """Conversations cited by a warning or an error, worst first (severity, then number of findings, then id)."""
        flow_of = {j.id: j.flow for j in self.journeys}
        cited: dict[int, list[Finding]] = {}
        for finding in self.findings:
            if finding.severity is Severity.INFO:
                continue
            flows = set(finding.flows) | {f for j in finding.journeys if (f := flow_of.get(j)) is not None}
            for flow in flows:
                cited.setdefault(flow, []).append(finding)
        return sorted(cited.items(), key=lambda item: (-max(f.severity.rank for f in item[1]), -len(item[1]), item[0]))

    def aligned(self) -> dict[str, int]:
        """Nodes whose clock was aligned, with the uncertainty (ns) against the reference node (0 for it)."""
        return {c.reference: 0 for c in self.clocks} | {c.node: c.uncertainty_ns for c in self.clocks}


def set_roles(journeys: Sequence[Journey], roles: list[str]) -> None:
    """Give each hop of `journeys` its role (`roles`: hop after hop, journey after journey), in place: labelling fills in
    the field materialising left unset (the hops are the journeys' own; a copy of every hop and journey, the originals
    thrown away, took 0.06 s at 20,000 journeys). In C where it was built (`_journeys.put_field`)."""
    groups = [journey.hops for journey in journeys]
    if _put_field is not None:
        _put_field(groups, "role", roles)
        return
    for hop, role in zip(chain.from_iterable(groups), roles, strict=True):
        object.__setattr__(hop, "role", role)


_Made = TypeVar("_Made", "Hop", "Journey", "Flow", "Endpoint")


def made(cls: type[_Made], *values: object) -> _Made:
    """What `cls(*values)` makes, given every field in order: a frozen dataclass's __init__ sets each field by its own
    checked call, most of the time of making the tens of thousands of hops and journeys of a report (`maker`)."""
    make: Callable[..., _Made] = _MAKERS[cls]
    return make(*values)


def maker(cls: type) -> Callable[..., Any]:
    """A function of every field of `cls` (a frozen dataclass of slots) in order that makes the instance: each field
    put in its slot, without __init__'s checked call per field (`made`) nor a loop over the names."""
    names = [f.name for f in fields(cls)]
    source = (f"def make({', '.join(names)}):\n    made = new(cls)\n" + "".join(f"    put(made, {name!r}, {name})\n" for name in names)
              + "    return made\n")
    namespace: dict[str, object] = {"new": object.__new__, "cls": cls, "put": object.__setattr__}
    exec(source, namespace)  # as dataclasses makes __init__
    make = namespace["make"]
    assert callable(make)
    return make


_MAKERS: dict[type, Callable[..., Any]] = {cls: maker(cls) for cls in (Hop, Journey, Flow, Endpoint)}
make_hop: Callable[..., Hop] = _MAKERS[Hop]  # `made` without looking the class up: for the loops that make thousands
make_flow: Callable[..., Flow] = _MAKERS[Flow]
make_endpoint: Callable[[str, int | None], Endpoint] = _MAKERS[Endpoint]


def made_many(cls: type[_Made], columns: Sequence[object], count: int) -> list[_Made]:
    """`count` instances `made` of `cls`: `columns` holds each field's values in order, a list or a numpy array of
    objects or of int64 (one value each), or one value for all (neither). In C where it was built (73,468 hops: 0.043
    -> 0.026 s; the arrays read in place, no list made of each), else as `maker`'s function makes each."""
    if _make_objects is not None:
        return cast(list[_Made], _make_objects(cls, _NAMES[cls], tuple(columns), count))
    make = _MAKERS[cls]
    return [make(*values) for values in zip(*(c if isinstance(c, list) else c.tolist() if isinstance(c, np.ndarray)
                                              else repeat(c, count) for c in columns))]


_NAMES: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in _MAKERS}
_make_objects: Callable[[type, tuple[str, ...], tuple[object, ...], int], list[object]] | None
try:
    from cniscope._journeys import make_objects as _make_objects
except ImportError:  # built without a C compiler, or before it had the function
    _make_objects = None
_put_field: Callable[[list[Any], str, list[Any]], None] | None
try:
    from cniscope._journeys import put_field as _put_field
except ImportError:  # built without a C compiler, or before it had the function
    _put_field = None
