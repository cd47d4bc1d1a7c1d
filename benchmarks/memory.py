"""`cniscope analyze --json --memory SIZE` on the reference generator's pcap: peak memory against SIZE, and the
report's totals and findings against the default run's (issue 12: under SIZE + 50%, identical results).

    python benchmarks/memory.py [--packets 10M] [--memory 1G] [--data DIR]
    python benchmarks/memory.py --capture c100m.pcap --memory default --no-compare

Each run is timed by /usr/bin/time (wall time, peak RSS: %M, which counts the pages of the spilled table the
process has mapped, as well as its own memory). `--memory default` passes no --memory (half of the machine's
memory); `--no-compare` skips the default run (at 100M it is the same run). The captures are made by
benchmarks/gen_capture.py as benchmarks/bench.py makes them (snaplen 128 from 10M packets), in --data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import HERE, capture  # noqa: E402
from decode import CNISCOPE, parse_size, warm  # noqa: E402


def analyze(path: Path, memory: str) -> tuple[float, int, dict]:
    """Wall seconds, peak RSS bytes and the JSON report of `cniscope analyze --json [--memory SIZE] FILE`."""
    flags = [] if memory == "default" else ["--memory", memory]
    argv = [str(CNISCOPE), "analyze", "--json", *flags, str(path)]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], stdout=out, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - started
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-800:]}")
        peak = int(rss.read().split()[-1]) * 1024
        out.seek(0)
        return seconds, peak, json.load(out)


def size_bytes(text: str) -> int:
    """`1G`, `512M` as cniscope reads them (powers of 1024)."""
    unit = text[-1].upper() if text[-1].isalpha() else ""
    return int(float(text.rstrip("KMGTkmgt")) * 1024 ** " KMGT".index(unit or " "))


def results(report: dict) -> dict:
    """What must not change with --memory: the totals, and the findings by kind."""
    return {"journeys_total": report["journeys_total"], "flows_total": report["flows_total"],
            "findings": dict(sorted(Counter(f["kind"] for f in report["findings"]).items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", default="10M")
    parser.add_argument("--memory", default="1G", help="the --memory given (default: none)")
    parser.add_argument("--no-compare", action="store_true", help="no default run to compare with")
    parser.add_argument("--data", type=Path, default=HERE / "data", help="where the generated captures are kept")
    parser.add_argument("--capture", type=Path, help="this capture instead (one the generator made before)")
    args = parser.parse_args()
    path = args.capture or capture(args.data, parse_size(args.packets), "pcap")
    warm(path)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{path.name} ({path.stat().st_size / 1e9:.2f} GB); {uptime}", flush=True)
    runs = [args.memory] + ([] if args.no_compare or args.memory == "default" else ["default"])
    found = {}
    for memory in runs:
        seconds, peak, report = analyze(path, memory)
        found[memory] = results(report)
        packets = sum(i["packets"] for i in report["inputs"])
        limit = "" if memory == "default" else f" (--memory + 50%: {size_bytes(memory) * 1.5 / 1e9:.2f} GB)"
        print(f"--memory {memory}: {seconds:.1f} s, peak {peak / 1e9:.2f} GB{limit}, {peak / max(packets, 1):.0f} B/packet; "
              f"{json.dumps(found[memory])}", flush=True)
    if len(found) == 2:
        print("identical totals and findings" if found[runs[0]] == found[runs[1]] else "DIFFERENT results", flush=True)


if __name__ == "__main__":
    main()
