"""The terminal report, in the spirit of the seed's study note.

For each conversation: its summary (legs, state, handshake, bytes, re-sends),
then its packets in order, each with every place it was seen, the delay of
each hop and what changed. Then the network model with its evidence, the
clocks, the findings and the warnings.

`lines()` builds styled lines (rich `Text`), their control characters escaped
(names from a capture may carry terminal escapes); `render()` gives plain text (for
golden tests and pipes), `show()` prints with colour where the terminal has it
and plain text where it does not (a pipe or file, NO_COLOR set, TERM=dumb).
`Progress` shows what is being read and analysed on standard error, only when
that is a terminal and the inputs are long.
"""

from __future__ import annotations

import os
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from cniscope.packets.schema import Clock
from cniscope.results import Finding, Flow, Hop, Journey, Report, Severity
from cniscope.sources import Capture, InputInfo, InputSpec, read
from cniscope.terminal import printable

SEVERITY_STYLE = {Severity.INFO: "cyan", Severity.WARNING: "yellow", Severity.ERROR: "bold red"}
MAX_JOURNEYS_PER_FLOW = 50
MAX_FLOWS = 200


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def duration(ns: int | None) -> str:
    """212000 -> '212 us'; 1500000 -> '1.50 ms'."""
    if ns is None:
        return "?"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns} ns"
    if ns < 1_000_000:
        return f"{sign}{ns / 1_000:.0f} us"
    if ns < 1_000_000_000:
        return f"{sign}{ns / 1_000_000:.2f} ms"
    return f"{sign}{ns / 1_000_000_000:.3f} s"


def delay(ns: int | None) -> str:
    """Time since the previous hop, signed: '+9 us'; '-3 us' between nodes whose clocks are aligned only that well."""
    if ns is None:
        return "-"
    return ("+" if ns >= 0 else "") + duration(ns)


def timestamp(ns: int | None, clock: Clock) -> str:
    if ns is None:
        return "-"
    if clock is Clock.RELATIVE:
        return f"+{ns / 1e9:.6f}"
    secs, frac = divmod(ns, 1_000_000_000)
    if clock is Clock.EPOCH:
        import datetime as dt

        day = dt.datetime.fromtimestamp(secs, tz=dt.timezone.utc)
        return f"{day:%Y-%m-%d %H:%M:%S}.{frac // 1000:06d}"
    secs %= 86_400
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{frac // 1000:06d}"


class _Lines:
    def __init__(self) -> None:
        self.out: list[Text] = []

    def add(self, text: str = "", style: str = "") -> None:
        self.out.append(Text(printable(text), style=style))

    def parts(self, *parts: tuple[str, str]) -> None:
        line = Text()
        for text, style in parts:
            line.append(printable(text), style=style)
        self.out.append(line)


def lines(report: Report) -> list[Text]:
    out = _Lines()
    inputs = ", ".join(f"{i.name} ({i.format}, {i.packets} packets{', node ' + i.node if i.node else ''})" for i in report.inputs)
    out.add(f"cniscope: {report.table.height} sightings from {inputs}", "bold")
    out.add(f"{_count(len(report.journeys), 'packet')} followed (journeys), {_count(len(report.flows), 'conversation')}")
    out.add()
    _model(out, report)
    clocks = {inp.index: inp.clock for inp in report.inputs}
    input_of = report.table["input"].to_list() if report.table.height else []
    journeys = {j.id: j for j in report.journeys}
    aligned = report.aligned()
    for flow in report.flows[:MAX_FLOWS]:
        _flow(out, flow, journeys, clocks, input_of, aligned)
    if len(report.flows) > MAX_FLOWS:
        out.add(f"... {len(report.flows) - MAX_FLOWS} more conversations (see --json)", "dim")
        out.add()
    if report.clocks:
        out.add("Clocks", "bold underline")
        for c in report.clocks:
            out.add(f"  {c.node}: {duration(c.offset_ns)} relative to {c.reference} (+/- {duration(c.uncertainty_ns)}, {c.method}, {c.samples} samples)")
        out.add()
    _findings(out, report.findings)
    for warning in report.warnings:
        out.add(f"warning: {warning}", "yellow")
    return out.out


def _model(out: _Lines, report: Report) -> None:
    m = report.model
    how = "forced by --model" if m.forced else f"confidence {m.confidence:.0%}"
    text = f"Network model: {m.name} ({how})"
    if m.runner_up:
        text += f"; runner-up {m.runner_up}"
    out.parts(("Network model: ", "bold"), (text.removeprefix("Network model: "), "bold green" if m.name != "unknown" else "bold yellow"))
    for line in m.evidence:
        out.add(f"  - {line}")
    if m.service_proxy:
        out.add(f"  services: {m.service_proxy}")
    out.add()


def flow_facts(flow: Flow) -> list[str]:
    """The one-line summary of a conversation, as the text and HTML reports show it."""
    facts = [f"{flow.packets} packets", f"{flow.bytes} payload bytes"]
    if "syn_to_synack_ns" in flow.handshake:
        facts.append(f"SYN->SYN-ACK {duration(flow.handshake['syn_to_synack_ns'])}")
    if "synack_to_ack_ns" in flow.handshake:
        facts.append(f"SYN-ACK->ACK {duration(flow.handshake['synack_to_ack_ns'])}")
    facts.append(f"{flow.retransmissions} retransmissions")
    if flow.out_of_order:
        facts.append(f"{flow.out_of_order} out of order")
    if flow.zero_windows:
        facts.append(f"{flow.zero_windows} zero windows")
    if flow.resets:
        facts.append(f"{len(flow.resets)} resets")
    return facts


def between_nodes(before: Hop, hop: Hop, aligned: dict[str, int]) -> str:
    """How far a delay from one node to another can be trusted: the two clocks' alignment ('' on one node)."""
    if not before.node or not hop.node or before.node == hop.node:
        return ""
    if before.node not in aligned or hop.node not in aligned:
        return "clocks not aligned"
    return f"clocks +/- {duration(aligned[before.node] + aligned[hop.node])}"


def _flow(out: _Lines, flow: Flow, journeys: dict[int, Journey], clocks: dict[int, Clock], input_of: list[int],
          aligned: dict[str, int]) -> None:
    out.parts((f"Conversation {flow.id}: ", "bold"), (f"{flow.proto.upper()} {flow.client} <-> {flow.server}", "bold cyan"),
              (f"  [{flow.state}]", "magenta"))
    if len(flow.legs) > 1:
        out.add("  legs (NAT): " + "  |  ".join(f"{a} -> {b}" for a, b in flow.legs))
    out.add("  " + ", ".join(flow_facts(flow)) + (" (" + "; ".join(flow.notes) + ")" if flow.notes else ""))
    shown = [journeys[j] for j in flow.journeys if j in journeys][:MAX_JOURNEYS_PER_FLOW]
    for journey in shown:
        tag = f"  (re-send of packet {journey.retransmission_of})" if journey.retransmission_of is not None else ""
        out.parts((f"  packet {journey.id}: ", "bold"), (journey.summary, ""), (tag, "yellow"),
                  (f"  seen {len(journey.hops)}x", "dim"))
        for n, hop in enumerate(journey.hops, 1):
            clock = clocks.get(input_of[hop.row], Clock.EPOCH) if hop.row < len(input_of) else Clock.EPOCH
            when = timestamp(hop.ts, clock) if n == 1 else delay(hop.delay_ns)
            role = f"  {hop.role}" if hop.role else ""
            changed = "  " + "; ".join(str(c) for c in hop.changes) if hop.changes else ""
            across = between_nodes(journey.hops[n - 2], hop, aligned) if n > 1 else ""
            out.parts((f"    {n}. ", "dim"), (f"{hop.point:<28}", ""), (f" {when:>17}", "green"), (f" ({across})" if across else "", "dim"),
                      (role, "cyan"), (changed, "yellow"))
    if len(flow.journeys) > len(shown):
        out.add(f"  ... {len(flow.journeys) - len(shown)} more packets", "dim")
    out.add()


def _findings(out: _Lines, findings: list[Finding]) -> None:
    out.add(f"Findings ({len(findings)})", "bold underline")
    if not findings:
        out.add("  none")
    for f in sorted(findings, key=lambda f: -f.severity.rank):
        where = " @ " + " ".join(x for x in (f.node, f.iface) if x) if (f.node or f.iface) else ""
        out.parts((f"  [{f.severity.value}] ", SEVERITY_STYLE[f.severity]), (f"{f.kind.value}{where}: ", "bold"), (f.title, ""))
        if f.explanation:
            out.add(f"      {f.explanation}")
        if f.next_step:
            out.add(f"      next: {f.next_step}", "dim")
        if f.journeys:
            out.add(f"      packets: {', '.join(str(j) for j in f.journeys[:12])}{' ...' if len(f.journeys) > 12 else ''}", "dim")
    out.add()


def render(report: Report) -> str:
    """Plain text, no colour: what goes to pipes and golden files."""
    return "\n".join(line.plain.rstrip() for line in lines(report)) + "\n"


def plain_wanted(console: Console) -> bool:
    """No styling: not a terminal, a dumb one, or NO_COLOR set (rich alone would still print bold there)."""
    return not console.is_terminal or console.is_dumb_terminal or console.no_color or "NO_COLOR" in os.environ


def show(report: Report, console: Console | None = None) -> None:
    """Print with colour where the terminal supports it, plain text (as `render`) where it does not."""
    console = console or Console(highlight=False, soft_wrap=True)
    if plain_wanted(console):
        console.file.write(render(report))
        console.file.flush()
        return
    for line in lines(report):
        console.print(line, soft_wrap=True)


PROGRESS_MIN_BYTES = 8 << 20  # inputs smaller than this read too fast to need a progress line


class Progress:
    """A one-line status on standard error while inputs are read and analysed (a no-op off a terminal).

        with Progress(specs) as progress:
            capture = progress.read(specs)
            progress.stage("correlating")
    """

    def __init__(self, specs: list[InputSpec], console: Console | None = None, min_bytes: int = PROGRESS_MIN_BYTES) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        sizes = [_size(spec) for spec in specs]
        long = any(size is None for size in sizes) or sum(s for s in sizes if s is not None) >= min_bytes
        self.active = long and not plain_wanted(self.console)
        self.live: Live | None = None
        self.started = time.monotonic()

    def __enter__(self) -> Progress:
        if self.active:
            self.live = Live(Spinner("dots", "starting"), console=self.console, transient=True, refresh_per_second=8)
            self.live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.stop()

    def stage(self, text: str) -> None:
        if self.live is not None:
            self.live.update(Spinner("dots", _Elapsed(text, self.started)), refresh=True)

    def read(self, specs: list[InputSpec]) -> Capture:
        """`cniscope.sources.read`, saying which input, how many packets so far, and where the reader knows it,
        the share of the input read and when reading will end at this pace."""
        started = time.monotonic()
        sizes = [_size(spec) or 0 for spec in specs]
        before = {spec.path: sum(sizes[:i]) for i, spec in enumerate(specs)}

        def batch(spec: InputSpec, info: InputInfo) -> None:
            text = f"reading {spec.path}: {info.packets:,} packets"
            if info.done is not None and sum(sizes):
                share = (before[spec.path] + info.done * (_size(spec) or 0)) / sum(sizes)  # of all inputs' bytes
                elapsed = time.monotonic() - started
                eta = f", about {elapsed * (1 - share) / share:.0f} s left" if share > 0.02 else ""
                text += f" ({share:.0%}{eta})"
            self.stage(text)

        return read(specs, on_batch=batch)


class _Elapsed:
    """A stage and the time since the start, measured each time the line is redrawn."""

    def __init__(self, text: str, started: float) -> None:
        self.text, self.started = text, started

    def __rich__(self) -> Text:
        return Text.assemble(self.text, (f"  {time.monotonic() - self.started:.1f} s", "dim"))


def _size(spec: InputSpec) -> int | None:
    """Bytes of an input file; None for standard input (length unknown: could be long)."""
    if spec.path == "-":
        return None
    try:
        return os.path.getsize(spec.path)
    except OSError:
        return 0
