"""The `--json` report of every corpus capture, the seed (its capture and its study note), each recorded lab scenario and a small capture of the
reference generator, against golden files: speed work must not change what the tool says.

Golden files live in tests/data/golden/json/. After a deliberate change of the analysis, rewrite them with
CNISCOPE_UPDATE_GOLDEN=1 and read the diff before committing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.lab.scenarios import SCENARIOS as SCENARIO_NAMES
from cniscope.report.json_out import to_dict
from cniscope.sources import InputSpec
from tests.lab.helpers import BUILDABLE
from tests.paths import CORPUS, DATA, REPO, SEED

GOLDEN = DATA / "golden" / "json"
NOTE = SEED.parent / "000_e1caf8e46a1ea381.txt"  # the seed's study note: prose, a prompt naming node3, tcpdump's lines
SCENARIOS = DATA / "scenarios"  # `cniscope lab record MODEL -o scenarios/MODEL`: one directory per scenario
GENERATOR = REPO / "benchmarks" / "gen_capture.py"


def _cases() -> list[tuple[str, Path, list[str]]]:
    """(golden name, directory to run in, inputs as given on the command line): relative names keep them portable."""
    cases = [("seed-kube-router-node3", SEED.parent, [f"node3={SEED.name}"]), ("seed-note", SEED.parent, [NOTE.name])]
    cases += [(p.stem, CORPUS, [p.name]) for p in sorted(CORPUS.iterdir()) if not p.name.endswith(".md")]
    cases += [(f"lab-{d.parent.name}-{d.name}", d.parent, [d.name]) for d in sorted(SCENARIOS.glob("*/*")) if d.is_dir()]
    return cases


def _golden(name: str, document: dict) -> None:
    golden = GOLDEN / f"{name}.json"
    rendered = json.dumps(document, indent=1, sort_keys=True) + "\n"
    if os.environ.get("CNISCOPE_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text()


@pytest.mark.parametrize("name,directory,given", _cases(), ids=[c[0] for c in _cases()])
def test_golden_json(name: str, directory: Path, given: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(directory)
    _golden(name, to_dict(analyze([InputSpec.parse(g) for g in given])))


def test_every_scenario_of_every_buildable_model_is_covered() -> None:
    recorded = {(d.parent.name, d.name) for d in SCENARIOS.glob("*/*") if d.is_dir()}
    assert recorded == {(m, s) for m in BUILDABLE for s in SCENARIO_NAMES}


def generated(tmp_path: Path, packets: int, fmt: str = "pcap") -> Path:
    """A capture of the reference generator (deterministic: the same bytes every time)."""
    path = tmp_path / f"gen-{packets}.{fmt}"
    subprocess.run([sys.executable, str(GENERATOR), "-n", str(packets), "--snaplen", "256", f"--{fmt}", str(path)], check=True)
    return path


def test_golden_json_of_the_reference_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = generated(tmp_path, 3000)
    monkeypatch.chdir(tmp_path)
    _golden("gen-capture-3000", to_dict(analyze([InputSpec(path.name)])))


@pytest.mark.parametrize("name,directory,given", _cases()[::3], ids=[c[0] for c in _cases()[::3]])
def test_a_tiny_memory_limit_gives_the_same_report(name: str, directory: Path, given: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Correlated in many fingerprint partitions (a 64 KiB limit), two at a time or one: the very same report."""
    monkeypatch.chdir(directory)
    specs = [InputSpec.parse(g) for g in given]
    whole = to_dict(analyze(specs, memory=1 << 30, workers=1))
    assert to_dict(analyze(specs, memory=64 << 10, workers=2)) == whole
    assert to_dict(analyze(specs, memory=64 << 10, workers=1)) == whole


def test_a_tiny_memory_limit_partitions_the_reference_capture(tmp_path: Path) -> None:
    from cniscope.analyze import plan_partitions

    path = generated(tmp_path, 3000, "pcapng")
    report = analyze([InputSpec(str(path))], memory=1 << 30)
    assert plan_partitions(report.table.height, report.table.estimated_size(), 64 << 10, 2) > 50
    small = to_dict(analyze([InputSpec(str(path))], memory=64 << 10))
    whole = to_dict(report)
    assert (small["journeys_total"], small["flows_total"]) == (whole["journeys_total"], whole["flows_total"])
    assert small == whole
