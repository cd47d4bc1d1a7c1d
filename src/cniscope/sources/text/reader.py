"""Read tcpdump's text output (a terminal paste or a saved file) into the packet table.

One pass over the lines, one row per packet: a packet starts on a line with a
timestamp (or, with `-t`, on a line that starts like a packet) and takes the
lines that belong to it: the address line after a `-v` IPv4 header, the
inner packet of a VXLAN/OTV/Geneve envelope, an ICMP error's quoted packet,
and any indented line (BGP/HTTP decodes, hex dumps); with `-A`, the printable
lines after a packet are its bytes (see `dump_line`). `listening on IFACE,
link-type X` banners set the interface and link type of the lines after
them. Banners, trailers (`N packets captured` ...), shell prompts and empty
lines are skipped; any other line is counted in `info.unparsed_lines` and
warned about with its line number, and reading goes on. A `-#` packet number
before the line is dropped; `[Error converting time]` stands for the
timestamp (the row gets none, one note says so).

Segments: a paste often joins several runs. A new one starts at a banner, a
prompt, and (no banner needed) at an empty line or words between blocks, at
tcpdump's end-of-capture lines, or where the time steps back by more than
`STEP_BACK_NS`: TCP numbering, relative clocks and the banner's interface
start afresh there, and a note says where. A segment whose clock is hours
from the one before is another host or time zone: unless the input was given
a node, its rows get node `part N`, so clock alignment treats it as its own
capture. A tunnel envelope under the banner of a tunnel device (flannel.1,
cilium_vxlan ...) was not captured there: the banner's interface is dropped.

Clocks: `HH:MM:SS.ffffff` is `Clock.TIME_OF_DAY` (ns since midnight; a step
back of more than 12 h within one capture is taken as midnight passing);
`-tt` epoch seconds and `-tttt` dates are `Clock.EPOCH` (dates are taken as
UTC: tcpdump prints local time and the text does not say which zone);
`-ttt`/`-ttttt` (a leading space, then `HH:MM:SS.ffffff` from 00:00:00) are
`Clock.RELATIVE`: time since the previous packet (`-ttt`, summed) or since the
first (`-ttttt`), restarting at each banner. The two look alike; the reader
takes `-ttttt` when a capture's first `RELATIVE_DECIDE_AFTER` stamps (or all
of them) never decrease and hold at least `RELATIVE_SINCE_FIRST_MIN`
different values, which deltas of real traffic (copies microseconds apart,
then gaps) do not do, and says so in a note; `-t` is `Clock.NONE`. The
input's clock is that of its first timestamped packet; rows whose timestamps
are in another style get a null `ts` and one warning.

A shell prompt that runs tcpdump (`root@node3:~# tcpdump ...`, `[root@node3 ~]#
tcpdump ...`, as `ssh node3` or `kubectl debug node/node3` show it) names the
node of the packets after it, so one file pasted from several nodes is read as
several nodes (unless the input was given a node: that wins), and each such
prompt starts a new capture for the clock, on the interface its `-i` names
(until tcpdump's banner says).

Host names tcpdump printed instead of addresses (no `-n`) cannot become
addresses: `src`/`dst` stay null and the names go to `src_name`/`dst_name`
(`outer_src_name`/`outer_dst_name` for a tunnel envelope). Service names go
back to ports through the services table tcpdump itself used (`services`);
a name no table knows goes to the end of `info` as `names: sport=NAME`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache

import polars as pl

from cniscope.packets.ports import TunnelPorts
from cniscope.packets.schema import SCHEMA, Clock, LinkType, conform
from cniscope.sources import InputInfo
from cniscope.sources.text import grammar
from cniscope.sources.text.grammar import INNER, L3, QUOTED, Layer, Packet
from cniscope.sources.text.tcp_numbers import TcpNumbers

NS = 1_000_000_000
DAY_NS = 86400 * NS
HALF_DAY_NS = DAY_NS // 2
MAX_LINE_WARNINGS = 50
# lines that are no packet at all: printable ones are text around a paste (a note, markdown), not damage
PROSE = ("not a tcpdump packet line", "indented line with no packet before it")
IPIP_SUFFIX = " (ipip-proto-4)"

TS_RE = re.compile(
    r"(?:(?P<date>\d{4}-\d\d-\d\d) (?P<dh>\d\d):(?P<dm>\d\d):(?P<ds>\d\d)\.(?P<df>\d{1,9})"
    r"|(?P<rel>[ -])?(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)\.(?P<f>\d{1,9})"
    r"|(?P<ep>\d{1,11})\.(?P<ef>\d{6,9}))(?: |$)"
)
# `-A` prints a packet's bytes as ASCII from its IP header (0x45 `E` for IPv4, 0x6_ `` ` `` for IPv6),
# `.` for what is not printable, a new line for each newline byte
ASCII_DUMP_RE = re.compile(r"[E`][\t\x20-\x7e]*$")
PRINTABLE_RE = re.compile(r"[\t\x20-\x7e]*$")
MAX_HELD = 1000
NUMBER_RE = re.compile(r" *\d+  (?=\S| \d)")  # `-#`: the packet's number (`%5u  `) before the rest of the line
ERROR_TIME = "[Error converting time] "  # tcpdump's stamp when the time does not convert (out of range)
IFACE_DIR_RE = re.compile(r"(\S+) +(In|Out|B|M|P) +")
PACKET_START_RE = re.compile(
    r"(?:[0-9a-f]{2}(?::[0-9a-f]{2}){5} > |IP6? |ARP, |ip: |(?:AF )?IPv[46](?: \(\d+\))?, length |\S+ +(?:In|Out|B|M|P) +\S| *(?:In|Out|B|M|P) [0-9a-f]{2}:)"
)
BANNER_RE = re.compile(
    r"(?:tcpdump: )?(?:listening on (?P<iface>\S+), link-type (?P<lt>\w+)|reading from file .*?, link-type (?P<flt>\w+))"
)
# A shell prompt running tcpdump names the host the lines after it were captured on (the node, for
# `ssh node3` or `kubectl debug node/node3`): `root@node3:~# tcpdump ...`, `[root@node3 ~]# tcpdump ...`.
PROMPT_TCPDUMP_RE = re.compile(
    r"(?:\[[\w.-]+@(?P<bracketed>[\w.-]+)[^\]]*\][#$]|[\w.-]+@(?P<host>[\w.-]+)(?::\S*)? ?[#$%]) +(?:sudo +(?:-\S+ +)*)?tcpdump\b"
)
# words between pasted blocks (`on node2:`, `-----`), not junk nor an -A dump
PROSE_RE = re.compile(r"[A-Za-z#>][\x20-\x7e]* [\x20-\x7e]*$|[A-Za-z]+:$|[-=#*]{3,}$")
TRAILER_RE = re.compile(r"\d+ packets? captured")
PROMPT_IFACE_RE = re.compile(r" (?:-i *|--interface[= ])([\w.@:-]+)")  # the interface the command captures on
NOISE_RE = re.compile(
    r"(?:tcpdump: "  # tcpdump's own messages (verbose output suppressed, WARNING ...)
    r"|\d+ packets? (?:captured|received by filter|dropped by kernel|dropped by interface)"
    r"|dropped privs to "
    r"|\[[^\]]*\][#$]"  # [root@node3 ~]# tcpdump ...
    r"|[\w.-]+@[\w.-]+(?::\S*)? ?[#$%] "  # root@node3:~# tcpdump ...
    r"|[$#%] "  # $ tcpdump ...
    r"|\^C"
    r"|verbose output suppressed)"
)


@lru_cache(maxsize=64)
def _day_seconds(date: str) -> int:
    """`2026-11-26` -> seconds since the epoch at its midnight, UTC."""
    return int(datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())


STEP_BACK_NS = NS  # a packet stamped this much before the one above starts another capture (-i any reorders less)
CLOCKS_APART_NS = 3600 * NS  # captures whose clocks are this far apart were taken on different hosts (or zones)
MAX_SEGMENT_NOTES = 20
# devices that carry a tunnel's inner packets: an envelope (UDP 8472 ...) cannot have been captured on one
TUNNEL_DEVICE_RE = re.compile(r"(?:cilium_vxlan|cilium_geneve|flannel\.\d+|flannel-wg|vxlan[\w.-]*|genev_sys_\d+|"
                              r"antrea-tun0|tunl0|ipip0|gre\d+|wg\d+)$")
RELATIVE_DECIDE_AFTER = 64  # -ttt or -ttttt: decided after this many stamps (or at the end of a shorter capture)
RELATIVE_SINCE_FIRST_MIN = 4  # fewer different stamps than this are read as -ttt deltas (the common flag)


class _Segment:
    """What a banner sets for the lines after it, and the clock state of that capture."""

    def __init__(self, iface: str | None = None, linktype: int | None = None) -> None:
        self.iface = iface
        self.linktype = linktype
        self.node: str | None = None  # from a shell prompt that started this capture
        self.tcp = TcpNumbers()  # tcpdump's relative TCP numbering, undone
        self.relative_ns = 0
        self.relative: str | None = None  # "delta" (-ttt) or "since-first" (-ttttt); None until decided
        self.undecided: list[tuple[dict[str, object], int, int]] = []  # rows with a relative stamp: (row, stamp as printed, line)
        self.day_ns = 0
        self.last_tod: int | None = None
        self.last_ts: int | None = None
        self.packets = 0
        self.previous_last_ts: int | None = None  # where the capture before this one ended


class TextReader:
    """The line loop. Rows are dicts of column values; `take()` turns them into a table."""

    def __init__(self, info: InputInfo, ports: TunnelPorts) -> None:
        self.info = info
        self.ports = ports
        self.segment = _Segment()
        self.packet: Packet | None = None
        self.rows: list[dict[str, object]] = []
        self.frame = 0
        self.clock: Clock | None = None
        self.clock_warned = False
        self.line_warnings = 0
        self.prose = 0  # lines of text that is no tcpdump output (notes, markdown around a paste)
        self.prose_lines: list[int] = []  # the first of them
        self.partial_rows = 0
        self.ascii_dump = False  # the input has `-A` dumps after its packets
        self.held: list[tuple[int, str]] = []  # printable lines after packets, until -A is known
        self.printed_relative = 0  # the last -ttt/-ttttt stamp as printed (ns)
        self.prompt_nodes: dict[str, int] = {}  # hosts of prompts that ran tcpdump -> first line
        self.unconverted = 0  # packets printed with `[Error converting time]`
        self.pending_break: str | None = None  # why the next packet starts another capture (a blank line ...)
        self.segment_notes = 0
        self.parts = 1  # captures of this input whose clocks are hours apart, offered to clock alignment apart
        self.carried_warned = False

    # -- lines -------------------------------------------------------------------------------
    def feed(self, n: int, line: str) -> None:
        text = line.rstrip()
        if not text:
            if not line.strip("\r\n") and not self.ascii_dump and self.segment.packets:  # an empty line: blocks apart
                self.pending_break = "a blank line"                             # (decode output indents its own)
            return
        line = text
        m = NUMBER_RE.match(line)
        if m is not None and _packet_at(line, m.end()):
            line = line[m.end() :]
        if line.startswith(ERROR_TIME):
            self.unconverted += 1
            if self.unconverted == 1:
                self.info.warn(f"line {n}", "tcpdump could not convert this packet's time ([Error converting time]): "
                               "such packets are read without a timestamp", damaged=False)
            self.start(n, None, line[len(ERROR_TIME) :])
            return
        first = line[0]
        if first == " " or first == "\t":
            if line[1:2].isdigit():
                m = TS_RE.match(line)
                if m is not None:
                    self.start(n, m, line[m.end() :])
                    return
            self.continuation(n, line)
            return
        if first.isdigit() or first == "-":  # `-`: a negative -ttt delta (packets out of order)
            m = TS_RE.match(line)
            if m is not None:
                self.start(n, m, line[m.end() :])
                return
        m = BANNER_RE.match(line)
        if m is not None:
            self.finish()
            self.decide_relative()
            iface = m.group("iface")
            lt = m.group("lt") or m.group("flt")
            old = self.segment
            self.segment = _Segment(None if iface in (None, "any") else iface, grammar.LINKTYPES.get(lt))
            self.segment.node = old.node  # tcpdump's banner follows the prompt that started it
            self.segment.previous_last_ts = old.last_ts if old.packets else old.previous_last_ts
            self.pending_break = None
            return
        if NOISE_RE.match(line):
            if self.segment.packets and TRAILER_RE.match(line):
                self.pending_break = "tcpdump's end of capture"
            m = PROMPT_TCPDUMP_RE.match(line)
            if m is not None and self.info.node is None:  # a node the user named wins over prompts
                self.finish()
                self.decide_relative()
                iface = PROMPT_IFACE_RE.search(line, m.end())
                self.segment = _Segment(iface.group(1) if iface and iface.group(1) != "any" else None)  # until a banner says
                self.segment.node = m.group("host") or m.group("bracketed")
                self.prompt_nodes.setdefault(self.segment.node, n)
            return
        pkt = self.packet
        if pkt is not None and pkt.pending == INNER:
            pkt.pending = None
            pkt.layers.append({})
            grammar.parse_frame(line, pkt)
            return
        if PACKET_START_RE.match(line):
            self.start(n, None, line)
            return
        if pkt is not None and PRINTABLE_RE.match(line):
            self.dump_line(n, line)
            return
        self.unparsed(n, line, "not a tcpdump packet line")

    def dump_line(self, n: int, line: str) -> None:
        """A printable line after a packet: `-A`'s dump of its bytes, or text that is no packet.

        `-A` is recognised by a dump line starting with the IP version byte (`E` IPv4, `` ` `` IPv6);
        until then such lines are held, and reported as unparsed if that never happens.
        """
        if self.ascii_dump:
            return
        if ASCII_DUMP_RE.match(line):
            self.ascii_dump = True
            self.held.clear()
            return
        self.held.append((n, line))
        if len(self.held) > MAX_HELD:
            self.release()

    def release(self) -> None:
        """Report the held lines as unparsed: no `-A` dump came to explain them."""
        held, self.held = self.held, []
        for n, line in held:
            self.unparsed(n, line, "not a tcpdump packet line")

    def continuation(self, n: int, line: str) -> None:
        pkt = self.packet
        if pkt is None:
            self.unparsed(n, line, "indented line with no packet before it")
            return
        pending = pkt.pending
        if pending is None:
            return  # a decode line (BGP, HTTP -v, hex dump ...) of the packet above
        if pending == L3:
            pkt.pending = None
            grammar.parse_l3_line(line.lstrip(), pkt)
        elif pending == INNER:
            pkt.pending = None
            pkt.layers.append({})
            grammar.parse_frame(line.lstrip(), pkt)
        elif pending == QUOTED and not grammar.parse_quoted(line, pkt):
            pkt.pending = None

    def unparsed(self, n: int, line: str, why: str) -> None:
        if self.segment.packets and PROSE_RE.match(line):
            self.pending_break = "lines that are not tcpdump's"
        self.info.unparsed_lines += 1
        if why in PROSE and "\ufffd" not in line and line.replace("\t", " ").isprintable():  # prose: normal, said once
            self.prose += 1
            if len(self.prose_lines) < 10:
                self.prose_lines.append(n)
            return
        self.line_warnings += 1
        if self.line_warnings <= MAX_LINE_WARNINGS:
            shown = line if len(line) <= 60 else line[:57] + "..."
            self.info.warn(f"line {n}", f"{why}, skipped: {shown!r}")

    # -- packets -------------------------------------------------------------------------------
    def start(self, n: int, ts_match: re.Match[str] | None, rest: str) -> None:
        self.finish()
        seg = self.segment
        ts = self.timestamp(n, ts_match) if ts_match is not None else None
        if self.held and not self.ascii_dump and any(PROSE_RE.match(line) for _, line in self.held):
            self.release()  # words between blocks, no -A dump: reported, and the blocks apart
        why = self.pending_break if seg.packets else None
        self.pending_break = None
        if why is None and ts is not None and seg.last_ts is not None and ts < seg.last_ts - STEP_BACK_NS and (
                self.clock is not Clock.RELATIVE):
            why = "the time steps back"
        if why is not None:
            self.new_segment(n, why)
            seg = self.segment
            ts = self.timestamp(n, ts_match) if ts_match is not None else None
        if seg.packets == 0:
            self.part_of(n, seg, ts)
        if ts is not None:
            seg.last_ts = ts
        pkt = Packet(line=n, ts=ts, iface=seg.iface, direction=None, linktype=seg.linktype, layers=[{}], ports=self.ports)
        if ts is not None and self.clock is Clock.RELATIVE and seg.relative is None:
            pkt.printed_relative = self.printed_relative
        self.packet = pkt
        if rest.endswith(IPIP_SUFFIX):  # tcpdump before 4.99 ends an IPIP packet with it
            rest = rest[: -len(IPIP_SUFFIX)]
        if rest.startswith("IP ") and rest[3:4].isdigit():  # the common line: no link header, no -v header
            grammar.parse_l3_line(rest[3:], pkt)  # (what parse_frame and parse_ip4 come to for it)
        else:
            if grammar.parse_sll1(rest, pkt):
                return
            m = IFACE_DIR_RE.match(rest)
            if m is not None:
                pkt.iface = m.group(1)
                pkt.direction = grammar.DIRECTIONS[m.group(2)]
                if pkt.linktype is None:
                    pkt.linktype = LinkType.LINUX_SLL2
                rest = rest[m.end() :]
                if grammar.parse_sll2(rest, pkt):
                    return
            grammar.parse_frame(rest, pkt)
        if pkt.linktype is None:
            first = pkt.layers[0]
            if "wirelen" in first and "eth_dst" in first:
                pkt.linktype = LinkType.ETHERNET
            elif rest.startswith("ip: "):
                pkt.linktype = LinkType.RAW

    def new_segment(self, n: int, why: str) -> None:
        """Another capture starts at line n (no banner said so): TCP numbering, clock and interface start afresh."""
        old = self.segment
        self.decide_relative()
        self.segment = _Segment(None, old.linktype)
        self.segment.node, self.segment.day_ns = old.node, old.day_ns
        self.segment.previous_last_ts = old.last_ts
        self.segment_notes += 1
        if self.segment_notes <= MAX_SEGMENT_NOTES:
            self.info.warn(f"line {n}", f"{why}: read as the start of another capture (its TCP numbering, clock "
                           "and interface apart from the packets above)", damaged=False)

    def part_of(self, n: int, seg: _Segment, ts: int | None) -> None:
        """A capture whose clock is hours from the one before was taken elsewhere (or in another time zone):
        unless a node was given, it becomes its own part for clock alignment (`part 2` ...)."""
        before = seg.previous_last_ts
        if ts is None or before is None or abs(ts - before) < CLOCKS_APART_NS or self.info.node is not None:
            return
        if seg.node is not None and not seg.node.startswith("part "):
            return  # a prompt named the host
        self.parts += 1
        seg.node = f"part {self.parts}"
        hours = abs(ts - before) / 3600 / NS
        self.info.warn(f"line {n}", f"the clock here is {hours:.1f} h from the capture above: another host or "
                       f"time zone, aligned apart as '{seg.node}'", damaged=False)

    def timestamp(self, n: int, m: re.Match[str]) -> int | None:
        g = m.group
        seg = self.segment
        h, minutes, seconds, fraction, rel = g("h", "m", "s", "f", "rel")
        if h is not None:
            ns = (int(h) * 3600 + int(minutes) * 60 + int(seconds)) * NS + int(fraction.ljust(9, "0"))
            if rel is not None:
                clock = Clock.RELATIVE
                self.printed_relative = -ns if rel == "-" else ns
                if seg.relative != "since-first":
                    seg.relative_ns += self.printed_relative
                    ns = seg.relative_ns
            else:
                clock = Clock.TIME_OF_DAY
                if seg.last_tod is not None and ns < seg.last_tod - HALF_DAY_NS:
                    seg.day_ns += DAY_NS
                seg.last_tod = ns
                ns += seg.day_ns
        elif g("ep") is not None:
            clock = Clock.EPOCH
            ns = int(g("ep")) * NS + int(g("ef").ljust(9, "0"))
        else:
            clock = Clock.EPOCH
            secs = _day_seconds(g("date")) + int(g("dh")) * 3600 + int(g("dm")) * 60 + int(g("ds"))
            ns = secs * NS + int(g("df").ljust(9, "0"))
        if self.clock is None:
            self.clock = self.info.clock = clock
        elif clock is not self.clock:
            if not self.clock_warned:
                self.clock_warned = True
                self.info.warn(
                    f"line {n}",
                    f"timestamps change style ({self.clock.value} before, {clock.value} here); "
                    "such rows get no timestamp",
                    damaged=False,
                )
            return None
        return ns

    def finish(self) -> None:
        """Turn the packet being assembled into a row."""
        pkt = self.packet
        if pkt is None:
            return
        self.packet = None
        for layer in pkt.layers:
            if "_bad_address" in layer:
                self.unparsed(pkt.line, str(layer["_bad_address"]), "not an IP address")
                return
        row = assemble(pkt)
        if row.get("tcp_flags") is not None:  # TCP: numbers back to absolute
            self.segment.tcp.absolute(row)
        if pkt.pending == L3 or pkt.pending == INNER:
            what = "IP header" if pkt.pending == L3 else "tunnel header"
            row["error"] = f"text: {what} without the line that should follow it"
            self.partial_rows += 1
            if self.partial_rows <= MAX_LINE_WARNINGS:
                self.info.warn(f"line {pkt.line}", f"{what} without the line that should follow it (cut off?); "
                               "kept what it shows", damaged=False)
        row["frame"] = self.frame
        seg = self.segment
        if seg.node is not None:
            row["node"] = seg.node
        if row.get("tunnel") and pkt.iface is not None and pkt.iface == seg.iface and TUNNEL_DEVICE_RE.match(pkt.iface):
            self.uncarry(pkt.line, pkt.iface)
            row["iface"] = None
        seg.packets += 1
        self.frame += 1
        self.rows.append(row)
        if pkt.printed_relative is not None:
            self.segment.undecided.append((row, pkt.printed_relative, pkt.line))
            if len(self.segment.undecided) >= RELATIVE_DECIDE_AFTER:
                self.decide_relative()

    def uncarry(self, n: int, iface: str) -> None:
        """An envelope under the banner of a tunnel device: the banner was another run's; its interface goes."""
        self.segment.iface = None
        if not self.carried_warned:
            self.carried_warned = True
            self.info.warn(f"line {n}", f"tunnel envelopes cannot have been captured on {iface} (it carries their "
                           "inner packets): its banner belongs to another run, these packets get no interface",
                           damaged=False)

    def decide_relative(self) -> None:
        """-ttt or -ttttt for the current segment, from the stamps seen so far; rows not yet taken are set right."""
        seg = self.segment
        if not seg.undecided:
            return
        printed = [value for _, value, _ in seg.undecided]
        monotone = all(b >= a for a, b in zip(printed, printed[1:], strict=False))
        # equal deltas (periodic traffic) never decrease either: -ttttt also needs that many different stamps
        seg.relative = "since-first" if monotone and len(set(printed)) >= RELATIVE_SINCE_FIRST_MIN else "delta"
        if seg.relative == "since-first":
            for row, value, _ in seg.undecided:
                row["ts"] = value
            self.info.warn(f"line {seg.undecided[0][2]}", "relative timestamps never decrease: read as "
                           "-ttttt (time since the first packet), not -ttt deltas", damaged=False)
        seg.undecided = []

    def take(self) -> pl.DataFrame:
        self.decide_relative()
        rows, self.rows = self.rows, []
        used: set[str] = set()
        for r in rows:
            used.update(r)
        schema = {name: SCHEMA[name] for name in SCHEMA if name in used}
        try:
            df = pl.from_dicts(rows, schema=schema, strict=False)
        except pl.exceptions.ComputeError:  # a number too big for its column: build column by column,
            columns = {name: [r.get(name) for r in rows] for name in schema}  # which turns it to null
            df = pl.DataFrame(columns, schema=schema, strict=False)
        df = df.with_columns(
            pl.lit(self.info.index, dtype=SCHEMA["input"]).alias("input"),
            pl.col("node") if "node" in used else pl.lit(self.info.node, dtype=SCHEMA["node"]).alias("node"),
        )
        return conform(df)


OUTER_COLUMNS = (
    ("src", "outer_src"), ("dst", "outer_dst"), ("src6", "outer_src6"), ("dst6", "outer_dst6"), ("sport", "outer_sport"),
    ("dport", "outer_dport"), ("ttl", "outer_ttl"), ("ip_id", "outer_ip_id"), ("ip_len", "outer_len"),
    ("l4_csum_bad", "outer_l4_csum_bad"),  # `[bad udp cksum 0xffff -> 0x5a5a!] VXLAN` with -vv (-v over IPv6)
    ("src_name", "outer_src_name"), ("dst_name", "outer_dst_name"),
)
LINK_COLUMNS = frozenset(("eth_src", "eth_dst", "vlan", "wirelen"))


PRIVATE_NOTES = ("_fragment", "_ihl", "_frag_len", "_bad_address")


def assemble(pkt: Packet) -> dict[str, object]:
    """One row from a packet's layers: packet columns from the innermost, envelope from the outermost."""
    outer = pkt.layers[0]
    encap = outer.get("_encap")
    if encap is None:  # one layer (the common case): its keys are the row's columns, the layer the row itself
        row = outer
        noted = row.pop("_names", None)
        names = _names(noted) if noted is not None else []
        for note in PRIVATE_NOTES:  # the grammar's own notes, no columns
            row.pop(note, None)
        row["tunnel"] = 0
    else:
        row, names = _tunnelled(pkt, outer, int(encap) if isinstance(encap, int) else 0)
    row["line"] = pkt.line
    row["ts"] = pkt.ts
    row["iface"] = pkt.iface
    row["direction"] = pkt.direction
    row["linktype"] = pkt.linktype
    if names:
        text = "names: " + " ".join(names)
        info = row.get("info")
        row["info"] = f"{info}; {text}" if info else text
    return row


def _tunnelled(pkt: Packet, outer: Layer, encap: int) -> tuple[dict[str, object], list[str]]:
    row: dict[str, object] = {key: outer[key] for key in LINK_COLUMNS if key in outer}
    row["tunnel"] = encap
    row["vni"] = outer.get("_vni")
    for key, column in OUTER_COLUMNS:
        if key in outer:
            row[column] = outer[key]
    names = [f"outer_{x}" for x in _names(outer.get("_names"))]
    if len(pkt.layers) == 1:  # the inner packet's line never came
        return row, names
    middle, inner = pkt.layers[1], pkt.layers[-1]
    row["inner_eth_src"] = middle.get("eth_src")
    row["inner_eth_dst"] = middle.get("eth_dst")
    for key, value in inner.items():
        if key[0] != "_" and key not in LINK_COLUMNS:
            row[key] = value
    names.extend(_names(inner.get("_names")))
    return row, names


def _names(noted: object) -> list[str]:
    """The fields a layer's line showed as host or service names (`_names`, a list the grammar keeps)."""
    return [str(name) for name in noted] if isinstance(noted, list) else []


def _packet_at(line: str, at: int) -> bool:
    """Whether a packet (its timestamp, or with -t the packet itself) starts at `at` of the line."""
    rest = line[at:]
    return bool(TS_RE.match(rest) or PACKET_START_RE.match(rest) or rest.startswith(ERROR_TIME))


def _packet_line(line: str) -> bool:
    """A line that starts a packet, with or without a `-#` number."""
    m = NUMBER_RE.match(line)
    return _packet_at(line, m.end() if m is not None and _packet_at(line, m.end()) else 0)


def starts_like_tcpdump(head: bytes) -> bool:
    """Whether the first line of these bytes is one tcpdump prints (a packet, a banner, a prompt).

    For telling text from binary when the start of a paste carries binary junk (a NUL byte, say)
    further on: such an input is still text, and the reader keeps what precedes and follows the junk.
    """
    for line in head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()[:20]:
        line = line.rstrip()
        if line:
            return bool(_packet_line(line) or BANNER_RE.match(line) or NOISE_RE.match(line))
    return False


def shows_packets(head: bytes) -> bool:
    """Whether these first bytes hold a tcpdump packet line or banner (not merely a prompt: notes have those too)."""
    lines = head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()[:40]
    return any(_packet_line(line) or BANNER_RE.match(line) for line in lines)


def iter_tables(lines: Iterable[str], info: InputInfo, batch_size: int = 65536, *, ports: TunnelPorts) -> Iterator[pl.DataFrame]:
    """Yield the packet table of a tcpdump text capture in batches of at most `batch_size` rows (`ports`: the UDP
    ports of tunnels, for envelopes tcpdump did not open).

    Sets `info.format`, `info.clock`, `info.packets` and `info.unparsed_lines`;
    every skipped line is warned about (the first 50 one by one, then a count).
    """
    info.format = "text"
    reader = TextReader(info, ports)
    for n, line in enumerate(lines, 1):
        if n == 1:
            line = line.lstrip("\ufeff")  # a byte order mark from an editor
        reader.feed(n, line)
        if len(reader.rows) >= batch_size:
            info.packets += len(reader.rows)
            yield reader.take()
    reader.finish()
    reader.release()
    if reader.line_warnings > MAX_LINE_WARNINGS:
        info.warn("", f"{reader.line_warnings - MAX_LINE_WARNINGS} more lines skipped (not shown one by one)")
    if reader.partial_rows > MAX_LINE_WARNINGS:
        info.warn("", f"{reader.partial_rows - MAX_LINE_WARNINGS} more packets without their second line",
                  damaged=False)
    if reader.prose and not info.packets and not reader.rows:
        info.warn("", f"no tcpdump packet line in {reader.prose} lines of text")
    elif reader.prose:
        listed = ", ".join(map(str, reader.prose_lines)) + (" ..." if reader.prose > len(reader.prose_lines) else "")
        info.note("", f"{reader.prose} line{'s' if reader.prose > 1 else ''} of text that is no tcpdump output "
                      f"skipped (line {listed})")
    if reader.prompt_nodes:
        named = ", ".join(f"{node} (line {line})" for node, line in reader.prompt_nodes.items())
        info.note("", f"nodes named by the shell prompts that ran tcpdump: {named}")
    info.clock = reader.clock if reader.clock is not None else Clock.NONE
    if reader.rows:
        info.packets += len(reader.rows)
        yield reader.take()
