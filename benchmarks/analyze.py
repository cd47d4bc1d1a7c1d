"""End-to-end `cniscope analyze --json` against `tcpdump -nn -r` merely printing the same file.

    python benchmarks/analyze.py [--sizes 1M,10M] [--rounds 1]

Same generated LINUX_SLL2 captures as benchmarks/decode.py (TCP conversations
between pods and nodes, a fifth VXLAN-encapsulated), same run, whole-process
wall time and peak memory of each tool. Prints the ratio the README quotes
(issue 3's target: analyze at least 5x faster than tcpdump printing, at most
400 bytes of peak memory per packet).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import CNISCOPE, Run, capture_for, parse_size, timed, warm  # noqa: E402


def bench(packets: int, snaplen: int, rounds: int) -> dict[str, Run]:
    path = capture_for(packets, snaplen)
    warm(path)
    commands = {
        "cniscope": [str(CNISCOPE), "analyze", "--json", "--max-journeys", "1000", str(path)],
        "tcpdump": ["tcpdump", "-nn", "-r", str(path)],
    }
    best: dict[str, Run] = {}
    for round_ in range(rounds):
        for tool, argv in commands.items():
            run = timed(tool, argv)
            print(f"  round {round_ + 1} {tool:9s} {run.seconds:8.2f} s  {run.peak_bytes / 1e6:8.0f} MB", flush=True)
            if run.status not in (0, 1):
                raise SystemExit(f"{tool} failed")
            if tool not in best or run.seconds < best[tool].seconds:
                best[tool] = run
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1M,10M")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--snaplen-10m", type=int, default=128)
    args = parser.parse_args()
    for size in args.sizes.split(","):
        packets = parse_size(size)
        snaplen = args.snaplen_10m if packets >= 10_000_000 else 262144
        best = bench(packets, snaplen, args.rounds)
        ours, tcpdump = best["cniscope"], best["tcpdump"]
        print(f"\n{packets:,} packets, snaplen {snaplen}: analyze {ours.seconds:.2f} s, {ours.peak_bytes / packets:.0f} B/packet peak; "
              f"tcpdump -nn -r {tcpdump.seconds:.2f} s; analyze is {tcpdump.seconds / ours.seconds:.1f}x faster\n", flush=True)


if __name__ == "__main__":
    main()
