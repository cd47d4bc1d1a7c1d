"""Plan steps: what the executor does to build a lab, as plain data (a plan is a list of them; `capture/plan.py` is the capture's).

A plan is a list of these frozen steps: a `host.Command` (the one step type the
capture's plans are made of too), or one of the kinds below, which the
executor turns into commands, batched (`ip -batch` for a namespace's links,
addresses and routes). `render()` prints each as the command line the executor
runs (what `lab up --dry-run` shows); tests read plans without root. Only the
executor (cniscope.lab.executor) applies them, through cniscope.host.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from cniscope.host import Command


@dataclass(frozen=True)
class Netns:
    """Create a network namespace (its name carries the lab's prefix)."""

    name: str


@dataclass(frozen=True)
class Ip:
    """`ip -n NS ARGS...` (link, addr, route, neigh)."""

    ns: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Bridge:
    """`bridge -n NS ARGS...` (FDB entries of VXLAN devices)."""

    ns: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Sysctl:
    ns: str
    key: str
    value: str


@dataclass(frozen=True)
class Iptables:
    """An `iptables-restore --noflush` payload (whole tables with COMMIT)."""

    ns: str
    payload: str


@dataclass(frozen=True)
class File:
    """A file under the lab's state dir (daemon configs, web roots)."""

    path: str
    content: str


@dataclass(frozen=True)
class Daemon:
    """A daemon that forks into the background and writes `pidfile`; the lab records its pid."""

    ns: str
    name: str
    argv: tuple[str, ...]
    pidfile: str


@dataclass(frozen=True)
class WaitRoutes:
    """Wait until the routing daemon has installed routes to every prefix (BGP convergence)."""

    ns: str
    prefixes: tuple[str, ...]
    timeout: float = 30.0


Step = Netns | Ip | Bridge | Sysctl | Iptables | File | Daemon | Command | WaitRoutes


def in_ns(ns: str, argv: tuple[str, ...], purpose: str) -> Command:
    """A one-off command inside a namespace (conntrack -F, ovs-vsctl ...)."""
    return Command(("ip", "netns", "exec", ns, *argv), purpose)


def _q(args: tuple[str, ...] | list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def render(step: Step) -> str:
    """The step as the command line the executor runs."""
    match step:
        case Netns(name):
            return f"ip netns add {name}"
        case Ip(ns, args):
            return f"ip -n {ns} {_q(args)}"
        case Bridge(ns, args):
            return f"bridge -n {ns} {_q(args)}"
        case Sysctl(ns, key, value):
            return f"ip netns exec {ns} sysctl -q -w {key}={value}"
        case Iptables(ns, payload):
            body = "\n".join("    " + line for line in payload.splitlines())
            return f"ip netns exec {ns} iptables-restore --noflush <<EOF\n{body}\n    EOF"
        case File(path, content):
            return f"write {path} ({len(content.encode())} bytes)"
        case Daemon(ns, name, argv, pidfile):
            return f"ip netns exec {ns} {_q(argv)}  # {name}, pid in {pidfile}"
        case Command():
            return step.render()
        case WaitRoutes(ns, prefixes, timeout):
            return f"# wait up to {timeout:g} s for routes in {ns}: {' '.join(prefixes)}"
    raise TypeError(f"not a plan step: {step!r}")


def render_plan(steps: list[Step]) -> str:
    return "\n".join(render(step) for step in steps) + "\n"
