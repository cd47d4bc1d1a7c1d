"""What every detector reads: the report's parts plus the facts derived from them once.

Derived facts, all learned from the packets (the inventory, when given, adds to them):

- *coverage*: which interfaces each node's capture saw. A `-i any` capture
  (Linux cooked link type, or tcpdump text naming interfaces) saw all of
  them; a capture on one interface saw only that one. A detector may claim
  that a packet is missing at a place only when the place was covered, and
  only while that node was capturing.
- *local addresses*: the addresses a node sends from itself. With `-i any`,
  a forwarded packet is seen coming in before it goes out, while one the
  node originates is first seen going out of a device that is not a pod's
  veth. Its source address belongs to the node (node IP, bridge gateway),
  as does the sender address of the ARP requests and replies it sends.
- *whose address*: pod addresses are those seen on a node's pod veths.
- *roles*: what each interface is for, from the inferred model's patterns,
  else from any model's (the names are distinctive), else from the names
  every node has.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, cast

import numpy as np
import polars as pl

from cniscope import next_hops
from cniscope.findings.catalogue import note
from cniscope.journeys import at_rows, capture_points, columns_of, hop_arrays, node_column, point_label
from cniscope.models import MODELS, Model, Role, role_anywhere
from cniscope.models.evidence import interface_sightings
from cniscope.packets.schema import DIRECTION_LABELS, Direction, LinkType, ip4_expr, ip4_text
from cniscope.results import Endpoint, Flow, Hop, Journey, ModelVerdict, NodeClock

if TYPE_CHECKING:  # (imported with --cluster or an inventory beside the capture)
    from cniscope.inventory import Inventory

ANY_LINKTYPES = (int(LinkType.LINUX_SLL), int(LinkType.LINUX_SLL2))
NEAR_AFTER = 2048  # reads of a column before its values at every materialised sighting are listed (`Facts._get`)
TWO_WAY_PROBE = 1 << 13  # sightings from a window's start searched for two-way traffic before all of the input's
T = TypeVar("T")
Side = Literal["left", "right"]


def group_address(dst: int | None) -> bool:
    """IPv4 multicast (224.0.0.0/4) or the limited broadcast."""
    return dst is not None and (dst >> 28 == 0xE or dst == 0xFFFFFFFF)


class _SortedTimes:
    """A sorted column of times searched by numpy over its chunks as they are (zero-copy): polars' own search_sorted
    costs about 0.1 ms a call, and an unanswered request asks once per request (20,000 in a report)."""

    def __init__(self, times: pl.Series) -> None:
        self._chunks = [chunk.to_numpy() for chunk in times.get_chunks() if len(chunk)]
        self._lasts = np.array([chunk[-1] for chunk in self._chunks], dtype=np.int64)
        self._starts: np.ndarray | None = None  # each chunk's first position, made on first use

    def any_between(self, lo: int, hi: int) -> bool:
        at = int(np.searchsorted(self._lasts, lo, side="left"))  # the first chunk that reaches lo
        if at == len(self._chunks):
            return False
        chunk = self._chunks[at]
        return bool(chunk[int(np.searchsorted(chunk, lo, side="left"))] <= hi)

    def position(self, value: int, side: Side) -> int:
        """Where `value` goes among all the times (numpy's searchsorted over the chunks as one)."""
        if not self._chunks:
            return 0
        if self._starts is None:
            self._starts = np.cumsum([0] + [len(chunk) for chunk in self._chunks[:-1]])
        at = int(np.searchsorted(self._lasts, value, side=side))  # the first chunk whose last time is past it
        if at == len(self._chunks):
            return int(self._starts[-1]) + len(self._chunks[-1])
        return int(self._starts[at]) + int(np.searchsorted(self._chunks[at], value, side=side))


@dataclass(frozen=True)
class Coverage:
    """Where and when one node's capture was looking."""

    every_iface: bool  # -i any
    ifaces: frozenset[str]  # named interfaces that showed packets
    start: int | None  # ns, corrected clock
    end: int | None

    def started(self, ts: int | None) -> bool:
        return ts is not None and self.start is not None and self.start <= ts

    def running(self, ts: int | None, margin_ns: int) -> bool:
        """Capturing at `ts` and still `margin_ns` later."""
        if ts is None or self.start is None or self.end is None:
            return False
        return self.start <= ts and ts + margin_ns <= self.end


@dataclass(frozen=True)
class Early:
    """Table-wide work that needs the packet table alone (`work(table)`), started on another thread as soon as the
    table is final (`start`): the report's Python stages (materialising, conversations, inference, labelling) hold
    the GIL meanwhile, and polars and numpy release it. Its results are for that table only."""

    table: pl.DataFrame
    work: dict[Callable[[pl.DataFrame], Any], Future[Any]]

    def result(self, compute: Callable[[pl.DataFrame], T], table: pl.DataFrame) -> T:
        """`compute(table)`: as started, when it was started on this very table; else computed now, also when its thread
        has not come to it yet (taken from its queue: not waited for behind the work before it)."""
        future = self.work.get(compute) if table is self.table else None
        if future is None or future.cancel():
            return compute(table)
        return cast(T, future.result())


def start(table: pl.DataFrame, work: Iterable[Callable[[pl.DataFrame], Any]],
          known: Mapping[Callable[[pl.DataFrame], Any], Any] | None = None) -> Early:
    """`work` on `table`, one after the other on a thread of its own (which ends when it is done); `known`: the results
    of some of it already made elsewhere (their computation is not started)."""
    done: dict[Callable[[pl.DataFrame], Any], Future[Any]] = {}
    for compute, value in (known or {}).items():
        done[compute] = Future()
        done[compute].set_result(value)
    pool = ThreadPoolExecutor(1, thread_name_prefix="facts")
    try:
        return Early(table, {**done, **{compute: pool.submit(compute, table) for compute in work if compute not in done}})
    finally:
        pool.shutdown(wait=False)


@dataclass(frozen=True)
class Facts:
    """What every detector reads, computed once; detectors never change it (indexes are built on first use)."""

    table: pl.DataFrame  # in row order
    journeys: tuple[Journey, ...]
    flows: tuple[Flow, ...]
    verdict: ModelVerdict
    clocks: tuple[NodeClock, ...]
    inventory: Inventory | None
    by_id: dict[int, Journey]
    flow_by_id: dict[int, Flow]
    model: Model | None
    node_names: tuple[str, ...]
    node_codes: np.ndarray  # row -> index into node_names
    coverage: dict[str, Coverage]
    local: dict[str, frozenset[str]]  # node -> its own addresses
    pods_on: dict[str, frozenset[str]]  # node -> addresses of its pods
    _columns: dict[str, pl.Series] = field(default_factory=dict, repr=False, compare=False)
    _checked: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)  # columns whose type an accessor checked
    _roles: dict[str | None, Role | None] = field(default_factory=dict, repr=False, compare=False)
    _near: dict[tuple[str, str | None], list[Any]] = field(default_factory=dict, repr=False, compare=False)  # (column, kind) -> values at _near_rows
    _reads: dict[tuple[str, str | None], int] = field(default_factory=dict, repr=False, compare=False)  # (column, kind) -> reads before `_near`
    _paths: dict[int, tuple[Hop, ...]] = field(default_factory=dict, repr=False, compare=False)  # journey id -> path
    _partner_rows: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)  # input -> `_partners` of `_pairs`
    _two_way_until: dict[tuple[int, int], int] = field(default_factory=dict, repr=False, compare=False)  # `_two_way_in_table`'s
    early: Early | None = field(default=None, repr=False, compare=False)
    hops_ahead: Future[HopTable] | None = field(default=None, repr=False, compare=False)  # `gather_hops`, started

    def ahead(self, compute: Callable[[pl.DataFrame], T]) -> T:
        """`compute(self.table)`, started before the facts were built when it was (`Early`)."""
        return self.early.result(compute, self.table) if self.early is not None else compute(self.table)

    # ---- per sighting ---------------------------------------------------------------------------
    # Detectors read the materialised journeys' sightings hop by hop: a value is read from its column (half a
    # microsecond), and once a column has been read `NEAR_AFTER` times, those rows' values from the table at once,
    # into a Python list (`_near`: 3-10 ms a column at 20,000 journeys, and 14 for the rows' places, which 500 reads
    # of a report of the 2M reference capture never made worth it).

    def node(self, hop: Hop | int) -> str:
        """The node a sighting (a hop, or a table row) belongs to (`input N` when the input names none)."""
        if isinstance(hop, int):
            row = hop
        elif hop.node is not None:  # the table's node column, which names the node when the input does
            return hop.node
        else:
            row = hop.row
        return self.node_names[int(self.node_codes[row])]

    def path(self, j: Journey) -> tuple[Hop, ...]:
        """The journey's hops in path order: nodes that received it from the wire after the nodes that sent it.

        Clock offsets estimated from one-way traffic can leave a receiving node's first sighting a hair before
        the sender's last one; the order of nodes follows from the direction of the NIC sightings instead.
        """
        if self.by_id.get(j.id) is j:
            found = self._paths.get(j.id)
            if found is None:
                found = self._paths[j.id] = self._path(j)
            return found
        return self._path(j)

    def _path(self, j: Journey) -> tuple[Hop, ...]:
        if len(self.node_names) < 2:  # one node (one capture file, most often): its hops in their order
            return j.hops
        per_node: dict[str, list[Hop]] = {}
        for hop in j.hops:
            per_node.setdefault(self.node(hop), []).append(hop)
        if len(per_node) < 2:
            return j.hops
        nodes = list(per_node)

        def received(node: str) -> bool:
            first = per_node[node][0]
            return first.direction in ("In", "P") and self.role(first.iface) in (Role.NIC, Role.TUNNEL)

        order = [n for n in nodes if not received(n)] + [n for n in nodes if received(n)]
        return tuple(h for n in order for h in per_node[n])

    def value(self, hop: Hop | int, column: str) -> object:
        """One column of a sighting (no per-row Python objects for the whole table)."""
        return self._get(hop if isinstance(hop, int) else hop.row, column, None)

    def number(self, hop: Hop | int, column: str) -> int | None:
        """An integer column of a sighting (addresses, ports, flags, ids, journey and hop numbers)."""
        found: int | None = self._get(hop if isinstance(hop, int) else hop.row, column, "integer")
        return found

    def text(self, hop: Hop | int, column: str) -> str | None:
        """A text column of a sighting (node, iface, IPv6 addresses, names)."""
        found: str | None = self._get(hop if isinstance(hop, int) else hop.row, column, "text")
        return found

    def flag(self, hop: Hop | int, column: str) -> bool | None:
        """A boolean column of a sighting (dns_qr, df, mf, checksum verdicts)."""
        found: bool | None = self._get(hop if isinstance(hop, int) else hop.row, column, "flag")
        return found

    def _get(self, row: int, column: str, kind: str | None) -> Any:
        near = self._near.get((column, kind))  # the column's type checked when it was listed
        if near is not None and (at := self._at.get(row)) is not None:
            return near[at]
        series = self._column(column, kind)
        if near is None:
            reads = self._reads[(column, kind)] = self._reads.get((column, kind), 0) + 1
            if reads == NEAR_AFTER:
                self._near[(column, kind)] = series.gather(self._near_rows).to_list()
        return series[row]

    def _column(self, column: str, kind: str | None) -> pl.Series:
        """The column, its type checked once against what the accessor returns (`kind`; None: any)."""
        series = self._columns.get(column)
        if series is None:
            series = self._columns[column] = self.table[column]
        if kind is not None and (column, kind) not in self._checked:
            dtype = series.dtype
            if not {"integer": dtype.is_integer(), "text": dtype in (pl.String, pl.Categorical), "flag": dtype == pl.Boolean}[kind]:
                raise TypeError(f"column {column} is {dtype}, not {kind}")
            self._checked.add((column, kind))
        return series

    @cached_property
    def _near_rows(self) -> pl.Series:
        """The rows of the materialised journeys' sightings, ascending."""
        return self.hops.get_column("row").cast(pl.UInt32).unique().sort()  # (numpy's unique hashes, slowly)

    @cached_property
    def _at(self) -> dict[int, int]:
        """Row -> its place in `_near_rows`."""
        return {row: at for at, row in enumerate(self._near_rows.to_list())}

    def journey_of(self, row: int) -> Journey | None:
        """The journey a sighting belongs to, when the report materialised it."""
        jid = self.number(row, "journey")
        return self.by_id.get(jid) if jid is not None else None

    def addr(self, hop: Hop | int, column: str) -> str | None:
        """`src`, `dst`, `outer_src`, `outer_dst` ... of a sighting as text (IPv6 columns for IPv6; the host name
        tcpdump printed instead, text without -n)."""
        value = self.number(hop, column)
        if value is None and column in ("src", "dst", "outer_src", "outer_dst"):
            return self.text(hop, column + "6") or self.text(hop, column + "_name")
        return ip4_text(value)

    # ---- the materialised journeys' hops as columns --------------------------------------------------------------
    # Detectors that would look at every hop ask polars first which hops can matter, and walk those only.

    @cached_property
    def hops(self) -> pl.DataFrame:
        """One row a hop of the materialised journeys, in their order and each journey's hops in theirs: `journey`
        (its place in `journeys`), `hop` (its place in the journey's hops), `row`, `node` (its code in `node_names`),
        `role` (`ROLE_CODES` of its interface's role), `iface` (its interface)."""
        lengths, rows = hop_rows(self.journeys)
        total = len(rows)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        ifaces = at_rows(columns_of(self.table, "iface"), rows).to_series()
        return pl.DataFrame({
            "journey": np.repeat(np.arange(len(lengths), dtype=np.int64), lengths),
            "hop": np.arange(total, dtype=np.int64) - starts,
            "row": rows,
            "node": self.node_codes[rows].astype(np.int64),
            "role": self._role_codes(ifaces),
            "iface": ifaces,
        })

    def _role_codes(self, ifaces: pl.Series) -> np.ndarray | pl.Series:
        """`ROLE_CODES` of each interface's role (0: no name, no role): of a categorical column, looked up by its codes
        from its distinct names' (73k hops' names written as text and replaced: 9 -> 1 ms at 2M)."""
        if ifaces.dtype != pl.Categorical:
            names = ifaces.cast(pl.String)
            codes = {name: ROLE_CODES[self.role(name)] for name in names.drop_nulls().unique().to_list()}
            return names.replace_strict(list(codes), list(codes.values()), return_dtype=pl.Int64, default=0).fill_null(0)
        distinct = ifaces.unique()
        physical = distinct.to_physical().to_list()
        lookup = np.zeros(max((c for c in physical if c is not None), default=-1) + 2, dtype=np.int64)  # the last: null
        for code, name in zip(physical, distinct.cast(pl.String).to_list()):
            if code is not None:
                lookup[code] = ROLE_CODES[self.role(name)]
        roles: np.ndarray = lookup[ifaces.to_physical().fill_null(len(lookup) - 1).to_numpy()]
        return roles

    def path_firsts(self) -> np.ndarray:
        """Each journey's first hop in path order (`path`'s first) as its place among `hops` (-1: a journey without
        hops): of its nodes in the order of their first sightings, the first one's first sighting that was not received
        from the wire, else the journey's first. Over the hops' columns, not journey by journey."""
        firsts = np.full(len(self.journeys), -1, dtype=np.int64)
        heads = np.flatnonzero(self.hops.get_column("hop").to_numpy() == 0)
        firsts[self.hops.get_column("journey").to_numpy()[heads]] = heads
        if len(self.node_names) < 2:  # one node: a journey's path is its hops in their order (`path`)
            return firsts
        hops = self.hop_columns("direction").with_row_index("at")
        received = (pl.col("direction").is_in([int(Direction.IN), int(Direction.OTHERHOST)])
                    & pl.col("role").is_in([ROLE_CODES[Role.NIC], ROLE_CODES[Role.TUNNEL]])).fill_null(False)
        sent = hops.filter(self.journey_node().is_first_distinct()).filter(~received).group_by("journey").agg(pl.col("at").first())
        firsts[sent["journey"].to_numpy()] = sent["at"].to_numpy()
        return firsts

    def journey_node(self) -> pl.Expr:
        """Of `hops`' columns, a hop's journey and node as one number: distinct pairs, distinct numbers (polars hashes
        one number 3-4x faster than the struct of two: 0.009 -> 0.002 s for 73k hops)."""
        return pl.col("journey") * max(len(self.node_names), 1) + pl.col("node")

    def hop_columns(self, *columns: str) -> pl.DataFrame:
        """`hops` with these columns of the table beside, each hop's sighting's (gathered ahead: `gather_hops`)."""
        columns = tuple(c for c in columns if c not in self.hops.columns)  # (`iface`: there already)
        gathered = self._gathered
        if gathered is not None and all(c in gathered.columns for c in columns):
            return self.hops.hstack(gathered[list(columns)].get_columns())
        return self.hops.hstack(columns_of(self.table, *columns)[self.hops.get_column("row").to_numpy()].get_columns())

    @cached_property
    def _gathered(self) -> pl.DataFrame | None:
        """`HOP_COLUMNS` at these very hops of this very table, when they were gathered ahead."""
        if self.hops_ahead is None:
            return None
        ahead = self.hops_ahead.result()
        same = ahead.table is self.table and np.array_equal(ahead.rows, self.hops.get_column("row").to_numpy())
        return ahead.columns if same else None

    def _every_iface_nodes(self) -> list[int]:
        """The codes of the nodes whose capture saw every interface (-i any)."""
        return [code for code, name in enumerate(self.node_names) if (cov := self.coverage.get(name)) is not None and cov.every_iface]

    def role(self, iface: str | None) -> Role | None:
        if iface not in self._roles:
            self._roles[iface] = role_anywhere(self.model, iface)
        return self._roles[iface]

    @cached_property
    def flow_journeys(self) -> tuple[np.ndarray, np.ndarray]:
        """How many journeys each conversation holds and their ids, conversation after conversation (int64; read whole
        once for the detectors that want them: a walk of every conversation's journeys took 7 ms at 20,000)."""
        held = list(map(attrgetter("journeys"), self.flows))
        counts = np.fromiter(map(len, held), dtype=np.int64, count=len(held))
        return counts, np.fromiter(chain.from_iterable(held), dtype=np.int64, count=int(counts.sum()))

    @cached_property
    def journey_ids(self) -> np.ndarray:
        """Each materialised journey's id, in their order (int64; read once for the detectors that want them)."""
        return np.fromiter(map(attrgetter("id"), self.journeys), dtype=np.int64, count=len(self.journeys))

    @cached_property
    def journey_places(self) -> np.ndarray:
        """Journey id -> its place in `journeys` (-1: not materialised), as long as the highest id + 1."""
        ids = self.journey_ids
        places = np.full(int(ids.max()) + 1 if len(ids) else 0, -1, dtype=np.int64)
        places[ids] = np.arange(len(ids))
        return places

    @cached_property
    def flow_ids(self) -> np.ndarray:
        """Each conversation's id, in their order (int64)."""
        return np.fromiter(map(attrgetter("id"), self.flows), dtype=np.int64, count=len(self.flows))

    # ---- every journey, materialised or not (reports keep the first MAX_JOURNEYS as objects) ------

    @cached_property
    def first_row(self) -> FirstRows:
        """Journey id -> row of its first sighting, for every journey in the table (`first_rows`)."""
        return self.ahead(first_rows)

    def rows_of(self, jid: int) -> list[int]:
        """A journey's sightings in path order."""
        j = self.by_id.get(jid)
        if j is not None:
            return [h.row for h in self.path(j)]
        return self.table.select("journey", "hop", "row").filter(pl.col("journey") == jid).sort("hop")["row"].to_list()

    def last_row(self, jid: int) -> int:
        return self.rows_of(jid)[-1]

    def point(self, row: int) -> str:
        """`node3 eth0 In` for a sighting, as hops are labelled."""
        return point_label(self.table.row(row, named=True), int(self.number(row, "hop") or 0))

    @cached_property
    def _pairs(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per input: times, sources and destinations of its IPv4 sightings, in time order."""
        t = self.table.lazy().filter(pl.col("src").is_not_null() & pl.col("dst").is_not_null()).select(
            "input", pl.col("ts").fill_null(0), "src", "dst").collect()  # one copy of the four columns' rows
        if not t["ts"].is_sorted():  # a capture is mostly in time order already: no sort of every row then
            t = t.sort("ts")
        return {index: (part["ts"].to_numpy(), part["src"].to_numpy(), part["dst"].to_numpy())
                for index, part in _per_input(t).items()}

    @staticmethod
    def named(node: str) -> str | None:
        """A node's name; None for an input that names none (`input N`)."""
        return None if node.startswith("input ") else node

    def where(self, hop: Hop | int) -> str:
        """A sighting's place in words anyone can act on: `node3 eth0 Out`, or what the capture did not record."""
        row = hop if isinstance(hop, int) else hop.row
        node, iface, direction = self.node(row), self.text(row, "iface"), self.number(row, "direction")
        named = self.named(node)
        way = DIRECTION_LABELS.get(Direction(direction)) if direction is not None else None
        if iface is None:
            place = f"sighting {(self.number(row, 'hop') or 0) + 1} of the packet{f' ({way})' if way else ''}, on an interface the capture does not name"
            return f"{named}, {place}" if named else place
        return " ".join(str(x) for x in (named, iface, way) if x)

    def unrecorded(self, rows: list[int]) -> tuple[str, ...]:
        """What these sightings lack, as catalogue notes: `unrecorded.node`, `unrecorded.iface`."""
        missing = []
        if any(self.node(r).startswith("input ") for r in rows):
            missing.append("unrecorded.node")
        if any(self.text(r, "iface") is None for r in rows):
            missing.append("unrecorded.iface")
        return tuple(missing)

    @staticmethod
    def how_to_record(missing: tuple[str, ...]) -> str:
        """The sentence saying what was not recorded and how to record it; "" when nothing."""
        return f" The capture does not record {' nor '.join(note(k) for k in missing)}." if missing else ""

    def two_way_between(self, source: int, lo: int | None, hi: int | None) -> bool:
        """Does input `source` show some address pair in both directions between lo and hi (ns; None: anywhere)?"""
        if lo is not None and hi is not None and self._one_input is not None:
            found = self._two_way_in_table(source, lo, hi)
            if found is not None:
                return found
        if source not in self._pairs:
            return False
        times, src, dst = self._pairs[source]
        start, stop = 0, len(times)
        if lo is not None and hi is not None:
            start, stop = int(np.searchsorted(times, lo, side="left")), int(np.searchsorted(times, hi, side="right"))
        if start >= stop:
            return False
        # a pair both ways within [start, stop) iff the earlier of the two finds its partner before stop; two-way
        # traffic mostly shows among the window's first sightings already: the whole input's partners only if not
        probe = min(stop, start + TWO_WAY_PROBE)
        if int(_partners(src[start:probe], dst[start:probe]).min()) < probe - start:
            return True
        if probe == stop:
            return False
        partners = self._partner_rows.get(source)
        if partners is None:
            partners = self._partner_rows[source] = _partners(src, dst)
        return int(partners[start:stop].min()) < stop

    def _two_way_in_table(self, source: int, lo: int, hi: int) -> bool | None:
        """`two_way_between` read from the table's own rows (it holds one input in time order: `_one_input`), the
        first `TWO_WAY_PROBE` IPv4 sightings of the window only: no copy of every sighting's time and addresses (at
        10M they were held from the first unanswered request on, 36 B a sighting with what making them left). None
        when those show no pair both ways and the window holds more: the whole input's partners tell then."""
        if source != self._one_input:
            return False
        times = self._times[source]
        start, stop = times.position(lo, "left"), times.position(hi, "right")
        until = self._two_way_until.get((source, start))
        if until is not None and until <= stop:  # a window from the same sighting showed a pair both ways before `stop`
            return True  # (the requests of one conversation, or of a short capture, share the window's start)
        ipv4 = pl.col("src").is_not_null() & pl.col("dst").is_not_null()
        parts, found, at, more = [], 0, start, False
        while found < TWO_WAY_PROBE and at < stop:  # the window's first IPv4 sightings, a slice of the table at a time
            part = self.table.slice(at, min(stop - at, TWO_WAY_PROBE)).lazy().select("src", "dst").filter(ipv4).collect()
            at += min(stop - at, TWO_WAY_PROBE)
            more = part.height > TWO_WAY_PROBE - found  # the slice holds more than the probe takes
            parts.append(part.head(TWO_WAY_PROBE - found))
            found += parts[-1].height
        if not found:
            return False
        probe = pl.concat(parts)
        if int(_partners(probe["src"].to_numpy(), probe["dst"].to_numpy()).min()) < found:
            self._two_way_until[(source, start)] = at  # the rows read, [start, at), hold the pair
            return True
        if not more and at < stop:
            more = bool(self.table.slice(at, stop - at).lazy().filter(ipv4).select(pl.len()).collect().item())
        return None if more else False

    @cached_property
    def _one_input(self) -> int | None:
        """The input when the table holds one, its times in order without a gap (searched in the table's own column)."""
        found: int | None = self.ahead(one_input)
        return found

    @cached_property
    def _times(self) -> dict[int, _SortedTimes]:
        """Per input, the times of its sightings in order: the table's own column when it holds one input in time
        order (no copy of every time: 8 B a sighting held, and 10 more while it was made; numpy views of its chunks).
        Searched with numpy: polars' search_sorted takes 60 us a call on 25,000 times, numpy's 1 us."""
        if self._one_input is not None:
            return {self._one_input: _SortedTimes(self.table.get_column("ts"))}
        return {index: _SortedTimes(times if (times := part["ts"]).is_sorted() else times.sort())
                for index, part in _per_input(self.table.select("input", "ts").drop_nulls()).items()}

    def sightings_between(self, source: int, lo: int, hi: int) -> bool:
        """Does input `source` hold a sighting with lo <= ts <= hi?"""
        times = self._times.get(source)
        return times is not None and times.any_between(lo, hi)

    @cached_property
    def _node_ifaces(self) -> dict[str, set[tuple[str | None, bool]]]:
        out: dict[str, set[tuple[str | None, bool]]] = {}
        pairs = self.table.lazy().select(node=pl.Series(self.node_codes), iface=pl.col("iface"), tunnel=pl.col("tunnel")).unique().collect(
            engine="streaming")
        for r in pairs.iter_rows(named=True):
            out.setdefault(self.node_names[r["node"]], set()).add((r["iface"], bool(r["tunnel"])))
        return out

    def seen_on(self, node: str) -> set[object]:
        """The interface roles a node's capture shows, plus "tunnel" when it shows any envelope."""
        kinds: set[object] = set()
        for iface, tunnelled in self._node_ifaces.get(node, set()):
            kinds.add(self.role(iface))
            if tunnelled:
                kinds.add("tunnel")
        return kinds

    @cached_property
    def untranslated(self) -> dict[int, int]:
        """Request conversation -> the conversation of its replies, when those came back from another address than
        the one called (the endpoint's: the reverse NAT of a Service was not applied) and nothing came from the one called.

        Seen at one point (a pod's veth) the two are separate conversations; they belong together when the client
        endpoint and the service port agree and the replies answer the requests: the same DNS ids, or a SYN-ACK
        acknowledging the SYN (the client may reset the stranger; it says nothing else to it).
        """
        requests = [f for f in self.flows if f.proto in ("tcp", "udp") and f.state == "unanswered"]
        # (proto, end's address and port, far port): the end's fields, not the Endpoint (a frozen dataclass hashes in
        # Python); the requests' ends only, told first by their port (every conversation's both ends: 0.04 s at 2M)
        ends = {(f.proto, f.client.addr, f.client.port, f.server.port) for f in requests}
        ports = {port for _, _, port, _ in ends}
        by_end: dict[tuple[str, str, int | None, int | None], list[tuple[Flow, Endpoint]]] = {}
        for f in self.flows if ends else ():
            if f.proto in ("tcp", "udp"):
                client, server = f.client, f.server
                if client.port in ports and (end := (f.proto, client.addr, client.port, server.port)) in ends:
                    by_end.setdefault(end, []).append((f, server))
                if server.port in ports and (end := (f.proto, server.addr, server.port, client.port)) in ends:
                    by_end.setdefault(end, []).append((f, client))
        out: dict[int, int] = {}
        for request in requests:
            end = (request.proto, request.client.addr, request.client.port, request.server.port)
            candidates = [(reply, other) for reply, other in by_end.get(end, [])
                          if reply is not request and other.addr != request.server.addr]
            if not candidates or self._senders(request) != {request.client.addr}:
                continue  # nothing else answered that port, or the address called answered itself
            found = next((reply for reply, other in candidates if self._answers(request, reply, other)), None)
            if found is not None:
                out[request.id] = found.id
        return out

    def _firsts(self, flow: Flow) -> list[int]:
        return [self.first_row[j] for j in flow.journeys if j in self.first_row]

    def _senders(self, flow: Flow) -> set[str | None]:
        return {self.addr(r, "src") for r in self._firsts(flow)}

    def _answers(self, request: Flow, reply: Flow, other: Endpoint) -> bool:
        """Does `other` answer `request` in `reply`, the client saying nothing but resets to it?"""
        asked, rows = self._firsts(request), self._firsts(reply)
        answered = [r for r in rows if self.addr(r, "src") == other.addr]
        if any(self.addr(r, "src") != other.addr and not (self.number(r, "tcp_flags") or 0) & 4 for r in rows):
            return False
        queries = {self.number(r, "dns_id") for r in asked if self.flag(r, "dns_qr") is False}
        if queries:
            return bool(queries & {self.number(r, "dns_id") for r in answered if self.flag(r, "dns_qr") is True})
        syns = {(seq + 1) % 2**32 for r in asked
                if (self.number(r, "tcp_flags") or 0) & 18 == 2 and (seq := self.number(r, "seq")) is not None}
        return bool(syns & {self.number(r, "ack") for r in answered if (self.number(r, "tcp_flags") or 0) & 18 == 18})

    @cached_property
    def mac_owners(self) -> dict[int, str]:
        """MAC -> who owns it, as the capture shows (`next_hops.owners`); an address ARP names, as its node when known."""
        return next_hops.owners(self.table, self.node_names, self.role, self.node_of_address, self.ahead(next_hops.mac_sightings))

    def macs_of(self, node: str) -> set[int]:
        return {mac for mac, owner in self.mac_owners.items() if owner == node}

    def is_local(self, node: str, addr: str | None) -> bool:
        return addr is not None and addr in self.local.get(node, set())

    def node_of_address(self, addr: str | None) -> str | None:
        """The captured node that owns `addr` (its own address or one of its pods'), if known."""
        if addr is None:
            return None
        for node, addrs in self.local.items():
            if addr in addrs:
                return node
        for node, addrs in self.pods_on.items():
            if addr in addrs:
                return node
        if self.inventory is not None:
            owner = self.inventory.node_of_address(addr) or self.inventory.node_of_pod_address(addr)
            if owner is not None:
                return owner.name
        return None

    def cluster_ranges(self) -> list[ipaddress.IPv4Network] | None:
        """Pod and service ranges when the inventory states them; None when unknown."""
        if self.inventory is None or not self.inventory.pod_cidrs():
            return None
        cidrs = list(self.inventory.pod_cidrs()) + list(self.inventory.service_cidrs)
        return [n for n in (ipaddress.ip_network(c, strict=False) for c in cidrs) if n.version == 4]


def one_input(table: pl.DataFrame) -> int | None:
    """`Facts._one_input` of `table` (its times checked in order: 0.03 s at 10M, ahead: `findings.EARLY`)."""
    ts = table.get_column("ts")
    first, last = table.select(first=pl.col("input").min(), last=pl.col("input").max()).row(0)
    return int(first) if first is not None and first == last and not ts.null_count() and ts.is_sorted() else None


def in_row_order(table: pl.DataFrame) -> bool:
    """Whether the table's rows are in the order of their `row` (as correlation leaves them; checked ahead, 0.03 s at
    10M: `findings.EARLY`)."""
    return "row" not in table.columns or table.get_column("row").is_sorted()


def _addresses(self: Facts) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Own addresses of each node (first seen going out of a device that is not a pod veth, -i any, as a packet's
    source or the sender of an ARP request or reply), its pods' (from veths).

    Over the materialised journeys' hops as columns (one row a hop, in path order within each journey), not hop by hop.
    A node may send nothing else from its address in a short capture, but it answers ARP for it. Gratuitous ARP
    (sender and target one address) and probes (sender 0.0.0.0) are left out: they announce addresses that move
    between hosts (a virtual IP) or are not yet anyone's.
    """
    local: dict[str, set[str]] = {}
    pods: dict[str, set[str]] = {}
    addresses = [f"{side}{kind}" for side in ("src", "dst", "outer_src", "outer_dst") for kind in ("", "6", "_name")]
    hops = self.hop_columns("direction", "tunnel", "arp_spa", "arp_tpa", *addresses)
    if hops.height:
        inbound, outbound = pl.col("direction") == int(Direction.IN), pl.col("direction") == int(Direction.OUT)
        role = pl.col("role")
        at = self.journey_node()  # a journey's hops on one node, in path order
        # a node sends its envelopes from its own address, and opens those sent to it; over the journeys' nodes by
        # hashing, not windows (`over`, 0.028 -> 0.008 s of CPU over 20,000 journeys)
        decapsulated = at.is_in(at.filter(inbound & (role == ROLE_CODES[Role.TUNNEL])).implode())
        enveloped = (role == ROLE_CODES[Role.NIC]) & (pl.col("tunnel").fill_null(0) != 0) & (outbound | decapsulated)
        first_out = at.is_first_distinct() & outbound & ~role.is_in([ROLE_CODES[Role.HOST_VETH], 0]) \
            & pl.col("node").is_in(self._every_iface_nodes())
        marks = hops.select(_envelope=enveloped, _pod=role == ROLE_CODES[Role.HOST_VETH], _first_out=first_out)
        marked = hops.hstack(marks.get_columns())
        # each address written as text for the hops that say it only (every hop's, for all four: 0.04 s at 2M), and
        # not looked for where no hop says it (no interface of a known role: 9 ms at 2M)
        for mark, address, into in (
            ("_envelope", pl.when(outbound).then(address_of("outer_src")).otherwise(address_of("outer_dst")), local),
            ("_pod", pl.when(outbound).then(address_of("dst")).otherwise(address_of("src")), pods),
            ("_first_out", pl.coalesce(address_of("src"), _arp_sender()), local),
            ("_first_out", address_of("outer_src"), local),
        ):
            if not marks.get_column(mark).any():
                continue
            found = marked.lazy().filter(mark).select("node", address.alias("addr")).drop_nulls().unique().collect()
            for node, addr in found.iter_rows():
                into.setdefault(self.node_names[node], set()).add(addr)
    if self.inventory is not None:
        for info in self.inventory.nodes:
            local.setdefault(info.name, set()).update(info.addresses)
    return ({n: frozenset(a) for n, a in local.items()}, {n: frozenset(a) for n, a in pods.items()})


def _arp_sender() -> pl.Expr:
    """The sender address of an ARP request or reply that is neither a probe nor gratuitous (text; else null)."""
    spa = pl.col("arp_spa")
    return pl.when((spa != 0) & (spa != pl.col("arp_tpa").fill_null(0))).then(ip4_expr("arp_spa"))


ROLE_CODES: dict[Role | None, int] = {None: 0, **{role: n + 1 for n, role in enumerate(Role)}}  # `Facts.hops`' roles


def address_of(side: str) -> pl.Expr:
    """`Facts.addr` of a whole column: the IPv4 address as text, else the IPv6 one unless empty, else the name."""
    v6, name = pl.col(f"{side}6").cast(pl.String), pl.col(f"{side}_name").cast(pl.String)
    return pl.coalesce(ip4_expr(side), pl.when(v6 != "").then(v6), name)


def build(table: pl.DataFrame, journeys: list[Journey], flows: list[Flow], verdict: ModelVerdict,
          clocks: list[NodeClock], inventory: Inventory | None = None, early: Early | None = None,
          hops_ahead: Future[HopTable] | None = None) -> Facts:
    """The facts of one report; `early`: table-wide work started on `table` beforehand (`findings.start`);
    `hops_ahead`: the table's columns at the journeys' hops, gathered beforehand (`gather_hops`)."""
    early = early or Early(table, {})
    if not early.result(in_row_order, table):  # correlate leaves the table in row order: no wide sort
        table = table.sort("row")
        early = Early(table, {})
    names, codes = early.result(node_codes, table)
    partial = Facts(
        table=table, journeys=tuple(journeys), flows=tuple(flows), verdict=verdict, clocks=tuple(clocks), inventory=inventory,
        by_id={j.id: j for j in journeys}, flow_by_id={f.id: f for f in flows}, model=MODELS.get(verdict.name),
        node_names=tuple(names), node_codes=codes, coverage=early.result(coverage, table), local={}, pods_on={},
        early=early, hops_ahead=hops_ahead,
    )
    local, pods = _addresses(partial)
    return _carried(partial, replace(partial, local=local, pods_on=pods))


# what the facts make of the materialised hops alone (not of the conversations): `analyze` makes it while the
# conversations are tallied (`unlinked`), and `linked` carries it over
OF_HOPS = ("hops", "_gathered", "journey_ids", "journey_places", "mac_owners")


def unlinked(table: pl.DataFrame, journeys: list[Journey], verdict: ModelVerdict, clocks: list[NodeClock],
             inventory: Inventory | None = None, early: Early | None = None, hops_ahead: Future[HopTable] | None = None) -> Facts:
    """`build` with no conversations, and what it makes of the hops alone (`OF_HOPS`) made now, for `linked`: the MACs'
    owners only when their sightings were started early (`findings.start`: a sighting shows its destination MAC, and a
    hop may ask; else they are a pass over the table)."""
    facts = build(table, journeys, [], verdict, clocks, inventory, early, hops_ahead)
    for name in OF_HOPS:
        if name != "mac_owners" or (facts.early is not None and next_hops.mac_sightings in facts.early.work):
            getattr(facts, name)
    return facts


def linked(facts: Facts, journeys: list[Journey], flows: list[Flow]) -> Facts:
    """`facts` (`unlinked`) of the journeys linked to their `flows` (`flows.link`: other journeys, the same hops in the
    same order): what was made of the hops alone kept (`OF_HOPS`: at 2M, 12 ms of building and 4 of the facts asked,
    done while `analyze` waited for the conversations)."""
    return _carried(facts, replace(facts, journeys=tuple(journeys), flows=tuple(flows), by_id={j.id: j for j in journeys},
                                   flow_by_id={f.id: f for f in flows}), OF_HOPS)


def _carried(made: Facts, to: Facts, names: tuple[str, ...] = ("hops", "_gathered")) -> Facts:
    """`to`, a `replace` of `made`, with those of these cached properties `made` has made (not fields: `replace` does
    not carry them over): each made once."""
    for name in names:
        if name in made.__dict__:
            to.__dict__[name] = made.__dict__[name]
    return to


# the table's columns detectors read at the materialised journeys' hops (`Facts.hop_columns`)
HOP_COLUMNS = ("direction", "tunnel", "ip_version", "mss", "arp_op", "arp_spa", "arp_tpa", "eth_src", "eth_dst",
               *(f"{side}{kind}" for side in ("src", "dst", "outer_src", "outer_dst") for kind in ("", "6", "_name")))


class HopTable(NamedTuple):
    """`HOP_COLUMNS` of `table` at `rows` (`gather_hops`)."""

    table: pl.DataFrame
    rows: np.ndarray
    columns: pl.DataFrame


def hop_rows(journeys: Sequence[Journey]) -> tuple[np.ndarray, np.ndarray]:
    """How many hops each journey has, and their rows, journey after journey."""
    made = hop_arrays(journeys)
    if made is not None:
        return made.lengths, made.rows
    lengths = np.fromiter((len(j.hops) for j in journeys), dtype=np.int64, count=len(journeys))
    return lengths, np.fromiter((h.row for j in journeys for h in j.hops), dtype=np.int64, count=int(lengths.sum()))


def gather_hops(table: pl.DataFrame, journeys: Sequence[Journey]) -> Future[HopTable]:
    """`HOP_COLUMNS` of `table` at the journeys' hops, gathered on a thread of its own as soon as they are materialised
    (labelling and linking them keep their hops' rows): the gathers off the main thread, 0.04 s at 2M and 0.055 at 10M
    of the main thread's wall time; the facts check that they are of the same hops."""

    def gather() -> HopTable:
        rows = hop_rows(journeys)[1]
        return HopTable(table, rows, at_rows(columns_of(table, *(c for c in HOP_COLUMNS if c in table.columns)), rows))

    pool = ThreadPoolExecutor(1, thread_name_prefix="hops")
    try:
        return pool.submit(gather)
    finally:
        pool.shutdown(wait=False)


def _per_input(t: pl.DataFrame) -> dict[int, pl.DataFrame]:
    """`t` per input, keeping the order of its rows (no copy when there is one input)."""
    inputs = t["input"].unique()
    if inputs.len() == 1:
        return {int(inputs.item()): t}
    return {int(index): part for (index,), part in t.partition_by("input", as_dict=True, maintain_order=True).items()}


def _partners(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """For each sighting (IPv4 source and destination, in time order): the position of the first sighting at or after
    it from `dst` to `src` (itself when the two are one address; len(src) when there is none). Linear: the sightings
    are grouped by address pair, and the first candidate from each position on is a reversed running minimum.

    Every array but the pair key is 32 bits a sighting (positions count the sightings of one input): at 10M
    sightings this ran at the peak of `analyze` (int64 throughout held about 100 B a sighting at once)."""
    n = len(src)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    key = lo.astype(np.uint64)
    del lo
    key <<= np.uint64(32)
    key |= hi
    del hi
    # each pair's sightings together, in time order: polars groups by hashing and keeps the rows' order within a group
    positions = pl.DataFrame({"key": key}).with_row_index("pos").group_by("key").agg("pos")["pos"]
    del key
    order = positions.list.explode().to_numpy().astype(np.uint32, copy=False)
    lengths = positions.list.len().to_numpy()
    del positions
    end = np.repeat(np.cumsum(lengths, dtype=np.uint32), lengths)  # where each sighting's pair ends, in `order`
    del lengths
    at = np.arange(n, dtype=np.uint32)
    none = np.uint32(np.iinfo(np.uint32).max)

    def first_of(candidate: np.ndarray) -> np.ndarray:
        """The position of the first candidate at or after each place of `order` within its pair (n: none)."""
        nearest = np.where(candidate, at, none)
        nearest = np.minimum.accumulate(nearest[::-1])[::-1]  # the next candidate anywhere (later pairs come later)
        inside = nearest < end
        return np.where(inside, order[np.where(inside, nearest, 0)], np.uint32(n))

    ends = src[order], dst[order]
    up, down = ends[0] < ends[1], ends[0] > ends[1]
    del ends
    partners = np.empty(n, dtype=np.uint32)
    partners[order] = np.where(up, first_of(down), np.where(down, first_of(up), order))
    return partners


def first_rows(table: pl.DataFrame) -> FirstRows:
    """Journey id -> row of its first sighting (hop 0), for every journey in the table."""
    return first_rows_of(table.lazy().filter(pl.col("hop") == 0).select("journey", "row").collect())


def first_rows_of(firsts: pl.DataFrame) -> FirstRows:
    """`first_rows` of a table whose rows of hop 0 (journey, row, in row order) are `firsts` (`flows.number` finds
    them). Correlation numbers the journeys 0.. in order of first sighting: their first rows in row order are then
    the array itself, with no array as long as the journeys filled in (fresh pages: 0.1 s at 10M); a selection's ids
    have gaps."""
    journey = firsts.get_column("journey")
    n = journey.len()
    # one first sighting a journey: ascending from 0 to n - 1 is each of 0..n-1
    if n and journey.item(0) == 0 and journey.item(n - 1) == n - 1 and journey.is_sorted():
        return FirstRows(firsts.get_column("row").to_numpy())
    ids = journey.to_numpy()
    rows = np.full(int(ids.max()) + 1 if n else 0, -1, dtype=np.int64)
    rows[ids] = firsts.get_column("row").to_numpy()
    return FirstRows(rows)


class FirstRows(Mapping[int, int]):
    """Journey id -> first row, over a dense array (-1: no such journey; unsigned when every id has one): a dict of
    millions of journeys would not fit."""

    def __init__(self, rows: np.ndarray) -> None:
        self._rows = rows

    def __getitem__(self, jid: int) -> int:
        if not 0 <= jid < len(self._rows) or self._rows[jid] < 0:
            raise KeyError(jid)
        return int(self._rows[jid])

    def __contains__(self, jid: object) -> bool:
        return isinstance(jid, int) and 0 <= jid < len(self._rows) and self._rows[jid] >= 0

    def rows(self, jids: np.ndarray) -> np.ndarray:
        """The first row of each journey id (-1: no such journey)."""
        inside = (jids >= 0) & (jids < len(self._rows))
        if not len(self._rows):
            return np.full(len(jids), -1, dtype=np.int64)
        return np.where(inside, self._rows[np.where(inside, jids, 0)].astype(np.int64, copy=False), -1)

    def __iter__(self) -> Iterator[int]:
        return (int(j) for j in np.flatnonzero(self._rows >= 0))

    def __len__(self) -> int:
        return int((self._rows >= 0).sum())


def node_codes(table: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """The nodes' names in order of first sighting, and each sighting's index among them: by its input where each
    input shows one node at most (a capture file per node), with no name made per sighting."""
    pairs = capture_points(table).with_columns(_node=node_column(table))
    names = pairs["_node"].unique(maintain_order=True).to_list()
    # the smallest integer that numbers them: the codes are held to the end, one a sighting (uint32: 4 B)
    width, code = (np.uint8, pl.UInt8) if len(names) <= 1 << 8 else (np.uint16, pl.UInt16) if len(names) <= 1 << 16 else (np.uint32, pl.UInt32)
    if len(names) <= 1:  # one node: every code 0, in pages none writes (a gather of every row wrote 10 MB at 10M: 0.028 s)
        return names, np.zeros(table.height, dtype=width)
    if not pairs["input"].is_unique().all():
        nodes = table.select(node_column(table)).to_series()
        return names, nodes.replace_strict(names, list(range(len(names))), return_dtype=code).to_numpy()
    last = pairs.select(pl.col("input").max()).item()
    by_input = np.zeros(0 if last is None else int(last) + 1, dtype=width)
    by_input[pairs["input"].to_numpy()] = [names.index(name) for name in pairs["_node"].to_list()]
    return names, by_input[table["input"].to_numpy()]


def coverage(t: pl.DataFrame) -> dict[str, Coverage]:
    if t.is_empty():
        return {}
    names = pl.col("iface").drop_nulls().unique()
    aggregates = dict(
        any_link=pl.col("linktype").is_in(ANY_LINKTYPES).any(),
        text_named=(pl.col("caplen").is_null() & pl.col("iface").is_not_null() & pl.col("direction").is_not_null()).any(),
        start=pl.col("ts").min(),
        end=pl.col("ts").max(),
    )
    # streaming: the aggregates folded in as the rows go by (in memory, the group_by's working memory was 70 B a
    # sighting: every row's group and each expression's column)
    pairs = capture_points(t)
    if pairs.height == 1:  # one capture point (a file per node, most often): the whole table's, no grouping (0.27 -> 0.1 s at 10M)
        # its interfaces as inference counts them, over the codes (their distinct names hashed: 0.04 s at 10M)
        named = pl.Series("ifaces", [list(interface_sightings(t))], dtype=pl.List(pl.String))
        found = pairs.hstack([*t.lazy().select(**aggregates).collect(engine="streaming").get_columns(), named])
    else:  # the node's name after: not one made per sighting
        found = t.lazy().group_by("input", "node").agg(**aggregates, ifaces=names).collect(engine="streaming")
    per_input = found.sort("input", "node").with_columns(_node=node_column(t))
    out: dict[str, Coverage] = {}
    for r in per_input.iter_rows(named=True):
        prev = out.get(r["_node"])
        every = bool(r["any_link"] or r["text_named"])
        ifaces = frozenset(r["ifaces"])
        start, end = r["start"], r["end"]
        if prev is not None:
            every = every or prev.every_iface
            ifaces = ifaces | prev.ifaces
            start = min(x for x in (start, prev.start) if x is not None) if (start, prev.start) != (None, None) else None
            end = max(x for x in (end, prev.end) if x is not None) if (end, prev.end) != (None, None) else None
        out[r["_node"]] = Coverage(every, ifaces, start, end)
    return out
