"""Progress of `cniscope analyze` on a real terminal (a pty): the stage, the share of the input's bytes read and
an ETA for text read from a file, the bytes read through a pipe, and nothing at all when standard error is no
terminal."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from rich.console import Console

from cniscope.commands.progress import PROGRESS_MIN_BYTES, Progress
from cniscope.sources import InputSpec
from tests.paths import CORPUS, REPO, SEED

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def text_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tcpdump's -nn text of a reference-generator capture, larger than the least input that gets progress."""
    folder = tmp_path_factory.mktemp("progress")
    pcap, text = folder / "node.pcap", folder / "node.txt"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gen_capture.py"), "-n", "60000", "--snaplen", "256",
                    "--pcap", str(pcap)], check=True, capture_output=True)
    with open(text, "wb") as out:
        subprocess.run(["tcpdump", "-nn", "-r", str(pcap)], stdout=out, stderr=subprocess.DEVNULL, check=True)
    assert text.stat().st_size > PROGRESS_MIN_BYTES
    return text


def on_a_terminal(command: str) -> tuple[int, str]:
    """Run `command` in a shell whose standard error is a pty 200 columns wide (standard output to /dev/null);
    its exit status and what the terminal was sent, escape sequences removed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                            env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=300), ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def cniscope(args: str) -> str:
    return f"{sys.executable} -m cniscope analyze {args}"


def test_a_text_file_shows_the_share_read_and_the_time_left(text_capture: Path) -> None:
    status, shown = on_a_terminal(cniscope(str(text_capture)))
    assert status == 0
    assert re.search(rf"reading {re.escape(str(text_capture))}: [\d,]+ packets \(\d+%, about \d+ s left\)", shown), shown
    assert "correlating" in shown and "inferring the network model" in shown  # the stages after reading


def test_standard_input_from_a_file_shows_the_share_read(text_capture: Path) -> None:
    status, shown = on_a_terminal(cniscope(f"- < {text_capture}"))
    assert status == 0
    assert re.search(r"reading -: [\d,]+ packets \(\d+%, about \d+ s left\)", shown), shown


def test_a_pipe_shows_the_bytes_read(text_capture: Path) -> None:
    """Through a pipe the length is unknown: the bytes read so far, no share."""
    status, shown = on_a_terminal(f"gzip -c {text_capture} | {cniscope('-')}")
    assert status == 0
    assert re.search(r"reading -: [\d,]+ packets \([\d,]+ MB read\)", shown), shown


def test_nothing_when_standard_error_is_no_terminal(text_capture: Path) -> None:
    proc = subprocess.run(cniscope(str(text_capture)).split(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout
    assert "reading" not in proc.stderr and "\x1b" not in proc.stderr


def test_rich_is_imported_only_where_standard_error_may_be_a_terminal(text_capture: Path) -> None:
    """A long input into a pipe needs no progress line, nor rich to know it (its imports cost 0.02 s); FORCE_COLOR
    makes rich take a pipe for a terminal, so it is imported then."""
    code = ("import sys; from cniscope.commands.progress import Progress; from cniscope.sources import InputSpec; "
            "shown = Progress([InputSpec(sys.argv[1])]).line is not None; print(shown, 'rich' in sys.modules)")
    plain = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    for env, said in ((plain, "False False"), ({**plain, "FORCE_COLOR": "1"}, "True True")):
        proc = subprocess.run([sys.executable, "-c", code, str(text_capture)], capture_output=True, text=True, env=env,
                              timeout=60)
        assert proc.stdout.split() == said.split(), proc.stderr


def test_a_compressed_file_shows_the_share_of_its_compressed_bytes(text_capture: Path, tmp_path: Path) -> None:
    """A compressed input's progress is its compressed bytes read (the decompressed length is not known ahead)."""
    packed = tmp_path / "node.txt.gz"
    with open(packed, "wb") as out:
        subprocess.run(["gzip", "-c", str(text_capture)], stdout=out, check=True)
    console = Console(file=io.StringIO(), width=200, force_terminal=True, color_system="standard")
    with Progress([InputSpec(str(packed))], console, min_bytes=1) as progress:
        capture = progress.read([InputSpec(str(packed))])
    shown = ANSI.sub("", console.file.getvalue())
    assert capture.inputs[0].done == 1.0
    assert re.search(rf"reading {re.escape(str(packed))}: [\d,]+ packets \(\d+%, about \d+ s left\)", shown), shown


def _console(terminal: bool, width: int = 100) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=terminal, color_system="standard" if terminal else None,
                   highlight=False, soft_wrap=True), out


def _strip(coloured: str) -> str:
    return "\n".join(line.rstrip() for line in re.sub(r"\x1b\[[0-9;]*m", "", coloured).splitlines())


def test_progress_on_a_terminal_for_long_inputs(tmp_path):
    spec = InputSpec(str(SEED), "node3")
    console, out = _console(terminal=True)
    with Progress([spec], console, min_bytes=1) as progress:
        capture = progress.read([spec])
        progress.stage("analysing")
    shown = _strip(out.getvalue())
    assert f"reading {SEED}: {capture.table.height} packets" in shown
    assert capture.table.height == 15 and capture.inputs[0].packets == 15 and capture.inputs[0].node == "node3"


def test_progress_says_the_share_of_a_binary_input_read():
    spec = InputSpec(str(CORPUS / "02-ysaied-pan-cn-calico-eth.pcap"))
    console, out = _console(terminal=True, width=300)
    with Progress([spec], console, min_bytes=1) as progress:
        capture = progress.read([spec])
    shown = _strip(out.getvalue())
    assert f"reading {spec.path}: {capture.table.height:,} packets (100%, about 0 s left)" in shown


@pytest.mark.parametrize("terminal,min_bytes", [(False, 1), (True, 1 << 30)], ids=["not a terminal", "short input"])
def test_no_progress_off_a_terminal_or_for_short_inputs(terminal: bool, min_bytes: int):
    spec = InputSpec(str(SEED))
    console, out = _console(terminal=terminal)
    with Progress([spec], console, min_bytes=min_bytes) as progress:
        capture = progress.read([spec])
    assert out.getvalue() == ""
    assert capture.table.height == 15
