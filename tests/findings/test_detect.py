"""The findings stages: facts are frozen, detectors are independent of each other's order, claims are made once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cniscope import findings
from cniscope.analyze import analyze
from cniscope.findings import facts as facts_mod
from cniscope.findings import losses as losses_mod
from cniscope.findings.found import Found
from cniscope.sources import InputSpec
from tests.paths import CORPUS, DATA

INPUTS = [p for p in sorted(CORPUS.iterdir()) if not p.name.endswith(".md")][:6] + sorted((DATA / "findings").glob("*.txt"))


@pytest.mark.parametrize("capture", INPUTS, ids=[p.name for p in INPUTS])
def test_detectors_in_any_order_say_the_same(capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = analyze([InputSpec(str(capture))])
    facts = facts_mod.build(report.table, report.journeys, report.flows, report.model, report.clocks)
    forward = findings.detect_in(facts)
    monkeypatch.setattr(findings, "DETECTORS", tuple(reversed(findings.DETECTORS)))
    assert sorted(map(repr, findings.detect_in(facts))) == sorted(map(repr, forward))  # listed in another order only
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.local = {}  # type: ignore[misc]
    losses = losses_mod.find(facts)
    for detector in findings.DETECTORS:  # pure: the same facts and losses give the same findings and claims
        once, again = detector(facts, losses), detector(facts, losses)
        assert isinstance(once, Found) and once == again
        assert once.claimed <= {loss.journey.id for loss in losses.found}  # only lost packets are claimed


@pytest.mark.parametrize("capture", INPUTS[:4] + INPUTS[-2:], ids=[p.name for p in INPUTS[:4] + INPUTS[-2:]])
def test_a_sightings_values_read_from_the_column_or_listed_say_the_same(capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`Facts._get` reads a value from its column until the column has been read `NEAR_AFTER` times, then from a list
    of its values at every materialised sighting: the findings are the same whichever it reads them from."""
    report = analyze([InputSpec(str(capture))])
    said = {}
    for after in (1, 3, 1 << 30):
        monkeypatch.setattr(facts_mod, "NEAR_AFTER", after)
        facts = facts_mod.build(report.table, report.journeys, report.flows, report.model, report.clocks)
        said[after] = list(map(repr, findings.detect_in(facts)))
        listed = {key for key, reads in facts._reads.items() if reads >= after}
        assert set(facts._near) == listed and (after > 1 or listed == set(facts._reads))  # at once, after 3 reads, never
    assert said[1] == said[3] == said[1 << 30]
