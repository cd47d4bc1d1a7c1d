"""Precision: what `lab record` captures in a healthy lab of every buildable model raises no warning and no error.

The recorded copies in tests/data/scenarios are checked without root (test_classes.py); this builds each model
afresh, so a change of the lab or of a detector cannot hide behind an old recording.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.lab.cluster import Lab
from cniscope.lab.scenarios import SCENARIOS, record
from cniscope.lab.spec import default_spec
from cniscope.sources import InputSpec
from tests.findings.wire import alarms
from tests.lab.helpers import BUILDABLE
from tests.marks import needs_root

pytestmark = needs_root


@pytest.mark.parametrize("model", BUILDABLE)
def test_healthy_lab_record_raises_no_alarm(model: str, tmp_path: Path) -> None:
    with Lab.up(default_spec(model, nodes=3, name=f"tp{os.getpid()}-{BUILDABLE.index(model)}")) as lab:
        recorded = {scenario: record(lab, scenario, tmp_path) for scenario in SCENARIOS}
    raised = {}
    for scenario, result in recorded.items():
        assert result.ok, f"{model} {scenario}: the request failed in a healthy lab"
        # as `cniscope analyze DIR` reads it: with the cluster.yaml `lab record` writes beside the captures (a short
        # capture may show nothing a node sends from its own address, and a BGP packet to it would look forwarded)
        report = analyze([InputSpec(str(tmp_path / scenario))], cluster=str(tmp_path / scenario / "cluster.yaml"))
        raised[scenario] = [(f.severity.value, f.kind.value, f.node, f.iface, f.title) for f in alarms(report)]
    assert raised == {scenario: [] for scenario in SCENARIOS}
