"""The thin executor: apply plan steps with ip, bridge, sysctl, iptables-restore.

Consecutive `Ip`/`Bridge`/`Netns` steps for one namespace go to one
`ip -batch` process and consecutive sysctls to one `sysctl` process: a lab of
three nodes is a few dozen processes, not hundreds. Every command is an
argument list; nothing goes through a shell.
"""

from __future__ import annotations

import json
import subprocess
import time
from itertools import groupby
from pathlib import Path

from cniscope.errors import EnvironmentProblem
from cniscope.lab.plan import Bridge, Daemon, Exec, File, Ip, Iptables, Netns, Step, Sysctl, WaitRoutes, render


class StepFailed(EnvironmentProblem):
    """A plan step failed: the message names the command and what it said."""


def run(argv: list[str], stdin: str | None = None, what: str | None = None, timeout: float = 30) -> str:
    try:
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"{what or ' '.join(argv)}: no answer after {timeout:g} s") from exc
    if result.returncode != 0:
        raise StepFailed(f"{what or ' '.join(argv)}: exit {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


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
    for (kind, ns), group in groupby(steps, key=_group_key):
        batch = list(group)
        match kind:
            case "netns":
                _batch(["ip", "-batch", "-"], [f"netns add {s.name}" for s in batch], batch)  # type: ignore[union-attr]
            case "Ip":
                _batch(["ip", "-n", ns, "-batch", "-"], [" ".join(s.args) for s in batch], batch)  # type: ignore[union-attr]
            case "Bridge":
                _batch(["bridge", "-n", ns, "-batch", "-"], [" ".join(s.args) for s in batch], batch)  # type: ignore[union-attr]
            case "Sysctl":
                run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *(f"{s.key}={s.value}" for s in batch)])  # type: ignore[union-attr]
            case "daemons":
                pids.update(start_daemons(batch))  # type: ignore[arg-type]
            case _:
                for step in batch:
                    _single(step)
    return pids


def _batch(argv: list[str], lines: list[str], steps: list[Step]) -> None:
    try:
        run(argv, stdin="\n".join(lines) + "\n", what=" ".join(argv[:3]) + " -batch")
    except StepFailed as exc:
        shown = "\n  ".join(render(s) for s in steps)
        raise StepFailed(f"{exc}\n  while applying:\n  {shown}") from exc


def _single(step: Step) -> None:
    match step:
        case File(path, content):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        case Iptables(ns, payload):
            run(["ip", "netns", "exec", ns, "iptables-restore", "--noflush"], stdin=payload, what=f"iptables-restore in {ns}")
        case Exec(ns, argv):
            run(["ip", "netns", "exec", ns, *argv])
        case WaitRoutes(ns, prefixes, timeout):
            wait_routes(ns, prefixes, timeout)
        case _:
            raise TypeError(f"not a plan step: {step!r}")


def start_daemons(daemons: list[Daemon], timeout: float = 10) -> dict[str, int]:
    """Start self-daemonizing programs together (each in its namespace); return the pids they write, by name."""
    for daemon in daemons:
        Path(daemon.pidfile).unlink(missing_ok=True)
    procs = [
        subprocess.Popen(["ip", "netns", "exec", d.ns, *d.argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for d in daemons
    ]
    failures = []
    for daemon, proc in zip(daemons, procs, strict=True):
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            failures.append(f"{daemon.name} in {daemon.ns}: did not go to the background within {timeout:g} s")
            continue
        if proc.returncode != 0:
            failures.append(f"{daemon.name} in {daemon.ns}: exit {proc.returncode}: {stderr.strip()}")
    if failures:
        raise StepFailed("; ".join(failures))
    pids: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    for daemon in daemons:
        pidfile = Path(daemon.pidfile)
        while daemon.name not in pids:
            text = pidfile.read_text().strip() if pidfile.exists() else ""
            if text.isdigit():
                pids[daemon.name] = int(text)
            elif time.monotonic() > deadline:
                raise StepFailed(f"{daemon.name} in {daemon.ns}: started but wrote no pid to {pidfile} within {timeout:g} s")
            else:
                time.sleep(0.005)
    return pids


def routes(ns: str) -> set[str]:
    """Destinations of the main routing table of `ns`."""
    out = run(["ip", "-n", ns, "-j", "route", "show"])
    return {entry["dst"] if "/" in entry["dst"] or entry["dst"] == "default" else entry["dst"] + "/32" for entry in json.loads(out)}


def wait_routes(ns: str, prefixes: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        missing = set(prefixes) - routes(ns)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise StepFailed(f"routes in {ns}: {', '.join(sorted(missing))} not learned within {timeout:g} s (BGP did not converge)")
        time.sleep(0.05)
