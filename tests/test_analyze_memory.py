"""What `analyze` holds: the report's table without the columns the analysis is done with gives the same report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cniscope import spill
from cniscope.analyze import HOPS_ONLY, KEY_ONLY, UNREAD, analyze_capture, compact
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



def test_compact_makes_text_columns_with_nulls_again_with_the_same_values_codes_and_chunks() -> None:
    """`compact` keeps every value, the Categorical codes and each column's chunks (other columns are the same
    objects' data): the report does not change, only what the rows' validity keeps alive."""
    import pyarrow as pa

    parts = []
    for start in range(3):
        keys = np.array([-1, 0, 1, -1, 2][start:] + [-1] * start, dtype=np.int32)
        six = pa.DictionaryArray.from_arrays(pa.array(keys, mask=keys < 0), pa.array(["fe80::1", "fe80::2", "::1"]))
        parts.append(pl.from_arrow(pa.RecordBatch.from_arrays([six, pa.array(np.arange(5) + start)], names=["src6", "n"])))
    table = pl.concat(parts, rechunk=False).with_columns(pl.lit(None, dtype=pl.Categorical).alias("node"))
    made = compact(table)
    assert made.schema == table.schema
    assert made.equals(table)
    assert made["src6"].to_physical().equals(table["src6"].to_physical())
    assert [c.len() for c in made["src6"].get_chunks()] == [c.len() for c in table["src6"].get_chunks()] == [5, 5, 5]
    assert made["src6"].null_count() == table["src6"].null_count() == 2 + 2 + 3
