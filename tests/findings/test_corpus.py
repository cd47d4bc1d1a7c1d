"""The detectors on real published captures (tests/data/corpus; each .meta.md says what happened)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cniscope.analyze import analyze
from cniscope.errors import ExitCode
from cniscope.results import FindingKind, Severity
from cniscope.sources import InputSpec
from tests.findings.wire import alarms, of_kind
from tests.paths import CORPUS, SEED


def corpus(number: str) -> Path:
    (found,) = CORPUS.glob(f"{number}-*.txt")
    return found


def test_12_dns_answer_lost_between_flannel1_and_eth0_on_host0() -> None:
    report = analyze([InputSpec(str(corpus("12")), node="host0")])
    lost = [f for f in report.findings if f.kind in (FindingKind.DROP, FindingKind.UNANSWERED) and f.iface == "flannel.1"]
    assert len(lost) == 1
    f = lost[0]
    assert f.kind is FindingKind.DROP and f.node == "host0"
    assert f.evidence.interfaces == ("host0 flannel.1 Out",) and f.key == "drop.tunnel_out"  # no envelope left the NIC
    assert "envelopes_filtered" in f.evidence.notes  # the DNS capture filtered the tunnel port: said plainly
    answers = [report.journeys[j] for j in f.journeys]
    assert {"DNS answer" in j.summary for j in answers} == {True} and len(answers) == 2


def test_06_bad_checksums_on_the_sending_side_are_offload() -> None:
    report = analyze([InputSpec(str(corpus("06")))])
    found = of_kind(report, FindingKind.CHECKSUM_OFFLOAD)
    assert len(found) == 1 and found[0].severity is Severity.INFO
    assert found[0].evidence.packets == found[0].evidence.sent == 4 and found[0].evidence.received == 0
    assert alarms(report) == []


def test_14_two_nodes_clocks_apart(tmp_path: Path) -> None:
    lines = corpus("14").read_text().splitlines(keepends=True)
    node01, node02 = tmp_path / "node01.txt", tmp_path / "node02.txt"
    node01.write_text("".join(lines[:28]))  # per the .meta.md: lines 1-28 on Node01, 29-58 on Node02
    node02.write_text("".join(lines[28:]))
    report = analyze([InputSpec(str(node01), node="node01"), InputSpec(str(node02), node="node02")])
    skew = of_kind(report, FindingKind.CLOCK_SKEW)
    assert len(skew) == 1 and skew[0].node in ("node01", "node02")
    assert abs(report.clocks[0].offset_ns) > 3600 * 10**9


def test_22_nodeport_dnat_and_snat() -> None:
    report = analyze([InputSpec(str(corpus("22")))])
    rewrites = sorted((f.evidence.rewrite, f.evidence.addresses) for f in of_kind(report, FindingKind.NAT))
    assert rewrites == [("dnat", ("10.128.0.5:30080", "10.32.0.3:80")), ("snat", ("10.128.0.4:48036", "10.32.0.1:48036"))]
    assert alarms(report) == []


def test_seed_three_copies_are_no_retransmission_and_no_alarm() -> None:
    report = analyze([InputSpec(str(SEED))])
    assert of_kind(report, FindingKind.RETRANSMISSION) == []
    assert alarms(report) == []


def _cli(*args: str) -> int:
    return subprocess.run([sys.executable, "-m", "cniscope", "analyze", *args], capture_output=True, timeout=120).returncode


def test_fail_on_sets_the_exit_code() -> None:
    twelve, twenty_two = str(corpus("12")), str(corpus("22"))
    assert _cli(twelve, "--fail-on", "warning") == ExitCode.FINDINGS  # the drop (a warning: the capture filtered envelopes)
    assert _cli(twelve, "--fail-on", "error") == ExitCode.OK
    assert _cli(twelve) == ExitCode.OK
    assert _cli(twenty_two, "--fail-on", "warning") == ExitCode.OK  # NAT is information
    assert _cli(twenty_two, "--fail-on", "info") == ExitCode.FINDINGS


def test_22_translated_hops_found_over_arrays_are_those_walked(monkeypatch) -> None:
    """`nat._translated` over the materialised hops' arrays finds the hops a walk over every hop finds, in order."""
    import numpy as np

    from cniscope.findings import nat
    from cniscope.journeys import HopArrays

    journeys = analyze([InputSpec(str(corpus("22")))]).journeys
    monkeypatch.setattr(nat, "hop_arrays", lambda given: None)
    walked = list(nat._translated(journeys))
    assert {c.kind.value for _, _, mine in walked for c in mine} == {"dnat", "snat"}
    hops = [h for j in journeys for h in j.hops]
    made = HopArrays([j.hops for j in journeys], np.array([len(j.hops) for j in journeys]),
                     np.array([h.row for h in hops]), np.array([id(h.changes) for h in hops], dtype=np.int64),
                     list({id(h.changes): h.changes for h in hops}.values()))
    monkeypatch.setattr(nat, "hop_arrays", lambda given: made)
    assert [(j.id, h.row, mine) for j, h, mine in nat._translated(journeys)] == [(j.id, h.row, mine) for j, h, mine in walked]
    assert len({h.row for _, h, _ in walked}) < len(hops)  # (hops that translate nothing among them)
