"""The process's end (`_exit.c`): its exit code and whole output at once, its memory let go by a helper that ends
after it (the kernel frees the memory of a process before its parent's wait returns: 17 ms at 200k packets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cniscope
from tests.compiled import compile_c

SOURCE = Path(cniscope.__file__).with_name("_exit.c")

# a child that holds memory and threads, writes more than a pipe holds, and leaves with code 7
CHILD = """
import sys, threading, importlib.util
spec = importlib.util.spec_from_file_location("_exit", sys.argv[1])
ended = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ended)
held = bytearray(64 << 20)  # touched: pages the helper's exit frees
held[::4096] = b"x" * len(held[::4096])
threading.Thread(target=threading.Event().wait, daemon=True).start()  # a thread still running as the process ends
sys.stdout.write("line\\n" * 100_000)
sys.stdout.flush()
ended.leave(7)
"""

# its parent, a subreaper (the helper, orphaned as the child ends, becomes its child): the child's code and output,
# then each other process that ends, in order
PARENT = """
import ctypes, os, subprocess, sys, time
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE)
out = child.stdout.read()  # to its end: the pipe's last writer is gone
print(child.wait(), out == b"line\\n" * 100_000)
until = time.monotonic() + 30
while time.monotonic() < until:
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break  # none left
    if pid:
        print("then", os.waitstatus_to_exitcode(status))
    else:
        time.sleep(0.001)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    module = compile_c(SOURCE, tmp_path_factory.mktemp("exit"))
    assert module.__file__ is not None
    return Path(module.__file__)


def test_the_process_ends_with_its_code_and_output_and_its_helper_after_it(built: Path) -> None:
    """The child's exit code and every byte it wrote reach its parent, its pipe ends with it (the helper closed its own
    descriptors), and one more process ends after it: the helper, with the memory they shared."""
    done = subprocess.run([sys.executable, "-c", PARENT, CHILD, str(built)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["7 True", "then 0"]
