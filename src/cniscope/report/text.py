"""The terminal report, in the spirit of the seed's study note, answer first.

The findings come first, then a summary of the capture (nodes and their
interfaces, the network model with its evidence, clocks, the conversations
with problems ranked), then conversations, problems first: each with its
summary (legs, state, handshake, bytes, re-sends) and its packets, each with
every place it was seen, the delay of each hop and what changed. `View` bounds
the page (a 10M-packet capture gives a page, not a book); `--all` lifts the
bounds. Warnings about the inputs go to standard error (the CLI), not here.

`lines()` builds styled lines (rich `Text`), their control characters escaped
(names from a capture may carry terminal escapes); `render()` gives plain text (for
golden tests and pipes), `show()` prints with colour where the terminal has it
and plain text where it does not (a pipe or file, NO_COLOR set, TERM=dumb).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from cniscope.packets.schema import Clock
from cniscope.report.format import delay, duration, flow_facts, timestamp
from cniscope.results import Finding, Flow, Hop, Journey, Report, Severity
from cniscope.terminal import printable

# what tcpdump -i any's direction column means, beside In and Out (sent or received by this host)
DIRECTION_LETTERS = {"P": "to another host (seen in passing: promiscuous, or a bridge port)", "B": "broadcast",
                     "M": "multicast"}
SEVERITY_STYLE = {Severity.INFO: "cyan", Severity.WARNING: "yellow", Severity.ERROR: "bold red"}


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def natural(text: str) -> tuple[int | str, ...]:
    """Sort key that puts ifindex 2 before ifindex 10 and veth2 before veth10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


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


@dataclass(frozen=True)
class View:
    """How much of the report the terminal gets. By default the answer comes first and the page stays short
    whatever the capture's size: findings, a summary, then conversations (problems first) until `lines` is spent."""

    everything: bool = False  # --all: every finding, conversation and packet
    findings_only: bool = False
    lines: int = 250  # the page's budget (conversations stop there; at least one is shown)
    findings: int = 25  # findings listed one by one, the most severe first
    problems: int = 10  # problem conversations ranked in the summary
    packets: int = 20  # packets shown per conversation


def lines(report: Report, view: View = View()) -> list[Text]:
    out = _Lines()
    inputs = ", ".join(f"{i.name} ({i.format}, {i.packets:,} packets{', node ' + i.node if i.node else ''})" for i in report.inputs)
    out.add(f"cniscope: {report.table.height:,} sightings from {inputs}", "bold")
    if report.selection is not None:
        sel = report.selection
        out.add(f"selected by {sel.text}: {report.table.height:,} of {sel.sightings:,} sightings, "
                f"{report.journeys_total:,} of {sel.journeys:,} packets, {report.flows_total:,} of {sel.flows:,} conversations "
                "(findings judge the selected packets only)")
    else:
        out.add(f"{_count(report.journeys_total, 'packet')} followed (journeys), {_count(report.flows_total, 'conversation')}")
    out.add()
    _findings(out, report.findings, None if view.everything else view.findings)
    if view.findings_only:
        return out.out
    _summary(out, report, view)
    if view.everything:
        shown = _conversations(out, report, view, budget=None)
    else:
        shown = _conversations(out, report, view, budget=max(view.lines - len(out.out), 0))
    if shown < report.flows_total:
        left = report.flows_total - shown
        out.add(f"... {_count(left, 'more conversation')}: --all prints every one, --flow ID one with all its packets, "
                "--filter EXPR a part (host, port, node, iface ...), --json all as data", "dim")
        out.add()
    return out.out


def _summary(out: _Lines, report: Report, view: View) -> None:
    out.add("Capture", "bold underline")
    nodes: dict[str | None, list[str]] = {}
    for p in report.points:
        nodes.setdefault(p.node, []).extend([p.iface] if p.iface else [])
    for node, ifaces in nodes.items():
        ifaces.sort(key=natural)
        listed = ", ".join(ifaces[:12]) + (f" and {len(ifaces) - 12} more" if len(ifaces) > 12 else "")
        named = f"{_count(len(ifaces), 'interface')} ({listed})" if ifaces else "interfaces not named (copies told apart by order)"
        out.add(f"  {node or '(node not named)'}: {named}")
    _model(out, report)
    if report.clocks:
        out.add("  clocks:")
        for c in report.clocks:
            out.add(f"    {c.node}: {duration(c.offset_ns)} relative to {c.reference} (+/- {duration(c.uncertainty_ns)}, {c.method}, {c.samples} samples)")
    letters = {h.direction for j in report.journeys for h in j.hops} & set(DIRECTION_LETTERS)
    if letters:
        out.add("  tcpdump's direction letters: " + "; ".join(f"{d} = {DIRECTION_LETTERS[d]}" for d in DIRECTION_LETTERS if d in letters))
    problems = report.problem_flows()
    flows = {f.id: f for f in report.flows}
    if problems:
        out.add(f"  conversations with problems ({len(problems):,}), worst first:")
    limit = None if view.everything else view.problems
    for flow_id, found in problems[:limit]:
        flow = flows.get(flow_id)
        what = f"{flow.proto.upper()} {flow.client} <-> {flow.server} [{flow.state}]" if flow else ""
        kinds = ", ".join(dict.fromkeys(f"{f.severity.value} {f.kind.value}" for f in found))
        out.add(f"    conversation {flow_id}: {what}  {kinds}")
    if limit is not None and len(problems) > limit:
        out.add(f"    ... {len(problems) - limit:,} more (--all)", "dim")
    out.add()


def _conversations(out: _Lines, report: Report, view: View, budget: int | None) -> int:
    """Conversations with problems first, then the others in order; stops when `budget` lines are spent."""
    clocks = {inp.index: inp.clock for inp in report.inputs}
    input_of = report.table["input"].to_list() if report.table.height else []
    journeys = {j.id: j for j in report.journeys}
    aligned = report.aligned()
    ranked = [f for f, _ in report.problem_flows()]
    first = set(ranked)
    flows = {f.id: f for f in report.flows}
    order = [flows[f] for f in ranked if f in flows] + [f for f in report.flows if f.id not in first]
    section = _Lines()
    shown = 0
    packets = None if view.everything or report.selection is not None and report.flows_total == 1 else view.packets
    for flow in order:
        block = _Lines()
        _flow(block, flow, journeys, clocks, input_of, aligned, packets)
        if budget is not None and shown and len(section.out) + len(block.out) > budget:
            break
        section.out.extend(block.out)
        shown += 1
    if report.flows_total:
        more = "" if shown == report.flows_total else ", problems first"
        out.add(f"Conversations (showing {shown:,} of {report.flows_total:,}{more})", "bold underline")
        out.out.extend(section.out)
    return shown


def _model(out: _Lines, report: Report) -> None:
    m = report.model
    how = "forced by --model" if m.forced else f"confidence {m.confidence:.0%}"
    text = f"Network model: {m.name} ({how})"
    if m.runner_up:
        text += f"; runner-up {m.runner_up}"
    out.parts(("  network model: ", "bold"), (text.removeprefix("Network model: "), "bold green" if m.name != "unknown" else "bold yellow"))
    for line in m.evidence:
        out.add(f"    - {line}")
    if m.service_proxy:
        out.add(f"    services: {m.service_proxy}")


def between_nodes(before: Hop, hop: Hop, aligned: dict[str, int]) -> str:
    """How far a delay from one node to another can be trusted: the two clocks' alignment ('' on one node)."""
    if not before.node or not hop.node or before.node == hop.node:
        return ""
    if before.node not in aligned or hop.node not in aligned:
        return "clocks not aligned"
    return f"clocks +/- {duration(aligned[before.node] + aligned[hop.node])}"


def _flow(out: _Lines, flow: Flow, journeys: dict[int, Journey], clocks: dict[int, Clock], input_of: list[int],
          aligned: dict[str, int], limit: int | None) -> None:
    out.parts((f"Conversation {flow.id}: ", "bold"), (f"{flow.proto.upper()} {flow.client} <-> {flow.server}", "bold cyan"),
              (f"  [{flow.state}]", "magenta"))
    if len(flow.legs) > 1:
        out.add("  legs (NAT): " + "  |  ".join(f"{a} -> {b}" for a, b in flow.legs))
    out.add("  " + ", ".join(flow_facts(flow)) + (" (" + "; ".join(flow.notes) + ")" if flow.notes else ""))
    shown = [journeys[j] for j in flow.journeys if j in journeys][:limit]
    for journey in shown:
        tag = f"  (re-send of packet {journey.retransmission_of})" if journey.retransmission_of is not None else ""
        out.parts((f"  packet {journey.id}: ", "bold"), (journey.summary, ""), (tag, "yellow"),
                  (f"  seen {len(journey.hops)}x", "dim"))
        for n, hop in enumerate(journey.hops, 1):
            clock = clocks.get(input_of[hop.row], Clock.EPOCH) if hop.row < len(input_of) else Clock.EPOCH
            when = timestamp(hop.ts, clock) if n == 1 else delay(hop.delay_ns)
            role = f"  {hop.role}" if hop.role else ""
            changed = "  " + "; ".join(str(c) for c in hop.changes) if hop.changes else ""
            sent = "  " + hop.sent_to_text() if hop.mac_to else ""
            across = between_nodes(journey.hops[n - 2], hop, aligned) if n > 1 else ""
            out.parts((f"    {n}. ", "dim"), (f"{hop.point:<28}", ""), (f" {when:>17}", "green"), (f" ({across})" if across else "", "dim"),
                      (role, "cyan"), (changed, "yellow"), (sent, "magenta"))
    if flow.packets > len(shown):
        out.add(f"  ... {_count(flow.packets - len(shown), 'more packet')}: --flow {flow.id} shows them all", "dim")
    out.add()


def _findings(out: _Lines, findings: list[Finding], limit: int | None) -> None:
    out.add(f"Findings ({len(findings)})", "bold underline")
    if not findings:
        out.add("  none")
    ranked = sorted(findings, key=lambda f: -f.severity.rank)
    for f in ranked[:limit]:
        where = " @ " + " ".join(x for x in (f.node, f.iface) if x) if (f.node or f.iface) else ""
        out.parts((f"  [{f.severity.value}] ", SEVERITY_STYLE[f.severity]), (f"{f.kind.value}{where}: ", "bold"), (f.title, ""))
        if f.explanation:
            out.add(f"      {f.explanation}")
        if f.next_step:
            out.add(f"      next: {f.next_step}", "dim")
        if f.journeys:
            out.add(f"      packets: {', '.join(str(j) for j in f.journeys[:12])}{' ...' if len(f.journeys) > 12 else ''}", "dim")
    if limit is not None and len(ranked) > limit:
        out.add(f"  ... {_count(len(ranked) - limit, 'more finding')} (--all, --findings-only, --json)", "dim")
    out.add()


def render(report: Report, view: View = View()) -> str:
    """Plain text, no colour: what goes to pipes and golden files."""
    return "\n".join(line.plain.rstrip() for line in lines(report, view)) + "\n"


def plain_wanted(console: Console) -> bool:
    """No styling: not a terminal, a dumb one, or NO_COLOR set (rich alone would still print bold there)."""
    return not console.is_terminal or console.is_dumb_terminal or console.no_color or "NO_COLOR" in os.environ


def show(report: Report, console: Console | None = None, view: View = View()) -> None:
    """Print with colour where the terminal supports it, plain text (as `render`) where it does not."""
    console = console or Console(highlight=False, soft_wrap=True)
    if plain_wanted(console):
        console.file.write(render(report, view))
        console.file.flush()
        return
    for line in lines(report, view):
        console.print(line, soft_wrap=True)
