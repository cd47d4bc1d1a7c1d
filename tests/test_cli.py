"""The command line's exit codes, one per kind of failure (README), run in-process; never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import cniscope.analyze
from cniscope.errors import ExitCode
from cniscope.wire import pcap as pcap_file
from tests.cli import run
from tests.frames import ethernet, ipv4, tcp
from tests.paths import SEED

T0 = 1_700_000_000_000_000_000
REFUSED = [ethernet(ipv4(tcp(seq=7, flags="S"), src="10.244.1.2", dst="10.244.2.3")),
           ethernet(ipv4(tcp(sport=80, dport=40000, seq=0, ack=8, flags="R."), src="10.244.2.3", dst="10.244.1.2"))]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    good = tmp_path / "refused.pcap"
    good.write_bytes(pcap_file.encode(REFUSED, [T0, T0 + 200_000], 1))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(good.read_bytes()[:-10])
    text = tmp_path / "notes.txt"
    text.write_text("nothing that tcpdump printed\n")
    return {"good": str(good), "cut": str(cut), "text": str(text), "missing": str(tmp_path / "missing.pcap"),
            "dir": str(tmp_path)}


TABLE = [
    (["--version"], ExitCode.OK, ""),
    (["analyze", "{good}"], ExitCode.OK, ""),
    (["analyze", "--fail-on", "info", "{good}"], ExitCode.FINDINGS, ""),
    (["analyze"], ExitCode.USAGE, "no input"),
    (["analyze", "--no-such-option", "{good}"], ExitCode.USAGE, "No such option"),
    (["analyze", "--node", "nonode", "{good}"], ExitCode.USAGE, "NODE=FILE"),
    (["analyze", "--memory", "64k", "{good}"], ExitCode.OK, ""),
    (["analyze", "--memory", "lots", "{good}"], ExitCode.USAGE, "a size such as 512M or 4G"),
    (["read", "--format", "parquet", "{good}"], ExitCode.USAGE, "needs -o"),
    (["lab", "up", "kube-router", "--nodes", "0"], ExitCode.USAGE, "--nodes must be between 1 and 9"),
    (["lab", "up", "kube-router", "--nodes", "10", "--dry-run"], ExitCode.USAGE, "--nodes must be between 1 and 9"),
    (["lab", "fault", "no-such-lab", "drop", "node=node1"], ExitCode.USAGE, "missing iface"),
    (["lab", "fault", "no-such-lab", "mtu", "node1"], ExitCode.USAGE, "expected KEY=VALUE"),
    (["analyze", "{cut}"], ExitCode.DAMAGED_INPUT, "warning: "),
    (["read", "{cut}"], ExitCode.DAMAGED_INPUT, "warning: "),
    (["analyze", "{missing}"], ExitCode.BAD_INPUT, "cannot read it"),
    (["analyze", "{text}"], ExitCode.BAD_INPUT, ""),
    (["read", "-o", "/dev/full", "{good}"], ExitCode.ENVIRONMENT, "cannot write /dev/full"),
    (["read", "--format", "csv", "-o", "/dev/full", "{good}"], ExitCode.ENVIRONMENT, "cannot write /dev/full"),
    (["analyze", "--html", "/dev/full", "{good}"], ExitCode.ENVIRONMENT, "cannot write /dev/full"),
    (["analyze", "--pcapng", "/dev/full", "{good}"], ExitCode.ENVIRONMENT, "cannot write /dev/full"),
    (["analyze", "--html", "{dir}", "{good}"], ExitCode.USAGE, "is a directory"),
]


@pytest.mark.parametrize(("args", "code", "said"), TABLE, ids=[" ".join(args) for args, _, _ in TABLE])
def test_exit_codes(files: dict[str, str], args: list[str], code: ExitCode, said: str) -> None:
    ran = run(*(arg.format(**files) for arg in args))
    assert ran.code == code, ran.err
    assert said in ran.err
    assert "Traceback" not in ran.err


def test_a_bug_is_exit_70_with_the_traceback_only_under_debug(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug\x1b]0;owned\x07")

    monkeypatch.setattr(cniscope.analyze, "analyze_capture", broken)
    ran = run("analyze", files["good"])
    assert ran.code == ExitCode.BUG == 70
    assert "internal error, please report it: ZeroDivisionError: a bug\\x1b]0;owned\\x07" in ran.err
    assert "Traceback" not in ran.err and "\x1b" not in ran.err
    debug = run("--debug", "analyze", files["good"])
    assert debug.code == ExitCode.BUG
    assert "Traceback (most recent call last)" in debug.err and "in broken" in debug.err


def test_interrupted_is_130(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cniscope.analyze, "analyze_capture", interrupted)
    ran = run("analyze", files["good"])
    assert ran.code == ExitCode.INTERRUPTED == 130 and "interrupted" in ran.err


def test_version_imports_no_command() -> None:
    """`cniscope --version` reaches no command module (cli.COMMANDS imports each when it runs): no polars."""
    probe = ("import sys\nfrom cniscope.cli import main\ncode = main(['--version'])\n"
             "print(code, sorted(m for m in sys.modules if m.startswith(('polars', 'numpy', 'cniscope.commands'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "0 []"


def test_only_the_process_freezes_its_objects_at_the_end() -> None:
    """main() as the process (no args: the console scripts) hands its objects to gc.freeze, sparing the collector's
    pass at exit; called with args (in a program, in tests) it leaves the collector alone. Exit codes are the same."""
    probe = ("import atexit, gc, sys\nfrom cniscope.cli import main\n"
             "given = main(['analyze', '--json', sys.argv[-1]])\nfrozen = gc.get_freeze_count()\n"
             "atexit.register(lambda: print(given, frozen, gc.get_freeze_count() > frozen, file=sys.stderr))\n"
             "sys.exit(main())")
    done = subprocess.run([sys.executable, "-c", probe, "analyze", "--json", str(SEED)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "0 0 True"


def test_only_the_process_holds_its_report_to_the_end() -> None:
    """main() as the process leaves its report to the exit (`collector.hold`: not freed as the command returns);
    called with args (in a program, in tests) it holds nothing."""
    probe = ("import atexit, sys\nfrom cniscope import collector\nfrom cniscope.cli import main\n"
             "main(['analyze', '--json', sys.argv[-1]])\nbefore = collector._until_exit\n"
             "atexit.register(lambda: print(before, [type(x).__name__ for x in collector._until_exit or ()], file=sys.stderr))\n"
             "sys.exit(main())")
    done = subprocess.run([sys.executable, "-c", probe, "analyze", "--json", str(SEED)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "None ['Report']"


@pytest.mark.parametrize(("args", "code"), [(["analyze", "{good}"], ExitCode.OK), (["analyze", "--json", "{good}"], ExitCode.OK),
                                            (["analyze", "--fail-on", "info", "{good}"], ExitCode.FINDINGS),
                                            (["read", "{cut}"], ExitCode.DAMAGED_INPUT), (["analyze", "{missing}"], ExitCode.BAD_INPUT)])
def test_the_process_ends_at_once_with_its_exit_code_and_whole_output(files: dict[str, str], args: list[str], code: ExitCode) -> None:
    """As a process, main() ends without the interpreter's teardown, after the exit handlers, its exit code and all of
    its output (buffered text too) as in-process; while another thread runs, it leaves the ending to the interpreter."""
    argv = [a.format(**files) for a in args]
    expected = run(*argv)
    probe = "import atexit, sys\nfrom cniscope.cli import main\natexit.register(print, 'handled')\nsys.exit(main())"
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # (as a process's output mostly is)
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120, env=buffered)
    assert (done.returncode, done.stdout) == (code, expected.out + "handled\n")  # (printed at exit: flushed)
    waiting = ("import sys, threading\nfrom cniscope.cli import main\nreturned = threading.Event()\n"  # (joined only after main: no race)
               "threading.Thread(target=lambda: (returned.wait(), print('joined'))).start()\n"
               "code = main()\nreturned.set()\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", waiting, *argv], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (code, expected.out + "joined\n")


def test_a_closed_pipe_ends_the_process_quietly(tmp_path: Path) -> None:
    """`cniscope read FILE | head -1`: the process ends by SIGPIPE, as tcpdump's does, with no message."""
    many = tmp_path / "many.pcap"  # more lines than a pipe holds
    many.write_bytes(pcap_file.encode(REFUSED * 10_000, [T0 + n for n in range(20_000)], 1))
    reader = subprocess.Popen([sys.executable, "-m", "cniscope", "read", str(many)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.readline()
    reader.stdout.close()
    assert reader.wait(timeout=120) == -signal.SIGPIPE
    assert reader.stderr.read() == b""
