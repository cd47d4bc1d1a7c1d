"""What `analyze` holds: the report's table without the columns the analysis is done with gives the same report."""

from __future__ import annotations

from pathlib import Path

import pytest

from cniscope import spill
from cniscope.analyze import HOPS_ONLY, KEY_ONLY, UNREAD, analyze_capture
from cniscope.ingest import expand, read
from cniscope.journeys import hop_delay
from cniscope.packets.schema import NAMES
from cniscope.report.json_out import to_dict
from cniscope.sources import InputSpec
from tests.cli import run
from tests.paths import SEED
from tests.test_analyze_golden import _cases, generated

CASES = _cases()


@pytest.mark.parametrize("name,directory,given", CASES, ids=[c[0] for c in CASES])
def test_without_the_columns_done_with_every_capture_gives_the_same_report(name: str, directory: Path, given: list[str],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Corpus, seed and lab scenarios: the whole JSON report; the capture's table is let go for the report's."""
    monkeypatch.chdir(directory)
    specs = expand([InputSpec.parse(g) for g in given])
    whole = analyze_capture(read(specs))
    assert set(NAMES) <= set(whole.table.columns)
    by_hop = whole.table.sort("journey", "hop")  # the delays materialising derives are correlation's, hop for hop
    assert by_hop.select(delay=hop_delay())["delay"].to_list() == by_hop["delay"].to_list()
    capture = read(specs)
    narrow = analyze_capture(capture, keep_columns=False)
    assert to_dict(narrow) == to_dict(whole)
    assert not set(UNREAD + KEY_ONLY + HOPS_ONLY) & set(narrow.table.columns)
    assert capture.table is narrow.table


def test_without_the_columns_a_selection_and_a_spilled_capture_give_the_same_report(tmp_path: Path) -> None:
    specs = [InputSpec(str(generated(tmp_path, 3000)))]
    for select, flow in ((None, None), ("tcp", None), (None, 3)):
        whole = to_dict(analyze_capture(read(specs), select=select, flow=flow))
        assert to_dict(analyze_capture(read(specs), select=select, flow=flow, keep_columns=False)) == whole
    capture, correlated = spill.read(specs, memory=64 << 10, workers=2, partitions=5)
    assert to_dict(analyze_capture(capture, correlated=correlated, keep_columns=False)) == to_dict(analyze_capture(read(specs)))


def test_the_command_keeps_every_column_for_the_annotated_pcapng_only(tmp_path: Path) -> None:
    """--json and the terminal report say the same either way; --pcapng writes what a full table gives."""
    out = tmp_path / "a.pcapng"
    plain, annotated = run("analyze", "--json", f"node3={SEED}"), run("analyze", "--json", "--pcapng", str(out), f"node3={SEED}")
    assert plain.code == annotated.code == 0 and plain.out == annotated.out
    assert out.stat().st_size > 0
