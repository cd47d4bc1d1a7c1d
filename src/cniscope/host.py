"""The one door to this machine's programs: every command cniscope runs is a `Command`, run by `run` or `spawn`.

Theory of operation
- A command is data: its argument list (never a shell line), what goes to its standard input, and its purpose in
  words. The lab's and the capture's plans are made of commands (and of steps that become commands), which
  `--dry-run` prints and tests read without running anything.
- `run` waits for a command to end; `spawn` starts one that streams (tcpdump) or goes to the background (a
  daemon's parent). Children run in their own session, with no standard input unless given: a terminal's Ctrl-C
  reaches only cniscope, which stops them properly. A command `run` waits for dies with cniscope (the kernel's
  parent-death signal): killed outright, cniscope leaves no `ip -batch` behind still building what nobody will
  remove (a lab reaped at once would lose the namespaces made after it).
- A failure is somebody's, and the error says whose (`Blame`), which picks the exit code (README): a program
  missing here is this machine's; a command that ran and failed, or did not answer in time, is blamed on whoever
  the caller names: the user's input, this machine, a remote node, or cniscope itself. The message names the
  purpose, the exit status and the end of what the program said.
- Tests swap the host (`swapped`) for one that records each command and answers it, so a lab's build or a
  capture over ssh can be checked command by command without root (as mitmproxy's playbook tests check the
  commands its layers yield). This module is the only one that starts processes.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from cniscope.errors import Bug, CniscopeError, EnvironmentProblem, InputError, NodeProblem

SAID_MAX = 500  # characters of a failed program's output quoted in the error
Process = subprocess.Popen[bytes]  # a spawned command, waited for by its caller
TimeoutExpired = subprocess.TimeoutExpired  # what a spawned process's wait(timeout) raises


@dataclass(frozen=True)
class Command:
    """One command: an argument list, what it is for, optional standard input (text)."""

    argv: tuple[str, ...]
    purpose: str
    stdin: str | None = None

    def render(self) -> str:
        """As a shell line a user could type (what `--dry-run` prints)."""
        text = shlex.join(self.argv)
        return f"{text} <<< {shlex.quote(self.stdin)}" if self.stdin is not None else text


@dataclass(frozen=True)
class Done:
    """A command that ended: its exit status and what it printed (decoded, undecodable bytes replaced)."""

    returncode: int
    stdout: str
    stderr: str


class Blame(Enum):
    """Who is to blame when a command fails or does not answer: it picks the error, and so the exit code."""

    INPUT = "the user's input"  # a pod that does not exist: InputError, exit 4
    MACHINE = "this machine"  # a lab step the kernel refused: EnvironmentProblem, exit 5
    NODE = "a remote node"  # unreachable, refused: NodeProblem, exit 5
    US = "cniscope"  # a command we built that cannot fail unless we are wrong: Bug, exit 70

    def error(self, message: str) -> CniscopeError:
        kind: type[CniscopeError] = {Blame.INPUT: InputError, Blame.MACHINE: EnvironmentProblem, Blame.NODE: NodeProblem,
                                     Blame.US: Bug}[self]
        return kind(message)


class Host:
    """This machine: commands run as child processes. Tests swap in their own (`swapped`)."""

    def run(self, command: Command, timeout: float) -> Done:
        """Run to the end; raise FileNotFoundError when the program is missing, TimeoutExpired after `timeout` s."""
        done = subprocess.run(command.argv, input=command.stdin, stdin=None if command.stdin is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace", timeout=timeout, start_new_session=True,
                              check=False, preexec_fn=_dies_with(os.getpid()))
        return Done(done.returncode, done.stdout, done.stderr)

    def spawn(self, command: Command, keep_stdin: bool) -> Process:
        """Start, with standard output and error as pipes (bytes); standard input a pipe left open with `keep_stdin`."""
        return subprocess.Popen(command.argv, stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _dies_with(parent: int) -> Callable[[], None]:
    """What the child runs before the program: SIGKILL to it when the thread that started it ends (the thread waits
    for it, so: when cniscope does), and an end now when cniscope died before that was set."""
    def child() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
        if os.getppid() != parent:
            os._exit(1)
    return child


_host = Host()


@contextmanager
def swapped(host: Host) -> Iterator[Host]:
    """Run and spawn through `host` for a while (tests: a host that records commands and answers them)."""
    global _host
    before, _host = _host, host
    try:
        yield host
    finally:
        _host = before


def run(command: Command, *, blame: Blame = Blame.MACHINE, timeout: float = 30, check: bool = True) -> Done:
    """Run `command` to its end. No answer within `timeout` s, or (with `check`) a non-zero exit, is `blame`'s."""
    try:
        done = _host.run(command, timeout)
    except FileNotFoundError as exc:
        raise _missing(command) from exc
    except TimeoutExpired as exc:
        raise blame.error(f"{command.purpose}: no answer within {timeout:g} s ({command.render()[:200]})") from exc
    if check and done.returncode != 0:
        raise blame.error(f"{command.purpose}: exit {done.returncode}: {said(done)}")
    return done


def spawn(command: Command, *, keep_stdin: bool = False) -> Process:
    """Start `command` (its standard output and error are pipes of bytes); the caller waits for it."""
    if command.stdin is not None:
        raise ValueError(f"spawn takes no standard input text: {command.render()[:200]}")
    try:
        return _host.spawn(command, keep_stdin)
    except FileNotFoundError as exc:
        raise _missing(command) from exc


def said(done: Done, limit: int = SAID_MAX) -> str:
    """The end of what a program said about its failure: standard error, else standard output."""
    return (done.stderr.strip() or done.stdout.strip())[-limit:]


def _missing(command: Command) -> EnvironmentProblem:
    return EnvironmentProblem(f"{command.argv[0]} is not installed here (needed to {command.purpose})")
