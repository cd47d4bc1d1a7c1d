"""A host that runs nothing: it records every command cniscope would run and answers as the test says.

Swapped in with `host.swapped(Recorder(answer))`, the lab's executor and the capture runner run their plans
against it without root, and the test reads `recorder.commands`: the playbook of mitmproxy's tests, for
commands. `answer(command)` returns a `Reply` (None: exit 0, no output), and may act as the far side would
(write a daemon's pid file, stop a node's tcpdump). A spawned command is a real child process replaying its
reply: standard error first ("{pid}" in it becomes the child's pid, as the node-side wrapper prints tcpdump's),
then standard output (a `Path`: that file's bytes, for more than an argument holds); a `streams` reply then runs
until SIGTERM or the end of its standard input (at most 60 s), and says `after` on standard error before it exits.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cniscope import host
from cniscope.host import Command, Done

REPLAY = r"""
import os, select, signal, sys, time
out, err, after, streams, watch, code = sys.argv[1:]
class Stopped(Exception):
    pass
def stop(*_):
    raise Stopped
signal.signal(signal.SIGTERM, stop)
try:
    sys.stderr.write(err.replace("{pid}", str(os.getpid()))); sys.stderr.flush()
    data = open(out[5:], "rb").read() if out.startswith("file:") else bytes.fromhex(out)
    sys.stdout.buffer.write(data); sys.stdout.flush()
    if streams == "1":
        if watch == "1":
            select.select([sys.stdin], [], [], 60)
        else:
            time.sleep(60)
except Stopped:
    pass
sys.stderr.write(after); sys.stderr.flush()
sys.exit(int(code))
"""


@dataclass(frozen=True)
class Reply:
    returncode: int = 0
    stdout: str | bytes | Path = ""
    stderr: str = ""
    streams: bool = False  # spawned: run until stopped
    after: str = ""  # spawned: said on standard error once stopped


class Recorder(host.Host):
    def __init__(self, answer: Callable[[Command], Reply | None] = lambda command: None) -> None:
        self.answer = answer
        self.commands: list[Command] = []
        self.spawned: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()  # the capture runner works on its nodes in threads

    def _reply(self, command: Command) -> Reply:
        with self._lock:
            self.commands.append(command)
        return self.answer(command) or Reply()

    def run(self, command: Command, timeout: float) -> Done:
        reply = self._reply(command)
        stdout = reply.stdout.read_text() if isinstance(reply.stdout, Path) else (
            reply.stdout.decode(errors="replace") if isinstance(reply.stdout, bytes) else reply.stdout)
        return Done(reply.returncode, stdout, reply.stderr)

    def spawn(self, command: Command, keep_stdin: bool) -> subprocess.Popen[bytes]:
        reply = self._reply(command)
        if isinstance(reply.stdout, Path):
            out = f"file:{reply.stdout}"
        else:
            out = (reply.stdout if isinstance(reply.stdout, bytes) else reply.stdout.encode()).hex()
        argv = [sys.executable, "-c", REPLAY, out, reply.stderr, reply.after, "1" if reply.streams else "0",
                "1" if keep_stdin else "0", str(reply.returncode)]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        with self._lock:
            self.spawned.append(proc)
        return proc

    def stop(self, command: Command) -> None:
        """The far side of a stop command (`kill -s TERM PID`, PID its last word): SIGTERM to our replay of that pid."""
        pid = int(shlex.split(command.argv[-1])[-1])
        if any(proc.pid == pid and proc.poll() is None for proc in self.spawned):  # only ever a replay of ours
            os.kill(pid, signal.SIGTERM)

    def close(self) -> None:
        """Every replay still running is killed and reaped (a test that failed half-way)."""
        for proc in self.spawned:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
