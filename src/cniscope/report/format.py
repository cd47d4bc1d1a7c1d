"""Words for numbers and times, shared by the text, HTML and pcapng renderers."""

from __future__ import annotations

import datetime as dt

from cniscope.packets.schema import Clock
from cniscope.results import Flow


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
        day = dt.datetime.fromtimestamp(secs, tz=dt.UTC)
        return f"{day:%Y-%m-%d %H:%M:%S}.{frac // 1000:06d}"
    secs %= 86_400
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{frac // 1000:06d}"


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
