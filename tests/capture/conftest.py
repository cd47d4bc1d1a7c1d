"""Network namespaces for capture tests: every name carries cst-cap-<pid>-<n>-, removed by exact name."""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_counter = itertools.count()


def sh(*argv: str, ns: str | None = None, timeout: float = 30) -> str:
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=True).stdout


class Namespaces:
    def __init__(self) -> None:
        self.prefix = f"cst-cap-{os.getpid()}-{next(_counter)}-"
        self.names: list[str] = []

    def add(self, member: str) -> str:
        name = self.prefix + member
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", ns=name)
        return name

    def veth(self, a: str, a_if: str, b: str, b_if: str) -> None:
        sh("ip", "-n", self.prefix + a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", self.prefix + b)
        sh("ip", "-n", self.prefix + a, "link", "set", a_if, "up")
        sh("ip", "-n", self.prefix + b, "link", "set", b_if, "up")

    def ip(self, member: str, *args: str) -> None:
        sh("ip", "-n", self.prefix + member, *args)

    def run(self, member: str, *argv: str, timeout: float = 30) -> str:
        return sh(*argv, ns=self.prefix + member, timeout=timeout)

    def pids(self, member: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.prefix + member], capture_output=True, text=True, timeout=10).stdout
        return [int(p) for p in out.split()]

    def cleanup(self) -> None:
        for name in reversed(self.names):
            out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10).stdout
            for pid in (int(p) for p in out.split()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@pytest.fixture
def netns() -> Iterator[Namespaces]:
    spaces = Namespaces()
    try:
        yield spaces
    finally:
        spaces.cleanup()


def comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return None


def cniscope(*args: str) -> list[str]:
    return [sys.executable, "-m", "cniscope", *args]


class Capturing:
    """`cniscope capture` running in the background, started once it says it is capturing. One that does not say so
    within `start_s`, or does not end in time, is made to say where each of its threads was (faulthandler, on
    SIGABRT), which ends it: the test fails with all it said, never waits on it unbounded."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, start_s: float = 60) -> None:
        env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        said: queue.Queue[str | None] = queue.Queue()  # its lines up to "capturing on"; None: its standard error ended
        reader = threading.Thread(target=self._until_capturing, args=(said,), daemon=True)
        reader.start()
        deadline = time.monotonic() + start_s
        while True:
            try:  # (a bound checked only when a line came let a silent capture block the test, and one that said
                # something after the bound pass for started)
                line = said.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.send_signal(signal.SIGABRT)
                reader.join(30)
                self.proc.wait(30)
                while not said.empty():  # what it said meanwhile, its threads' places among it
                    if (rest := said.get_nowait()) is not None:
                        self.lines.append(rest)
                raise AssertionError(f"cniscope capture did not say it was capturing within {start_s:g} s; its stderr "
                                     "and threads:\n" + "".join(self.lines)) from None
            if line is None:
                self.proc.wait(10)
                raise AssertionError("cniscope capture did not start:\n" + "".join(self.lines))
            self.lines.append(line)
            if line.startswith("capturing on"):
                return

    def _until_capturing(self, said: queue.Queue[str | None]) -> None:
        """Its standard error's lines, until it says it is capturing (`finish` reads the rest), or until it ends."""
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            said.put(line)
            if line.startswith("capturing on"):
                return
        said.put(None)

    def interrupt(self, timeout: float = 60) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        return self.finish(timeout)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"cniscope capture still ran {timeout:g} s after it was to end; its stderr and threads:\n"
                                 + "".join(self.lines) + err) from None
        return self.proc.returncode, "".join(self.lines) + err


UDP_BLAST = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(i.to_bytes(4, "big") + b"x" * 96, (sys.argv[1], 9999))
"""


def tshark_names(path: Path) -> list[str]:
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return out.split()
