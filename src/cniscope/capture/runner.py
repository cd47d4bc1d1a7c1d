"""Execute a capture plan: start tcpdump on every node at once, stop all together, write pcapng + manifest.

Theory of operation
- Each node's tcpdump streams pcap to our stdout pipe (`-w -`), so nothing is
  written on the node's disk; we count the bytes to enforce --max-size.
- The node-side wrapper prints tcpdump's pid first ("cniscope-pid N" on
  stderr); stopping is always `kill -s TERM N` on the node, so tcpdump flushes
  and prints its drop counts. `timeout` on the node bounds it should we vanish.
- Children run in their own session: a terminal's Ctrl-C reaches only us, and
  we stop every node properly (SIGINT/SIGTERM to cniscope set a flag).
- Whatever happens after the first node started, `finally` stops every tcpdump
  by pid and runs every teardown step (kubectl: delete the pod).
- With an `action` (the lab's scenarios), the capture lasts as long as the
  action does, instead of until a limit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import io
import mmap
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from cniscope import __version__, host
from cniscope.capture import nodeside
from cniscope.capture.interfaces import NodeFacts, host_side, interface_table, merge_tables, parse_inventory
from cniscope.capture.manifest import MANIFEST, write_manifest
from cniscope.capture.plan import NodePlan, Plan, capture_step, stop_step
from cniscope.capture.pods import PodTarget
from cniscope.errors import CniscopeError, EnvironmentProblem, ExitCode, NodeProblem, OutputError
from cniscope.host import Blame, Command, Done
from cniscope.packets.kinds import LinkType
from cniscope.wire import pcap
from cniscope.wire.convert import ConvertResult, MergedCapture, sll2_pcap_to_pcapng
from cniscope.wire.pcapng import PcapngWriter

STEP_TIMEOUT_S = 150
START_TIMEOUT_S = 30
STOP_WAIT_S = 15
POLL_S = 0.05  # how often the capture looks at its limits, its nodes and the signals' flag
ACTION_SETTLE_S = 0.1  # after an action, let its last packets reach every node's tap
MERGED = "merged.pcapng"
PIPE_SIZE = 1 << 20
FULL_DISK_RESERVE = 128 << 10  # bytes of a node's raw pcap given back on a full disk, for the manifest
PCAP_HEADER = 24  # what a node's raw pcap keeps of itself at least on a full disk: a readable capture, if of 0 packets
T = TypeVar("T")


class CaptureFailed(NodeProblem):
    """A node could not be captured on (unreachable, no tcpdump, refused)."""


class FilterRejected(CniscopeError):
    """tcpdump could not compile the user's filter."""

    exit_code = ExitCode.USAGE


FILTER_ERROR = re.compile(r"syntax error|can't parse filter|illegal|unknown host|not a valid")
SUDO_SAID = re.compile(r"^sudo: ")
SUDO_HINT = (
    "The remote user is not root, so cniscope runs tcpdump through `sudo -n`, which needs a sudoers rule letting that user"
    " run sh as root without a password, e.g. `USER ALL=(root) NOPASSWD: /bin/sh` (docs/capture.md, ssh); or log in as root"
)


@dataclass
class NodeRun:
    plan: NodePlan
    raw: Path
    facts: NodeFacts = field(default_factory=NodeFacts)
    sudo: bool = False
    bpf: str | None = None
    step: Command | None = None
    proc: host.Process | None = None
    pid: int | None = None
    listening: threading.Event = field(default_factory=threading.Event)  # tcpdump said "listening on"
    answered: threading.Event = field(default_factory=threading.Event)  # listening, or its stderr ended
    bytes: int = 0
    stderr: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    stop_facts: NodeFacts | None = None
    warnings: list[str] = field(default_factory=list)
    stopped_by_us: bool = False
    write_error: str | None = None  # the output's disk full (what fit is kept)


def _parallel(fn: Callable[[NodeRun], T], runs: list[NodeRun]) -> list[T]:
    with ThreadPoolExecutor(max_workers=max(1, min(32, len(runs)))) as pool:
        return list(pool.map(fn, runs))


def _on_node(command: Command, timeout: float = STEP_TIMEOUT_S, check: bool = True) -> Done:
    """A command on a node (through the transport): no answer, or a failure with `check`, is the node's."""
    return host.run(command, blame=Blame.NODE, timeout=timeout, check=check)


class _Signals:
    """SIGINT/SIGTERM set a flag instead of raising, while installed (main thread only).

    The handler only sets an attribute: it runs between any two bytecodes of the main thread, so a lock it took
    could be one the main thread holds. `threading.Event.set` takes its Condition's lock, which `Event.wait` holds
    around its wait: a SIGINT landing there hung the capture for good (session 21, once under load; 1 of 200 in a
    loop beside a thread wanting the GIL). The capture's loop polls `received` instead.
    """

    def __init__(self) -> None:
        self.received = False
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def run(
    plan: Plan,
    outdir: str | Path,
    pods: list[PodTarget] | None = None,
    progress: Callable[[str], None] = lambda text: None,
    argv: list[str] | None = None,
    action: Callable[[], object] | None = None,
    force: bool = False,
    keep_going: bool = False,
) -> dict[str, Any]:
    """Run `plan`, write DIR/<node>.pcapng, DIR/merged.pcapng and DIR/manifest.json; return the manifest.

    With `action`, capture while it runs (then stop) rather than until a limit. Packets carry payloads:
    every file is written 0600, in a directory created 0700. An earlier capture in DIR is replaced
    only with `force`. A node that cannot be reached fails the run, or with `keep_going` is left out (the
    manifest's `unreachable` says why). A run that fails leaves no directory it created.
    """
    out = Path(outdir)
    if (out / MANIFEST).exists() and not force:
        raise CaptureFailed(f"{out} already holds a capture ({MANIFEST}); choose another directory")
    created = not out.exists()
    try:
        with _private():
            return _run(plan, out, pods, progress, argv, action, keep_going)
    except BaseException:
        if created:
            with suppress(OSError):
                out.rmdir()  # only when empty: what a failed run leaves is never removed
        raise


@contextmanager
def _private() -> Iterator[None]:
    """Files and directories created meanwhile are the user's alone (umask 077)."""
    before = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(before)


def _run(plan: Plan, out: Path, pods: list[PodTarget] | None, progress: Callable[[str], None], argv: list[str] | None,
         action: Callable[[], object] | None, keep_going: bool) -> dict[str, Any]:
    rawdir = out / ".raw"
    try:
        rawdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create {rawdir}: {exc.strerror}") from exc
    runs = [NodeRun(plan=node, raw=rawdir / f"{node.label}.pcap") for node in plan.nodes]
    try:
        with _Signals() as signals:
            try:
                _setup(plan, runs, progress)
                unreachable = _inventory(runs, keep_going)
                recording = [run for run in runs if run.plan.label not in unreachable]
                if signals.received:
                    raise CaptureFailed("interrupted before the capture started")
                _choose_filters(plan, recording, pods or [])
                started_ns, reason = _capture(plan, recording, lambda: signals.received, progress, action)
                stopped_ns = time.time_ns()
                if reason == "action":
                    time.sleep(max(plan.settings.flush_s, ACTION_SETTLE_S))
                elif reason not in ("tcpdump exited", "count"):
                    time.sleep(plan.settings.flush_s)
                _stop(plan, recording)
                _final_inventory(recording)
            finally:
                _stop(plan, runs)
                _teardown(plan, runs)  # every node's, also the unreachable ones' (kubectl: their pods)
            try:
                manifest = _write(plan, recording, out, started_ns, stopped_ns, reason, pods or [], argv, unreachable)
            except OSError as exc:  # no room for the pcapng: keep the raw pcap that fit, and say why
                manifest = _write_raw(plan, recording, out, started_ns, stopped_ns, f"{reason}; pcapng not written "
                                      f"({exc.strerror or exc})", pods or [], argv, unreachable)
            return manifest
    finally:
        shutil.rmtree(rawdir, ignore_errors=True)


def _setup(plan: Plan, runs: list[NodeRun], progress: Callable[[str], None]) -> None:
    def one(run: NodeRun) -> None:
        for step in run.plan.setup:
            progress(step.purpose)
            _on_node(step)

    _parallel(one, runs)


def _inventory(runs: list[NodeRun], keep_going: bool = False) -> dict[str, str]:
    """Each node's facts; the nodes that cannot be reached or lack tcpdump (label -> why) fail the run,
    or with `keep_going` are returned, to be left out, as long as one node remains."""
    def one(run: NodeRun) -> str | None:
        try:
            run.facts = parse_inventory(_on_node(run.plan.inventory).stdout)
        except NodeProblem as exc:
            return str(exc)
        if "tcpdump" not in run.facts.versions:
            return f"{run.plan.label}: tcpdump is not installed on the node"
        run.sudo = run.facts.uid not in (0, None)
        return None

    failed = {run.plan.label: why for run, why in zip(runs, _parallel(one, runs), strict=True) if why}
    if failed and (not keep_going or len(failed) == len(runs)):
        hint = "" if keep_going else " (--keep-going records on the others)"
        raise CaptureFailed(f"cannot record on {', '.join(failed)}: {'; '.join(failed.values())}{hint}")
    return failed


def _choose_filters(plan: Plan, runs: list[NodeRun], pods: list[PodTarget]) -> None:
    """The user's filter, minus our own SSH session; on nodes hosting a --pod, limited to the pod's host side and the node NIC."""
    for run in runs:
        run.bpf = nodeside.exclude_ssh(plan.bpf, run.facts.ssh_connection)
        mine = [pod for pod in pods if pod.node == run.plan.label]
        if not mine:
            continue
        indexes = run.facts.uplinks()
        for pod in mine:
            index = host_side(run.facts, pod.ip, pod.peer_index)
            if index is None:
                raise CaptureFailed(f"pod {pod.ref}: no host-side interface on {run.plan.label} for {pod.ip or 'its eth0'}")
            pod.host_index = index
            pod.host_name = run.facts.by_index()[index]["name"]
            indexes.append(index)
        run.bpf = nodeside.ifindex_filter(indexes, run.bpf)


def _pump_stdout(run: NodeRun, proc: host.Process) -> None:
    """The node's pcap into its raw file; when the disk is full, what fit is kept and the rest drained
    (tcpdump must not block) while the capture stops. A node whose stream comes once the others have filled
    the disk (a loaded machine's order) still keeps its pcap header, so the directory reads back."""
    stdout = proc.stdout
    assert isinstance(stdout, io.BufferedIOBase)  # a pipe, buffered: read1 returns what one read gave
    with open(run.raw, "wb", buffering=0) as sink:
        while chunk := stdout.read1(1 << 20):
            run.bytes += len(chunk)
            view = memoryview(chunk)
            while view and run.write_error is None:
                try:
                    view = view[sink.write(view) or 0:]
                except OSError as exc:
                    run.write_error = f"writing {run.raw.parent.parent}: {exc.strerror}"
                    kept = sink.tell()
                    sink.truncate(max(min(kept, PCAP_HEADER), kept - FULL_DISK_RESERVE))  # room for the manifest


def _pump_stderr(run: NodeRun, proc: host.Process) -> None:
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        match = nodeside.PID_LINE.match(line)
        if match and run.pid is None:
            run.pid = int(match.group(1))
            continue
        if nodeside.LISTENING.match(line):
            run.listening.set()
            run.answered.set()
        run.stderr.append(line)
    run.answered.set()


def _widen_pipe(proc: host.Process) -> None:
    """A 1 MiB pipe lets tcpdump write a burst while we are busy (a blocked tcpdump drops in the kernel)."""
    assert proc.stdout is not None
    with contextlib.suppress(OSError):  # above fs.pipe-max-size for an unprivileged user: keep the default
        fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def _start(plan: Plan, run: NodeRun) -> None:
    run.step = capture_step(plan.transport, run.plan.node, plan.limits, plan.settings, run.bpf, run.sudo)
    # standard input kept open while tcpdump runs: where the transport forwards it, the node stops tcpdump when it closes
    run.proc = host.spawn(run.step, keep_stdin=plan.transport.forwards_stdin)
    _widen_pipe(run.proc)
    for target in (_pump_stdout, _pump_stderr):
        thread = threading.Thread(target=target, args=(run, run.proc), daemon=True)
        thread.start()
        run.threads.append(thread)


def _sudo_refusal(run: NodeRun) -> str | None:
    """What sudo said when it would not run the capture (no rule, a password needed, a tty required)."""
    if not run.sudo:
        return None
    return next((line for line in run.stderr if SUDO_SAID.match(line)), None)


def _why_not_started(run: NodeRun) -> str:
    refusal = _sudo_refusal(run)
    if refusal:  # the rest is login noise (motd, "Could not chdir to home directory")
        return f"{run.plan.label}: `sudo -n` refused for {run.plan.target} (uid {run.facts.uid}): {refusal}"
    return f"{run.plan.label}: {' '.join(run.stderr[-3:]) or 'no answer'}"


def _capture(
    plan: Plan, runs: list[NodeRun], interrupted: Callable[[], bool], progress: Callable[[str], None],
    action: Callable[[], object] | None = None,
) -> tuple[int, str]:
    for run in runs:
        _start(plan, run)
    deadline = time.monotonic() + START_TIMEOUT_S
    for run in runs:
        run.answered.wait(max(0.0, deadline - time.monotonic()))
    failed = [run for run in runs if not run.listening.is_set() or run.proc is None or run.proc.poll() is not None]
    if failed:
        time.sleep(0.2)  # let stderr arrive
        details = "; ".join(_why_not_started(r) for r in failed)
        if any(FILTER_ERROR.search(line) for r in failed for line in r.stderr):
            raise FilterRejected(f"tcpdump refused the filter: {details}")
        refused = any(_sudo_refusal(r) for r in failed)
        raise CaptureFailed(f"tcpdump did not start on {len(failed)} node(s): {details}" + (f". {SUDO_HINT}" if refused else ""))
    started_ns = time.time_ns()
    progress(f"capturing on {len(runs)} node(s): {', '.join(r.plan.label for r in runs)}")
    if action is not None:
        action()
        return started_ns, "action"
    limits = plan.limits
    max_bytes = limits.max_size_mb * 1_000_000
    end = time.monotonic() + limits.duration_s
    while True:
        if interrupted():
            return started_ns, "interrupted"
        full = next((run.write_error for run in runs if run.write_error), None)
        if full:
            return started_ns, f"output full ({full})"
        ended = [run.plan.label for run in runs if run.proc is not None and run.proc.poll() not in (None, 0)]
        if ended:  # killed on its node, or the connection lost: stop the others now, not at --duration
            return started_ns, f"failed on {', '.join(ended)}"
        if all(run.proc is not None and run.proc.poll() is not None for run in runs):
            return started_ns, "count" if limits.count else "tcpdump exited"
        if any(run.bytes >= max_bytes for run in runs):
            return started_ns, "max-size"
        if time.monotonic() >= end:
            return started_ns, "duration"
        time.sleep(POLL_S)  # a signal's handler runs meanwhile; the sleep goes on for the rest


def _stop(plan: Plan, runs: list[NodeRun]) -> None:
    """SIGTERM every running tcpdump by its pid, on its node; wait; kill our local end if it hangs."""
    alive = [run for run in runs if run.proc is not None and run.proc.poll() is None]

    def one(run: NodeRun) -> None:
        assert run.proc is not None
        if run.pid is not None and not run.stopped_by_us:
            run.stopped_by_us = True
            done = _on_node(stop_step(plan.transport, run.plan.node, run.pid, run.sudo), timeout=STOP_WAIT_S + 5, check=False)
            if done.returncode != 0 and run.proc.poll() is None:
                run.warnings.append(f"stopping tcpdump (pid {run.pid}) failed: {done.stderr.strip()[-200:]}")
        try:
            run.proc.wait(STOP_WAIT_S)
        except host.TimeoutExpired:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait()
            run.warnings.append(
                f"tcpdump did not stop within {STOP_WAIT_S} s; the local end was killed and the node stops it"
                f" by itself within {plan.limits.node_limit_s} s of the start"
            )

    _parallel(one, alive)
    for run in runs:
        for thread in run.threads:
            thread.join(STOP_WAIT_S)
        if run.proc is not None and run.proc.stdin is not None and run.proc.poll() is not None:
            run.proc.stdin.close()


def _final_inventory(runs: list[NodeRun]) -> None:
    """The interface table again: interfaces created during the capture get their names too."""

    def one(run: NodeRun) -> None:
        done = _on_node(run.plan.inventory, check=False)
        if done.returncode == 0:
            run.stop_facts = parse_inventory(done.stdout)
        else:
            run.warnings.append(f"interface table at stop not recorded: {done.stderr.strip()[-200:]}")

    _parallel(one, runs)


def _teardown(plan: Plan, runs: list[NodeRun]) -> None:
    def one(run: NodeRun) -> None:
        for step in run.plan.teardown:
            try:
                done = _on_node(step, check=False)
            except CniscopeError as exc:
                run.warnings.append(f"{step.purpose}: {exc}")
                continue
            if done.returncode != 0:
                run.warnings.append(f"{step.purpose} failed: {done.stderr.strip()[-200:]}")

    _parallel(one, runs)


def _convert(run: NodeRun, path: Path, merged: MergedCapture) -> dict[str, Any]:
    """The node's pcapng section, written to `path` and declared to the merged capture."""
    entries = merge_tables(run.facts.interfaces, run.stop_facts.interfaces if run.stop_facts else [])
    run.facts.interfaces = entries
    size = run.raw.stat().st_size if run.raw.exists() else 0
    with PcapngWriter(str(path)) as writer:

        def convert(data: bytes | mmap.mmap) -> ConvertResult:
            return sll2_pcap_to_pcapng(data, writer, run.plan.label, interface_table(entries), hardware=run.plan.label,
                                       os=run.facts.versions.get("kernel"), merged=merged)

        if size == 0:
            result = convert(b"")
        else:
            with open(run.raw, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                result = convert(data)
    return {"packets": result.packets, "unknown_ifindex": list(result.unknown_ifindex), "damage": result.damage}


def _write(
    plan: Plan, runs: list[NodeRun], out: Path, started_ns: int, stopped_ns: int, reason: str,
    pods: list[PodTarget], argv: list[str] | None, unreachable: dict[str, str],
) -> dict[str, Any]:
    merged = MergedCapture(str(out / MERGED), "cniscope capture of " + ", ".join(run.plan.label for run in runs)
                           + "; packets of all nodes in time order, each interface's node in its description (node=<name>)")
    try:
        converted = [_convert(run, out / f"{run.plan.label}.pcapng", merged) for run in runs]
    finally:
        merged.finish()
    files = [f"{run.plan.label}.pcapng" for run in runs]
    return _manifest(plan, runs, converted, files, MERGED, out, started_ns, stopped_ns, reason, pods, argv, unreachable)


def _write_raw(
    plan: Plan, runs: list[NodeRun], out: Path, started_ns: int, stopped_ns: int, reason: str,
    pods: list[PodTarget], argv: list[str] | None, unreachable: dict[str, str],
) -> dict[str, Any]:
    """The disk filled while writing pcapng: drop the partial pcapng, keep each node's raw pcap (moved, no new
    space needed) and write the manifest naming them. If even that cannot be written, say where the pcap are."""
    files = []
    for run in runs:
        run.write_error = run.write_error or f"{reason.rpartition('; ')[2]}"
        (out / f"{run.plan.label}.pcapng").unlink(missing_ok=True)
        kept = out / f"{run.plan.label}.pcap"
        if run.raw.exists():
            run.raw.replace(kept)
        files.append(kept.name)
        run.warnings.append(f"the pcap as tcpdump wrote it is kept in {kept.name} (interfaces by index, not by name)")
        if not kept.exists() or kept.stat().st_size < PCAP_HEADER:
            run.warnings.append(_no_packets(plan, run, kept))
    (out / MERGED).unlink(missing_ok=True)
    converted: list[dict[str, Any]] = [{"packets": None, "unknown_ifindex": [], "damage": None} for _ in runs]
    try:
        return _manifest(plan, runs, converted, files, None, out, started_ns, stopped_ns, reason, pods, argv, unreachable)
    except OSError as exc:
        raise OutputError(f"{out}: {reason}; no manifest either ({exc.strerror}); the captures are kept as "
                          f"{', '.join(files)}") from None


def _no_packets(plan: Plan, run: NodeRun, path: Path) -> str:
    """Nothing of the node's pcap was kept (tcpdump sent nothing, or its first bytes came once the disk was full to the
    last byte): `path` becomes a pcap of no packets, begun as the node's tcpdump begins one (nanosecond stamps,
    LINUX_SLL2, the plan's snaplen), so that the directory reads back as the pcapng path's section of no packets
    does (an empty file is an unusable input to `analyze`). What to warn."""
    said = "the node sent nothing" if run.bytes == 0 else f"none of the node's {run.bytes} bytes fit"
    try:
        path.write_bytes(pcap.encode([], [], int(LinkType.LINUX_SLL2), nanos=True, snaplen=plan.settings.snaplen))
    except OSError as exc:
        return f"{said}, and {path.name} could not be given a pcap header ({exc.strerror}): analyze refuses it"
    return f"{said}: {path.name} holds no packets (a pcap header of cniscope's)"


def _manifest(
    plan: Plan, runs: list[NodeRun], converted: list[dict[str, Any]], files: list[str], merged: str | None, out: Path,
    started_ns: int, stopped_ns: int, reason: str, pods: list[PodTarget], argv: list[str] | None,
    unreachable: dict[str, str],
) -> dict[str, Any]:
    nodes = []
    for run, conv, file in zip(runs, converted, files, strict=True):
        path = out / file
        summary = nodeside.parse_summary(run.stderr)
        if summary.dropped is None:
            run.warnings.append("tcpdump printed no drop count (it did not exit normally)")
        if conv["damage"]:
            run.warnings.append(f"stream from the node: {conv['damage']}")
        nodes.append(
            {
                "name": run.plan.label,
                "target": run.plan.target,
                "file": path.name,
                "bytes": run.bytes,
                "packets": conv["packets"],
                "tcpdump": {"captured": summary.captured, "received": summary.received, "dropped": summary.dropped},
                "pid": run.pid,
                "exit_status": run.proc.returncode if run.proc else None,
                "failed": run.write_error or _failure(run),
                "sudo": run.sudo,
                "filter": run.bpf,
                "command": list(run.step.argv) if run.step else None,
                "unknown_ifindex": conv["unknown_ifindex"],
                "facts": run.facts.to_json(),
                "stderr": [line for line in run.stderr if not nodeside.LISTENING.match(line)][-20:],
                "warnings": run.warnings + run.facts.notes,
            }
        )
    manifest = {
        "format": "cniscope-capture",
        "version": 1,
        "cniscope": __version__,
        "command": argv,
        "transport": plan.transport.describe(),
        "filter": plan.bpf,
        "limits": {"duration_s": plan.limits.duration_s, "count": plan.limits.count, "max_size_mb": plan.limits.max_size_mb},
        "tcpdump": {"snaplen": plan.settings.snaplen, "buffer_kib": plan.settings.buffer_kib, "immediate": plan.settings.immediate,
                    "flush_s": plan.settings.flush_s},
        "started": dt.datetime.fromtimestamp(started_ns / 1e9, dt.UTC).isoformat(timespec="microseconds"),
        "stopped": dt.datetime.fromtimestamp(stopped_ns / 1e9, dt.UTC).isoformat(timespec="microseconds"),
        "start_ns": started_ns,
        "stop_ns": stopped_ns,
        "written": _now_iso(),
        "stop_reason": reason,
        "merged": merged,
        "pods": [pod.to_json() for pod in pods],
        "nodes": nodes,
        "unreachable": [{"name": name, "why": why} for name, why in unreachable.items()],
    }
    write_manifest(out, manifest)
    return manifest


def _failure(run: NodeRun) -> str | None:
    """Why the node's capture ended before we stopped it: a tcpdump killed on the node, a lost connection."""
    status = run.proc.returncode if run.proc else None
    if status in (None, 0):
        return None
    said = [line for line in run.stderr if not nodeside.LISTENING.match(line) and not nodeside.PID_LINE.match(line)]
    why = {255: "the connection to the node was lost (ssh exit 255)", 124: "the node's own time limit stopped it"}.get(
        status, f"tcpdump ended early (exit status {status}{', killed by signal ' + str(status - 128) if status > 128 else ''})")
    return why + (f": {said[-1]}" if said else "")


def failed_nodes(manifest: dict[str, Any]) -> list[str]:
    """`node: why` for every node whose capture ended before the stop (the files keep what it recorded),
    and every node left out as unreachable (--keep-going)."""
    return [f"{node['name']}: {node['failed']}" for node in manifest["nodes"] if node.get("failed")] + [
        f"{node['name']}: not recorded: {node['why']}" for node in manifest.get("unreachable", [])]


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    lines = [f"stopped: {manifest['stop_reason']}"]
    for node in manifest["nodes"]:
        counts = node["tcpdump"]
        dropped = "unknown" if counts["dropped"] is None else counts["dropped"]
        packets = "?" if node["packets"] is None else node["packets"]
        lines.append(f"{node['name']}: {packets} packets, {dropped} dropped by kernel -> {node['file']}")
        if node.get("failed"):
            lines.append(f"  FAILED: {node['failed']}")
        lines.extend(f"  warning: {w}" for w in node["warnings"])
    lines.append(f"merged: {manifest['merged'] or 'none'}; manifest: {MANIFEST}")
    return lines

