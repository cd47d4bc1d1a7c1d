"""Lab names and state: a name is never a path, and a state file directs teardown at its own lab's namespaces only."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from cniscope.errors import ExitCode, InputError
from cniscope.lab import state as lab_state
from cniscope.lab.naming import NS_PREFIX, state_dir
from cniscope.lab.spec import default_spec
from tests.cli import run
from tests.marks import needs_root

from .conftest import TEST_PREFIX, assert_no_leak, lab_name


@pytest.mark.parametrize("command", [
    ["lab", "down", "../../x"],
    ["lab", "exec", "../x", "node1", "--", "true"],
    ["lab", "curl", "a/b", "client1", "web1"],
    ["lab", "fault", "..", "drop", "node=node1", "iface=eth0", "--dry-run"],
    ["lab", "capture", "../x", "-o", "/nonexistent/out", "--", "node1", "true"],
    ["lab", "up", "kube-router", "--name", "../x", "--dry-run"],
    ["capture", "--via", "lab:../x", "--nodes", "node1", "--dry-run"],
])
def test_a_path_like_lab_name_is_refused(command: list[str]) -> None:
    ran = run(*command)
    assert ran.code == ExitCode.USAGE, ran.err
    assert "not a lab name" in ran.err and "Traceback" not in ran.err


def test_a_state_naming_another_lab_is_not_loaded(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_state, "state_dir", lambda name: tmp_path / name)
    state = lab_state.LabState(default_spec("kube-router", 1, name="other"), owner=1, owner_start=None, namespaces=[])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "state.json").write_text(lab_state.json.dumps(lab_state.asdict(state)))
    with pytest.raises(InputError, match="not the state of lab 'mine'"):
        lab_state.load("mine")


@needs_root
def test_teardown_leaves_namespaces_of_another_prefix_alone() -> None:
    """A crafted state.json lists another lab's namespace: `lab down` removes its own state, not that namespace."""
    name = lab_name("crafted")
    victim = f"{NS_PREFIX}{TEST_PREFIX}-victim-node1"
    subprocess.run(["ip", "netns", "add", victim], check=True, timeout=10)
    try:
        spec = default_spec("kube-router", 1, name=name)
        lab_state.LabState(spec, owner=1, owner_start=None, namespaces=[victim]).save()
        ran = run("lab", "down", name)
        assert ran.code == ExitCode.ENVIRONMENT and f"namespace {victim} left alone: not this lab's" in ran.err
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
        assert victim in listed.split()
        assert not state_dir(name).exists()
    finally:
        subprocess.run(["ip", "netns", "del", victim], timeout=10)
    assert_no_leak()


@needs_root
def test_a_lab_whose_lab_up_was_killed_is_incomplete_and_reaped() -> None:
    name = lab_name("killedup")
    up = subprocess.Popen([sys.executable, "-m", "cniscope", "lab", "up", "kube-router", "--nodes", "2", "--name", name],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # a loaded machine takes seconds to start Python
        while time.monotonic() < deadline:  # the state is written before anything is built; BIRD's routes take a second more
            if (state_dir(name) / "state.json").exists() or up.poll() is not None:
                break
            time.sleep(0.005)
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    try:
        state = lab_state.load(name)
        assert state.owner == state.builder == up.pid and not state.kept  # lab up owns the lab until it is complete
        assert lab_state.abandoned(state)
        listed = run("lab", "list").out.splitlines()
        assert any(line.startswith(name + "\t") and "incomplete: lab up died while building it" in line for line in listed)
        reaped = run("lab", "reap")
        # another test session's reaper may get there first; either way nothing of the lab may remain
        assert f"reaped lab {name}" in reaped.out or not state_dir(name).exists()
    finally:
        if state_dir(name).exists():  # an assertion above failed: its lab must not outlive the test
            run("lab", "down", name)
    assert_no_leak()
