"""Fixtures of the report tests: `validate_report_json` (also importable from tests.report.schema_check) and
one real lab capture shared by the HTML and pcapng tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.report.schema_check import validate_report_json as _validate


@pytest.fixture
def validate_report_json() -> Callable[[str | bytes | dict[str, Any]], dict[str, Any]]:
    return _validate


@pytest.fixture(scope="session")
def lab_capture(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """A kube-router lab of two nodes; client1 (node1) calls Service `web` (backed by web2 on node2).

    Gives the pcapng of each node and the lab's cluster inventory (short YAML)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to build the lab (network namespaces)")
    from cniscope.lab.capture import capture
    from cniscope.lab.cluster import Lab
    from cniscope.lab.inventory import write_inventory
    from cniscope.lab.spec import default_spec
    from cniscope.lab.state import reap

    reap()  # labs left by killed runs (their owner pid is gone)
    out = tmp_path_factory.mktemp("lab")
    lab = Lab.up(default_spec("kube-router", nodes=2, name=f"rep{os.getpid()}"))
    try:
        captures, answer = capture(lab, ["node1", "node2"], out, lambda: lab.curl("client1", "web"))
    finally:
        lab.down()
    assert answer.stdout.strip() == "web2 on node2", answer
    return {c.node: c.path for c in captures}, write_inventory(lab.spec, out / "cluster.yaml")
