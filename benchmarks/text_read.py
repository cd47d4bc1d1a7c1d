"""How fast the tcpdump text reader goes: lines and packets per second.

    .venv/bin/python benchmarks/text_read.py [--lines 1000000]

Builds a text capture of about --lines lines by repeating the real text
captures (seed, corpus, tests/data/text fixtures: every variant the reader
knows), then times `iter_tables` over it (one process, file in the page
cache) and, for scale, `cat` of the same file.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = [REPO.parent / "shared" / "seed" / "kube-router-curl-node3.txt",
           *sorted((REPO.parent / "shared" / "corpus").glob("*.txt")),
           *sorted((REPO / "tests" / "data" / "text").glob("*.txt"))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    from cniscope.sources import InputInfo
    from cniscope.sources.tcpdump_text import iter_tables

    block = "".join(p.read_text() for p in SOURCES)
    per_block = block.count("\n")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for _ in range(max(1, args.lines // per_block)):
            f.write(block)
        path = Path(f.name)
    try:
        lines = sum(1 for _ in path.open())
        t = time.perf_counter()
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
        cat_s = time.perf_counter() - t
        info = InputInfo(index=0, name=str(path))
        t = time.perf_counter()
        rows = 0
        with path.open(encoding="utf-8", errors="replace") as stream:
            for table in iter_tables(stream, info):
                rows += len(table)
        read_s = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{lines} lines, {rows} packets, {path.stat().st_size / 1e6:.1f} MB, unparsed {info.unparsed_lines}")
        print(f"text reader: {read_s:.2f} s = {lines / read_s / 1e3:.0f} k lines/s, {rows / read_s / 1e3:.0f} k packets/s; "
              f"peak RSS {peak_mb:.0f} MB (cat: {cat_s:.3f} s)")
    finally:
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
