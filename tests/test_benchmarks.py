"""The benchmark scripts run: `make bench`'s script and the stage timings, on captures small enough for a test.

They are where the README's figures come from; one of them once died on an import of a function that had moved,
and nothing noticed until it was run by hand. No figure is checked here (timed assertions do not belong in tests),
only that each script completes and prints every line its readers look for.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO

BENCHMARKS = REPO / "benchmarks"
STAGES = ("read", "correlate", "flows.number", "materialise", "flows.tally", "models.infer", "models.roles", "findings",
          "next_hops", "json", "total")


def test_bench_prints_the_readme_table(tmp_path: Path) -> None:
    """`make bench`'s command at one tiny size: it generates both formats, runs every tool and prints the table."""
    run = subprocess.run([sys.executable, str(BENCHMARKS / "bench.py"), "--sizes", "3k", "--data", str(tmp_path), "--one-core",
                          "--markdown"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen-3000-s256.pcap", "gen-3000-s256.pcapng"]  # no output left
    assert "decoder compiled (cniscope.packets._decode): True" in run.stdout
    assert "parquet encoder compiled, with liblz4 (cniscope.report._parquet): True" in run.stdout
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 3k |")]
    assert [row.split("|")[2].strip() for row in rows] == ["pcap", "pcapng"]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 11, row
        assert re.fullmatch(r"\*\*\d+\.\dx\*\* \(\d+\.\dx\)", cells[6]), row  # analyze against tcpdump
        assert all(cell.isdigit() and int(cell) > 0 for cell in cells[9:]), row  # bytes per packet
    assert run.stdout.count("2 cores vs 1:") == 4  # read and analyze, each format


def test_stage_timings_run_every_stage() -> None:
    """`benchmarks/analyze.py --stages` repeats analyze's pipeline in its own process: each stage is timed."""
    capture = REPO / "tests" / "data" / "corpus" / "01-ysaied-pan-cn-calico-vxlan.pcap"
    run = subprocess.run([sys.executable, str(BENCHMARKS / "analyze.py"), "--stages", "--capture", str(capture)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = [line.split()[0] for line in run.stdout.splitlines() if line.startswith("  ")]
    assert printed == list(STAGES)
