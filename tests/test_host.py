"""cniscope.host on this machine: real programs, each failure blamed on its party with the project's exit codes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cniscope import host
from cniscope.errors import Bug, EnvironmentProblem, ExitCode, InputError, NodeProblem
from cniscope.host import Blame, Command, Done

SAYS = Command(("sh", "-c", "echo out; echo said >&2; exit 3"), "say things")


def test_run_gives_what_the_program_printed_and_its_status() -> None:
    assert host.run(SAYS, check=False) == Done(3, "out\n", "said\n")
    assert host.run(Command(("cat",), "echo the input", "line 1\nline 2\n")).stdout == "line 1\nline 2\n"
    assert host.run(Command(("cat",), "read nothing")).stdout == ""  # no input given: none inherited from ours


@pytest.mark.parametrize(("blame", "error", "code"), [
    (Blame.INPUT, InputError, ExitCode.BAD_INPUT),
    (Blame.MACHINE, EnvironmentProblem, ExitCode.ENVIRONMENT),
    (Blame.NODE, NodeProblem, ExitCode.ENVIRONMENT),
    (Blame.US, Bug, ExitCode.BUG),
])
def test_a_failure_is_blamed_on_whom_the_caller_names(blame: Blame, error: type, code: ExitCode) -> None:
    with pytest.raises(error) as raised:
        host.run(SAYS, blame=blame)
    assert str(raised.value) == "say things: exit 3: said" and raised.value.exit_code == code


def test_no_answer_in_time_is_blamed_too() -> None:
    with pytest.raises(NodeProblem, match=r"^wait for a node: no answer within 0.2 s \(sleep 30\)$"):
        host.run(Command(("sleep", "30"), "wait for a node"), blame=Blame.NODE, timeout=0.2)


def test_a_program_missing_here_is_this_machine_s() -> None:
    for start in (lambda c: host.run(c, blame=Blame.NODE), host.spawn):
        with pytest.raises(EnvironmentProblem, match="^no-such-program-cniscope is not installed here "
                                                     r"\(needed to reach a node\)$") as raised:
            start(Command(("no-such-program-cniscope", "x"), "reach a node"))
        assert type(raised.value) is EnvironmentProblem


def test_spawn_streams_and_keeps_standard_input_open_when_asked() -> None:
    proc = host.spawn(Command(("cat",), "echo until the input ends"), keep_stdin=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"\x00binary\xff")
    proc.stdin.close()
    assert proc.stdout.read() == b"\x00binary\xff" and proc.wait(10) == 0
    with pytest.raises(ValueError, match="no standard input text"):
        host.spawn(Command(("cat",), "echo", "text"))


def test_a_command_run_to_its_end_dies_with_cniscope(tmp_path) -> None:
    """cniscope killed outright (SIGKILL: no handler runs) while `run` waits: its child is killed too, not left to
    finish alone (a lab's `ip -batch` making namespaces after the lab was reaped)."""
    pidfile = tmp_path / "child.pid"
    script = ("from cniscope import host\n"
              f"host.run(host.Command(('sh', '-c', 'echo $$ > {pidfile}; exec sleep 60'), 'wait'), timeout=90)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.01)
        child = int(pidfile.read_text())
        assert _alive(child)  # running while cniscope waits for it
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running (a zombie has ended: its parent, here init, has yet to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
