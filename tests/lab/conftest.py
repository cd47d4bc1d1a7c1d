"""Lab tests: root-only ones skip (saying why) without root; every lab is checked for leaks."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from cniscope.lab import state as lab_state
from cniscope.lab.naming import NS_PREFIX, STATE_ROOT

TEST_PREFIX = f"t{os.getpid()}lab"  # every lab name in these tests starts with it

def lab_name(suffix: str) -> str:
    return f"{TEST_PREFIX}-{suffix}"


def lab_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{NS_PREFIX}{TEST_PREFIX}")]


def assert_no_leak() -> None:
    assert lab_namespaces() == []
    leftover = sorted(p.name for p in STATE_ROOT.glob(f"{TEST_PREFIX}*")) if STATE_ROOT.is_dir() else []
    assert leftover == []


@pytest.fixture(scope="session", autouse=True)
def reap_first() -> None:
    """Remove labs left by killed earlier runs (their owner pid is gone)."""
    if os.geteuid() == 0:
        lab_state.reap()


@pytest.fixture(scope="module", autouse=True)
def no_leak_after_module() -> Iterator[None]:
    yield
    if os.geteuid() == 0:
        assert_no_leak()
