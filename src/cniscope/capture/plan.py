"""A capture plan: for every node, the exact commands the runner will execute.

Pure data, built without touching any node, printable with `--dry-run`. Two
things are only known once the nodes answered the inventory: whether the
remote user needs `sudo` and, for `--pod`, the interface index to capture on;
`capture_step` builds the final tcpdump step from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cniscope.capture import nodeside
from cniscope.capture.transports import Transport, node_label
from cniscope.host import Command

DEFAULT_DURATION_S = 60
DEFAULT_MAX_SIZE_MB = 200


@dataclass(frozen=True)
class Limits:
    """Whichever comes first stops the capture on every node. Time and size are always bounded."""

    duration_s: float = DEFAULT_DURATION_S
    count: int | None = None  # per node: tcpdump -c
    max_size_mb: float = DEFAULT_MAX_SIZE_MB  # per node, bytes streamed back

    @property
    def node_limit_s(self) -> int:
        """The node stops tcpdump by itself this long after start, should this client vanish."""
        return int(self.duration_s) + nodeside.NODE_MARGIN_S


@dataclass(frozen=True)
class NodePlan:
    node: str  # as the transport addresses it (ssh: maybe user@host)
    label: str  # the node's name in files, sections and the manifest
    target: str
    setup: tuple[Command, ...]
    inventory: Command
    capture: Command  # as planned: no sudo, the user's filter
    stop_example: Command  # how the runner stops it, shown with pid 'PID'
    teardown: tuple[Command, ...]


@dataclass(frozen=True)
class Plan:
    transport: Transport
    nodes: tuple[NodePlan, ...]
    limits: Limits
    bpf: str | None
    settings: nodeside.TcpdumpSettings
    pods: tuple[tuple[str, str], ...] = field(default=())

    def render(self) -> str:
        lines = [
            f"capture plan: {len(self.nodes)} node(s) via {self.transport.kind}",
            f"  limits: duration {self.limits.duration_s:g} s, size {self.limits.max_size_mb:g} MB per node"
            + (f", {self.limits.count} packets per node" if self.limits.count else ""),
            f"  filter: {self.bpf or '(none)'}",
        ]
        if self.pods:
            lines.append("  pods: " + ", ".join(f"{ns}/{name}" for ns, name in self.pods)
                         + " (the filter becomes 'ifindex' of each pod's host side and the node NIC, found at run time)")
        for plan in self.nodes:
            lines.append(f"node {plan.label} ({plan.target}):")
            for step in (*plan.setup, plan.inventory, plan.capture, plan.stop_example, *plan.teardown):
                lines.append(f"  # {step.purpose}")
                lines.append(f"  {step.render()}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The same plan as data (`capture --dry-run --json`): every command as its argument list."""
        def step(s: Command) -> dict[str, Any]:
            return {"purpose": s.purpose, "argv": list(s.argv), "stdin": s.stdin}

        return {
            "transport": self.transport.describe(),
            "limits": {"duration_s": self.limits.duration_s, "max_size_mb": self.limits.max_size_mb, "count": self.limits.count},
            "filter": self.bpf,
            "pods": [f"{ns}/{name}" for ns, name in self.pods],
            "nodes": [{"name": n.label, "target": n.target,
                       "steps": [step(s) for s in (*n.setup, n.inventory, n.capture, n.stop_example, *n.teardown)]}
                      for n in self.nodes],
        }


def capture_step(
    transport: Transport, node: str, limits: Limits, settings: nodeside.TcpdumpSettings, bpf: str | None, sudo: bool
) -> Command:
    argv = nodeside.tcpdump_argv(settings, bpf, limits.node_limit_s, watch_stdin=transport.forwards_stdin)
    return Command(transport.wrap(node, argv, sudo=sudo), f"record on {node_label(node)} (pcap on stdout, pid on stderr)")


def stop_step(transport: Transport, node: str, pid: int | str, sudo: bool) -> Command:
    argv = nodeside.stop_argv(pid)
    return Command(transport.wrap(node, argv, sudo=sudo), f"stop tcpdump on {node_label(node)} (SIGTERM by pid)")


def build(
    transport: Transport,
    nodes: list[str],
    limits: Limits | None = None,
    bpf: str | None = None,
    settings: nodeside.TcpdumpSettings | None = None,
    pods: list[tuple[str, str]] | None = None,
) -> Plan:
    limits = limits or Limits()
    settings = settings or nodeside.TcpdumpSettings(count=limits.count)
    plans = []
    for node in nodes:
        plans.append(
            NodePlan(
                node=node,
                label=node_label(node),
                target=transport.target(node),
                setup=tuple(transport.setup(node, limits.node_limit_s)),
                inventory=Command(transport.wrap(node, nodeside.inventory_argv()), f"record {node_label(node)}'s interfaces, routes, sysctls, versions"),
                capture=capture_step(transport, node, limits, settings, bpf, sudo=False),
                stop_example=stop_step(transport, node, "PID", sudo=False),
                teardown=tuple(transport.teardown(node)),
            )
        )
    labels = [p.label for p in plans]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"node named twice: {', '.join(duplicates)}")
    return Plan(transport=transport, nodes=tuple(plans), limits=limits, bpf=bpf, settings=settings, pods=tuple(pods or ()))
