"""The thin executor: apply plan steps through cniscope.host (ip, bridge, sysctl, iptables-restore, daemons).

Consecutive `Ip`/`Bridge`/`Netns` steps for one namespace go to one
`ip -batch` process and consecutive sysctls to one `sysctl` process: a lab of
three nodes is a few dozen processes, not hundreds. Every command is an
argument list; nothing goes through a shell. A step that fails is this
machine's to fix (EnvironmentProblem, exit 5): the message names the command,
what it said and the steps being applied.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path

from cniscope import host
from cniscope.errors import EnvironmentProblem
from cniscope.host import Command
from cniscope.lab.steps import Bridge, Daemon, File, Ip, Iptables, Netns, Step, Sysctl, WaitRoutes, render


def _group_key(step: Step) -> tuple[str, str]:
    match step:
        case Netns():
            return ("netns", "")
        case Ip(ns) | Bridge(ns) | Sysctl(ns):
            return (type(step).__name__, ns)
        case Daemon():
            return ("daemons", "")
    return ("single", str(id(step)))


def apply(steps: list[Step]) -> dict[str, int]:
    """Apply the steps in order; return the pids of the daemons started, by daemon name."""
    pids: dict[str, int] = {}
    for _, group in groupby(steps, key=_group_key):
        batch = list(group)
        daemons = [step for step in batch if isinstance(step, Daemon)]
        command = _batched(batch)
        if daemons:
            pids.update(start_daemons(daemons))
        elif command is not None:
            _batch(command, batch)
        else:
            for step in batch:
                _single(step)
    return pids


def _batched(batch: list[Step]) -> Command | None:
    """The one command that applies a run of namespace creations, or of one namespace's ip, bridge or sysctl steps."""
    match batch[0]:
        case Netns():
            return Command(("ip", "-batch", "-"), "create namespaces",
                           _lines(f"netns add {s.name}" for s in batch if isinstance(s, Netns)))
        case Ip(ns):
            return Command(("ip", "-n", ns, "-batch", "-"), f"ip -n {ns} -batch",
                           _lines(" ".join(s.args) for s in batch if isinstance(s, Ip)))
        case Bridge(ns):
            return Command(("bridge", "-n", ns, "-batch", "-"), f"bridge -n {ns} -batch",
                           _lines(" ".join(s.args) for s in batch if isinstance(s, Bridge)))
        case Sysctl(ns):
            settings = (f"{s.key}={s.value}" for s in batch if isinstance(s, Sysctl))
            return Command(("ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings), f"sysctl in {ns}")
    return None


def _lines(lines: Iterable[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _batch(command: Command, steps: list[Step]) -> None:
    try:
        host.run(command)
    except EnvironmentProblem as exc:
        shown = "\n  ".join(render(s) for s in steps)
        raise EnvironmentProblem(f"{exc}\n  while applying:\n  {shown}") from exc


def _single(step: Step) -> None:
    match step:
        case File(path, content):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        case Iptables(ns, payload):
            _batch(Command(("ip", "netns", "exec", ns, "iptables-restore", "--noflush"), f"iptables-restore in {ns}", payload),
                   [step])
        case Command():
            _batch(step, [step])
        case WaitRoutes(ns, prefixes, timeout):
            wait_routes(ns, prefixes, timeout)
        case _:
            raise TypeError(f"not a plan step: {step!r}")


def start_daemons(daemons: list[Daemon], timeout: float = 10) -> dict[str, int]:
    """Start self-daemonizing programs together (each in its namespace); return the pids they write, by name."""
    for daemon in daemons:
        Path(daemon.pidfile).unlink(missing_ok=True)
    procs = [host.spawn(Command(("ip", "netns", "exec", d.ns, *d.argv), f"start {d.name}")) for d in daemons]
    failures = []
    for daemon, proc in zip(daemons, procs, strict=True):
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except host.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            failures.append(f"{daemon.name} in {daemon.ns}: did not go to the background within {timeout:g} s")
            continue
        if proc.returncode != 0:
            failures.append(f"{daemon.name} in {daemon.ns}: exit {proc.returncode}: {stderr.decode(errors='replace').strip()}")
    if failures:
        raise EnvironmentProblem("; ".join(failures))
    pids: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    for daemon in daemons:
        pidfile = Path(daemon.pidfile)
        while daemon.name not in pids:
            text = pidfile.read_text().strip() if pidfile.exists() else ""
            if text.isdigit():
                pids[daemon.name] = int(text)
            elif time.monotonic() > deadline:
                raise EnvironmentProblem(f"{daemon.name} in {daemon.ns}: started but wrote no pid to {pidfile} within {timeout:g} s")
            else:
                time.sleep(0.005)
    return pids


def routes(ns: str) -> set[str]:
    """Destinations of the main routing table of `ns`."""
    out = host.run(Command(("ip", "-n", ns, "-j", "route", "show"), f"list the routes of {ns}")).stdout
    return {entry["dst"] if "/" in entry["dst"] or entry["dst"] == "default" else entry["dst"] + "/32" for entry in json.loads(out)}


def wait_routes(ns: str, prefixes: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        missing = set(prefixes) - routes(ns)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"routes in {ns}: {', '.join(sorted(missing))} not learned within {timeout:g} s (BGP did not converge)")
        time.sleep(0.05)
