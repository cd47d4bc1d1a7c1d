"""`make bench`: `cniscope read` and `cniscope analyze` with default flags, against `tcpdump -nn -r` and tshark,
same run, on the reference generator's captures (benchmarks/gen_capture.py).

    python benchmarks/bench.py [--sizes 200k,2M,10M] [--formats pcap,pcapng] [--data DIR] [--rounds 1]
                               [--skip-tshark-above N] [--one-core] [--markdown]

Each size is generated once (into --data, benchmarks/data/ by default, git-ignored) as the generator's LINUX_SLL2
pcap and its pcapng (one interface block per interface): snaplen 256 below 10M packets, 128 from 10M on (1.2 GB
at 10M). The file is read once to warm the page cache, then each tool runs as its own process and
/usr/bin/time gives its wall time and peak resident memory:

    cniscope read --format parquet -o OUT FILE       cniscope analyze --json FILE
    tcpdump -nn -r FILE                             tshark -r FILE              (standard output to /dev/null)

Printed per size and format: seconds, peak MB and bytes per packet of each, and how many times faster
cniscope is than tcpdump and tshark (their time / cniscope's), in wall time and, on a shared machine the
steadier figure, in CPU time (user + system). `--one-core` also runs read and analyze on one core
(`taskset -c 0`) and prints the speedup of both cores over one (wall time). `--markdown` also prints the
README table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from decode import CNISCOPE, Run, compiled, parse_size, timed, warm  # noqa: E402

GENERATOR = HERE / "gen_capture.py"


def capture(data: Path, packets: int, fmt: str) -> Path:
    """The generator's capture of `packets` packets in format `fmt` (pcap or pcapng), made once."""
    snaplen = 128 if packets >= 10_000_000 else 256
    path = data / f"gen-{packets}-s{snaplen}.{fmt}"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        partial = path.with_suffix(".part")
        subprocess.run([sys.executable, str(GENERATOR), "-n", str(packets), "--snaplen", str(snaplen), f"--{fmt}", str(partial)],
                       check=True)
        partial.rename(path)
        print(f"generated {path.name}: {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def run_all(path: Path, tshark: bool, rounds: int, one_core: bool) -> dict[str, Run]:
    out = path.with_suffix(".out.parquet")
    out.unlink(missing_ok=True)  # left by an interrupted run: read refuses to replace a file
    commands = {
        "read": [str(CNISCOPE), "read", "--format", "parquet", "-o", str(out), str(path)],
        "analyze": [str(CNISCOPE), "analyze", "--json", str(path)],
        "tcpdump": ["tcpdump", "-nn", "-r", str(path)],
    }
    if tshark:
        commands["tshark"] = ["tshark", "-r", str(path)]
    if one_core:
        commands["read-1core"] = ["taskset", "-c", "0", *commands["read"]]
        commands["analyze-1core"] = ["taskset", "-c", "0", *commands["analyze"]]
    warm(path)
    best: dict[str, Run] = {}
    for round_ in range(rounds):
        for tool, argv in commands.items():
            out.unlink(missing_ok=True)
            run = timed(tool, argv)
            print(f"  round {round_ + 1} {tool:8s} {run.seconds:8.2f} s {run.peak_bytes / 1e6:8.0f} MB  cpu {run.cpu_seconds:7.2f} s",
                  flush=True)
            if run.status not in (0, 1):  # analyze exits 1 only with --fail-on
                raise SystemExit(f"{tool} failed on {path}")
            if tool not in best or run.seconds < best[tool].seconds:
                best[tool] = run
    out.unlink(missing_ok=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200k,2M,10M")
    parser.add_argument("--formats", default="pcap,pcapng")
    parser.add_argument("--data", type=Path, default=HERE / "data", help="where the generated captures are kept")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-tshark-above", type=parse_size, default=None, help="no tshark above this many packets")
    parser.add_argument("--one-core", action="store_true", help="also run read and analyze on one core (taskset -c 0)")
    parser.add_argument("--markdown", action="store_true", help="also print the README's table")
    args = parser.parse_args()
    probe = ("from cniscope import flows, journeys; from cniscope.wire import walk; from cniscope.packets import chunks; "
             "from cniscope.report import parquet_parts as p, json_out; from cniscope.models import evidence; "
             "print(walk.COMPILED, chunks.built(), journeys.COMPILED, flows.COMPILED, p._parquet is not None and bool(p._parquet.LZ4), "
             "evidence.COMPILED, json_out._lines is not None)")
    walk, decoder, steps, numbering, encoder, counted, written = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                                                      check=True).stdout.split()
    print(compiled(), flush=True)  # as an installed copy has it: no run compiles cniscope's modules again
    print(f"record walk compiled (cniscope.wire._walk): {walk}; decoder compiled (cniscope.packets._decode): {decoder}; "
          f"correlation's steps compiled (cniscope._journeys): {steps}; conversations' numbering compiled (cniscope._flows): {numbering}; "
          f"parquet encoder compiled, with liblz4 (cniscope.report._parquet): {encoder}; evidence counted in C (cniscope._evidence): {counted}; "
          f"JSON written in C (cniscope.report._json): {written}; "
          f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}", flush=True)
    lines = []
    for size in args.sizes.split(","):
        packets = parse_size(size)
        for fmt in args.formats.split(","):
            path = capture(args.data, packets, fmt)
            tshark = args.skip_tshark_above is None or packets <= args.skip_tshark_above
            print(f"== {packets:,} packets, {fmt}, {path.stat().st_size / 1e6:,.0f} MB", flush=True)
            best = run_all(path, tshark, args.rounds, args.one_core)
            for ours in ("read", "analyze"):
                run = best[ours]
                ratios = [f"{best[other].seconds / run.seconds:.1f}x {other} (cpu time {best[other].cpu_seconds / run.cpu_seconds:.1f}x)"
                          for other in ("tcpdump", "tshark") if other in best]
                print(f"{ours:8s} {run.seconds:7.2f} s {run.peak_bytes / packets:6.0f} B/packet  faster than: {', '.join(ratios)}",
                      flush=True)
                if f"{ours}-1core" in best:
                    print(f"{ours:8s} 2 cores vs 1: {best[f'{ours}-1core'].seconds / run.seconds:.2f}x "
                          f"({best[f'{ours}-1core'].seconds:.2f} s on one core)", flush=True)
            td, ts = best["tcpdump"], best.get("tshark")
            lines.append(
                f"| {size} | {fmt} | {best['analyze'].seconds:.2f} s | {best['read'].seconds:.2f} s | {td.seconds:.2f} s | "
                + (f"{ts.seconds:.2f} s" if ts else "not run") + " | "
                f"**{td.seconds / best['analyze'].seconds:.1f}x** ({td.cpu_seconds / best['analyze'].cpu_seconds:.1f}x) | "
                f"{td.seconds / best['read'].seconds:.1f}x ({td.cpu_seconds / best['read'].cpu_seconds:.1f}x) | "
                + (f"{ts.seconds / best['analyze'].seconds:.1f}x" if ts else "-") + " | "
                f"{best['analyze'].peak_bytes / packets:.0f} | {best['read'].peak_bytes / packets:.0f} |"
            )
    if args.markdown:
        print("\n| packets | format | analyze | read | tcpdump -nn -r | tshark -r | analyze vs tcpdump (CPU time) | read vs tcpdump (CPU) "
              "| analyze vs tshark | analyze B/packet | read B/packet |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
