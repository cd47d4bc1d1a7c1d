"""Fixtures of the report tests: `validate_report_json` (also importable from tests.report.schema_check) and
one real lab capture shared by the HTML and pcapng tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.report.schema_check import validate_report_json as _validate


@pytest.fixture
def validate_report_json() -> Callable[[str | bytes | dict[str, Any]], dict[str, Any]]:
    return _validate


def _lab_capture(out: Path, model: str, name: str, target: str, expected: str) -> tuple[dict[str, Path], Path]:
    """Build a two-node lab of `model`, capture on both nodes while client1 (node1) curls `target`, tear it down."""
    from cniscope.lab.cluster import Lab
    from cniscope.lab.cluster_yaml import write_inventory
    from cniscope.lab.record import capture
    from cniscope.lab.spec import default_spec
    from cniscope.lab.state import reap

    reap()  # labs left by killed runs (their owner pid is gone)
    lab = Lab.up(default_spec(model, nodes=2, name=name))
    try:
        captures, answer = capture(lab, ["node1", "node2"], out, lambda: lab.curl("client1", target))
    finally:
        lab.down()
    assert answer.stdout.strip() == expected, answer
    return {c.node: c.path for c in captures}, write_inventory(lab.spec, out / "cluster.yaml")


@pytest.fixture(scope="session")
def lab_capture(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """kube-router, two nodes: client1 (node1) calls Service `web` (backed by web2 on node2).

    Gives the pcapng of each node and the lab's cluster inventory (short YAML)."""
    return _lab_capture(tmp_path_factory.mktemp("lab"), "kube-router", f"rep{os.getpid()}", "web", "web2 on node2")


@pytest.fixture(scope="session")
def vxlan_capture(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    """flannel-vxlan, two nodes: client1 (node1) calls pod web2 (node2) across the VXLAN tunnel."""
    return _lab_capture(tmp_path_factory.mktemp("vxlan"), "flannel-vxlan", f"repv{os.getpid()}", "web2", "web2 on node2")
