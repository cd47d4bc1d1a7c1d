"""Lab state on disk, teardown and the reaper.

Each lab has a state dir (/run/cniscope/labs/<name>/) with state.json: its
spec, owner (pid and start time, so a reused pid is not mistaken for the
owner), namespaces and daemon pids. A lab made by `cniscope lab up` is *kept*
once built: its owner is the command that built it (so a build killed half-way
is reaped), and after that it stays until `lab down`. The state is written *before* anything
is created, so a lab interrupted half-way is still known and removable.

Teardown: kill every process inside the lab's namespaces (found through
/proc/<pid>/ns/net, by exact namespace), wait for them to go, then delete
each namespace by its exact name. A namespace deleted while a process still
runs in it would lose its name but stay alive, hence the order.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cniscope import host
from cniscope.errors import CniscopeError, InputError
from cniscope.host import Command
from cniscope.lab.naming import STATE_ROOT, lab_prefix, state_dir
from cniscope.lab.spec import Fault, LabSpec, Node, Pod, Service

NETNS_DIR = Path("/run/netns")


@dataclass
class LabState:
    spec: LabSpec
    owner: int
    owner_start: int | None
    namespaces: list[str]
    pids: dict[str, int] = field(default_factory=dict)
    up_seconds: float | None = None
    converge_seconds: float | None = None
    builder: int | None = None  # the `lab up` process while the lab is being built; None once complete
    builder_start: int | None = None
    kept: bool = False  # made by `cniscope lab up`: stays until `lab down`, whatever becomes of its owner

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dir(self) -> Path:
        return state_dir(self.name)

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(self.dir / "state.json")


def process_start(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_alive(state: LabState) -> bool:
    start = process_start(state.owner)
    return start is not None and (state.owner_start is None or start == state.owner_start)


def abandoned(state: LabState) -> bool:
    """Never completed, and its builder is gone (`lab up` killed half-way): nobody will finish it."""
    if state.builder is None:
        return False
    start = process_start(state.builder)
    return start is None or (state.builder_start is not None and start != state.builder_start)


def _spec_from(data: dict[str, Any]) -> LabSpec:
    return LabSpec(
        name=data["name"],
        model=data["model"],
        nodes=tuple(Node(**n) for n in data["nodes"]),
        pods=tuple(Pod(**p) for p in data["pods"]),
        services=tuple(Service(**{**s, "pods": tuple(s["pods"])}) for s in data["services"]),
        faults=tuple(Fault(**f) for f in data["faults"]),
    )


def load(name: str) -> LabState:
    path = state_dir(name) / "state.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"no lab named {name!r} (see cniscope lab list)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable lab state: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict) or data["spec"].get("name") != name:
        raise InputError(f"{path}: not the state of lab {name!r}")
    return LabState(
        spec=_spec_from(data["spec"]),
        owner=data["owner"],
        owner_start=data.get("owner_start"),
        namespaces=data["namespaces"],
        pids=data.get("pids", {}),
        up_seconds=data.get("up_seconds"),
        converge_seconds=data.get("converge_seconds"),
        builder=data.get("builder"),
        builder_start=data.get("builder_start"),
        kept=data.get("kept", False),
    )


def list_labs() -> list[LabState]:
    if not STATE_ROOT.is_dir():
        return []
    states = []
    for path in sorted(STATE_ROOT.iterdir()):
        if (path / "state.json").exists():
            try:
                states.append(load(path.name))
            except CniscopeError:
                continue  # being written by its owner, damaged, or no lab's name: list the rest
    return states


def _netns_id(name: str) -> tuple[int, int] | None:
    """The namespace's identity: device and inode of its name's file (an inode alone could be another file system's)."""
    try:
        found = (NETNS_DIR / name).stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def pids_in(namespaces: list[str]) -> list[int]:
    """Live processes whose network namespace is one of `namespaces` (exact names)."""
    ids = {ns for ns in (_netns_id(n) for n in namespaces) if ns is not None}
    if not ids:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            net = os.stat(f"/proc/{entry.name}/ns/net")
            if (net.st_dev, net.st_ino) in ids:
                found.append(int(entry.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return found


def gone(pid: int) -> bool:
    """True when the process has exited (a zombie counts as gone: it holds no namespace)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def kill_and_wait(pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL each pid and wait until it is gone (or a zombie); return the ones still alive."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if not gone(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [pid for pid in alive if not gone(pid)]
    return alive


def empty(namespaces: list[str], rounds: int = 5) -> list[int]:
    """Kill every process of the namespaces until none is left; return the survivors.

    One scan is not enough: a daemon caught starting (nginx's master forking its worker) makes a process
    the scan did not see, which would outlive its namespace's name and never be found again.
    """
    alive: list[int] = []
    for _ in range(rounds):
        found = pids_in(namespaces)
        if not found:
            return []
        alive = kill_and_wait(found)
    return alive or pids_in(namespaces)


def teardown(state: LabState) -> list[str]:
    """Remove everything of the lab; return what could not be removed (empty when clean)."""
    problems = []
    own = [n for n in state.namespaces if n.startswith(lab_prefix(state.name))]  # a crafted state names no other
    problems += [f"namespace {n} left alone: not this lab's" for n in state.namespaces if n not in own]
    problems += [f"pid {pid} survived SIGKILL" for pid in empty(own)]
    present = [n for n in own if (NETNS_DIR / n).exists()]
    if present:
        deleted = host.run(Command(("ip", "-batch", "-"), f"delete the namespaces of lab {state.name}",
                                   "".join(f"netns del {n}\n" for n in present)), check=False)
        if deleted.returncode != 0:
            problems.append(f"ip netns del: {deleted.stderr.strip()}")
    shutil.rmtree(state.dir, ignore_errors=True)
    return problems


def ownership(state: LabState) -> str:
    """What `lab list` says of who keeps the lab alive."""
    if abandoned(state):
        return "incomplete: lab up died while building it (cniscope lab reap removes it)"
    if state.builder is not None:
        return f"being built by pid {state.builder}"
    if state.kept:
        return f"kept (cniscope lab down {state.name} removes it)"
    if owner_alive(state):
        return f"owner pid {state.owner} alive (removed when it ends)"
    return f"owner pid {state.owner} gone (cniscope lab reap removes it)"


def reap() -> list[str]:
    """Tear down every lab whose owner process is gone (labs kept by `lab up` stay), or whose `lab up` died before
    it was complete; return their names."""
    reaped = []
    for state in list_labs():
        if (not state.kept and not owner_alive(state)) or abandoned(state):
            teardown(state)
            reaped.append(state.name)
    return reaped
