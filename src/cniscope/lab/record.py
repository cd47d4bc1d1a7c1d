"""Recording in a lab: what `--via lab:NAME` reaches, and captures on lab nodes while an action runs.

A lab's nodes are network namespaces named with the lab's prefix, so `cniscope
capture --via lab:NAME` is the capture package's netns transport with that
prefix (`lab_transport`; the capture package knows nothing of labs). `capture`
runs the same runner, manifest and pcapng (one interface block per real
interface) over them, driven by an action instead of a duration. tcpdump runs in immediate mode: a lab scenario is a handful of
packets, each handed over at once, so nothing waits for tcpdump's 1 s block
timeout at stop (bursts of thousands drop in immediate mode, which is why
`cniscope capture` does not use it; see `TcpdumpSettings`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cniscope.capture import runner
from cniscope.capture.nodeside import TcpdumpSettings
from cniscope.capture.plan import Limits, build
from cniscope.capture.transports import Netns
from cniscope.lab.cluster import Lab
from cniscope.lab.naming import check_name, lab_prefix

T = TypeVar("T")
TCPDUMP_LIMIT_S = 600  # the nodes stop tcpdump by themselves this long after start


@dataclass
class NodeCapture:
    node: str
    path: Path
    packets: int = 0
    dropped: int | None = None  # tcpdump's "dropped by kernel"
    warnings: list[str] = field(default_factory=list)


def lab_transport(name: str) -> Netns:
    """`--via lab:NAME`: the nodes of lab NAME (refused, exit 2, unless NAME is a lab name)."""
    return Netns(prefix=lab_prefix(check_name(name)), lab=name)


def capture(
    lab: Lab, nodes: list[str], outdir: str | Path, action: Callable[[], T], bpf: str | None = None, force: bool = False
) -> tuple[list[NodeCapture], T]:
    """Run `action` while capturing on `nodes` (only what `bpf` matches, if given); return per-node results and the action's value."""
    for node in nodes:
        lab.spec.node(node)  # raises naming the lab's nodes
    plan = build(lab_transport(lab.name), nodes, Limits(duration_s=TCPDUMP_LIMIT_S), bpf,
                 TcpdumpSettings(immediate=True))
    values: list[T] = []
    manifest = runner.run(plan, outdir, action=lambda: values.append(action()), force=force)
    results = [
        NodeCapture(node["name"], Path(outdir) / node["file"], node["packets"], node["tcpdump"]["dropped"], node["warnings"])
        for node in manifest["nodes"]
    ]
    return results, values[0]
