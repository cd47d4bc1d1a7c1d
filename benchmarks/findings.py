"""How much of `analyze` the detectors take, against `tcpdump -nn -r` printing the same file.

    python benchmarks/findings.py [--sizes 200K,1M]

Same generated LINUX_SLL2 captures as benchmarks/decode.py. In this process:
the whole `analyze()` (20,000 journeys materialised, the default) and, inside
it, `cniscope.findings.detect`; then tcpdump printing the file, same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import capture_for, parse_size, warm  # noqa: E402

import cniscope.findings as findings  # noqa: E402
from cniscope.analyze import analyze  # noqa: E402
from cniscope.sources import InputSpec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200K,1M")
    args = parser.parse_args()
    detect = findings.detect
    spent: list[float] = []

    def timed_detect(*a: object, **k: object) -> list:
        started = time.perf_counter()
        found = detect(*a, **k)  # type: ignore[arg-type]
        spent.append(time.perf_counter() - started)
        return found

    findings.detect = timed_detect  # type: ignore[assignment]
    print(f"{'packets':>9s} {'analyze s':>10s} {'detect s':>9s} {'findings':>9s} {'tcpdump s':>10s} {'detect/tcpdump':>15s}")
    for size in args.sizes.split(","):
        packets = parse_size(size)
        path = capture_for(packets, 128)
        warm(path)
        spent.clear()
        started = time.perf_counter()
        report = analyze([InputSpec(str(path))])
        total = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(["tcpdump", "-nn", "-r", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        tcpdump = time.perf_counter() - started
        print(f"{packets:9,d} {total:10.2f} {spent[0]:9.2f} {len(report.findings):9d} {tcpdump:10.2f} {spent[0] / tcpdump:15.3f}")


if __name__ == "__main__":
    main()
