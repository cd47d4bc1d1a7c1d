"""The capture tests' own helpers (conftest.py) keep their bounds: a capture that does not start fails the test
in time, saying what it said and where its threads were, instead of blocking it."""

from __future__ import annotations

import sys
import time

import pytest

from .conftest import Capturing

SILENT = "import sys, time; print('preparing', file=sys.stderr, flush=True); time.sleep(600)"
TALKING = "import sys, time\nwhile True:\n    print('still preparing', file=sys.stderr, flush=True); time.sleep(0.2)"


@pytest.mark.parametrize("script", [SILENT, TALKING], ids=["silent", "talking"])
def test_a_capture_that_never_says_it_is_capturing_fails_within_its_bound(script: str) -> None:
    began = time.monotonic()
    with pytest.raises(AssertionError, match="did not say it was capturing within 2 s") as failed:
        Capturing([sys.executable, "-c", script], start_s=2)
    assert time.monotonic() - began < 60  # its bound and the dump's, not the program's 600 s
    said = str(failed.value)
    assert "preparing" in said and "most recent call first" in said  # what it said, then where it was (faulthandler)


def test_a_capture_that_ends_before_it_starts_fails_with_what_it_said() -> None:
    with pytest.raises(AssertionError, match="did not start:\nno such node"):
        Capturing([sys.executable, "-c", "import sys; sys.exit('no such node')"])


def test_a_capture_that_says_it_is_capturing_runs_until_interrupted() -> None:
    running = Capturing([sys.executable, "-c", "import sys, time; print('capturing on 1 node(s): n1', file=sys.stderr, "
                                               "flush=True); time.sleep(600)"], start_s=30)
    assert running.proc.poll() is None and running.lines == ["capturing on 1 node(s): n1\n"]
    code, err = running.interrupt()
    assert code != 0 and err.startswith("capturing on 1 node(s): n1\nTraceback")  # SIGINT: KeyboardInterrupt
