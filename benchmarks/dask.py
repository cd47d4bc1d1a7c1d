"""`cniscope analyze --dask` on 1 and 2 workers against the local run, and a projection for N machines.

    python benchmarks/dask.py [--sizes 2M,10M] [--workers 1,2] [--data DIR]

Captures come from the reference generator (benchmarks/gen_capture.py: a flannel-VXLAN node's `tcpdump -i
any`, LINUX_SLL2 pcap, snaplen 256 up to 2M packets and 128 above, as the speed benchmarks make them),
generated once into DIR (default benchmarks/data, git-ignored) as c2m.pcap, c10m.pcap, ... and reused.

For each size, in one run: `cniscope analyze --json FILE` (local), then for each worker count a fresh
`distributed.LocalCluster` on 127.0.0.1 (worker processes, one thread each) and `cniscope analyze --json --dask
ADDRESS FILE` against it, each as its own process (wall time; peak memory of the client process). The
reports must be identical. The scheduler's task stream gives each task's compute time on its worker (the
parts read, the partitions correlated); from the 1-worker run:

    S = sum of the tasks' compute times      (the work that spreads over workers)
    C = wall time - S                        (the client: start, plan, join, partition, merge, the rest of
                                              the analysis, the report; and moving data to and fro)
    T(N) = C + max(S/N, slowest task)        (N workers, the tasks spread evenly)

and T(2) is checked against the 2-worker measurement before N = 4, 8, 16, 64 are projected. On this machine
(2 cores shared with other work) two workers and the client compete for the same cores: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this file is named dask.py: with its folder first on the path, `import dask` (in distributed) would find it
sys.path[:] = [str(HERE.parent / "src")] + [p for p in sys.path if Path(p or ".").resolve() != HERE]  # workers: this cniscope
DATA = HERE / "data"
GENERATOR = HERE / "gen_capture.py"
CNISCOPE = [sys.executable, "-m", "cniscope"]


@dataclass
class Run:
    seconds: float
    peak_bytes: int
    report: dict
    tasks: list[float]  # compute seconds of each task on its worker: parts read, partitions correlated (empty: local)


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def label(packets: int) -> str:
    return f"{packets // 1_000_000}m" if packets % 1_000_000 == 0 else f"{packets // 1000}k"


def capture_for(packets: int, data: Path) -> Path:
    path = data / f"c{label(packets)}.pcap"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        snaplen = 256 if packets <= 2_000_000 else 128
        started = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, str(GENERATOR), "-n", str(packets), "--snaplen", str(snaplen), "--pcap", str(tmp)], check=True)
        tmp.rename(path)
        print(f"generated {path}: {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall time, peak RSS (/usr/bin/time) and standard output of one command."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        started = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], capture_output=True, text=True, env=env,
                              cwd=HERE.parent)
        seconds = time.perf_counter() - started
        peak_kb = int(rss.read().split()[-1])
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-1000:]}")
    return seconds, peak_kb * 1024, proc.stdout


def local(path: Path, env: dict[str, str]) -> Run:
    seconds, peak, out = timed([*CNISCOPE, "analyze", "--json", str(path)], env)
    return Run(seconds, peak, json.loads(out), [])


def on_dask(path: Path, workers: int, env: dict[str, str]) -> Run:
    from distributed import Client, LocalCluster, get_task_stream

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("cniscope.parts") and __import__("cniscope.journeys"))  # the workers' imports are not the run's
        with get_task_stream(client=client) as stream:
            seconds, peak, out = timed([*CNISCOPE, "analyze", "--json", "--dask", cluster.scheduler_address, str(path)], env)
        tasks = [
            sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")
            for task in stream.data if str(task["key"]).startswith(("cniscope-part-", "cniscope-partition-"))
        ]
    return Run(seconds, peak, json.loads(out), tasks)


def project(one: Run, workers: int) -> float:
    spread = sum(one.tasks)
    fixed = one.seconds - spread
    return fixed + max(spread / workers, max(one.tasks, default=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2M,10M")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    counts = [int(n) for n in args.workers.split(",")]
    rows = []
    for size in (parse_size(s) for s in args.sizes.split(",")):
        path = capture_for(size, args.data)
        warm(path)
        print(f"{size:,} packets ({path.stat().st_size / 1e9:.2f} GB):", flush=True)
        base = local(path, env)
        print(f"  local      {base.seconds:7.1f} s  {base.peak_bytes / 1e6:6.0f} MB", flush=True)
        runs = {}
        for n in counts:
            runs[n] = on_dask(path, n, env)
            same = runs[n].report == base.report
            print(f"  {n} worker{'s' if n > 1 else ' '}  {runs[n].seconds:7.1f} s  {runs[n].peak_bytes / 1e6:6.0f} MB client  "
                  f"{len(runs[n].tasks)} tasks, {sum(runs[n].tasks):.1f} s of task compute  report identical: {same}", flush=True)
            if not same:
                raise SystemExit("the report on the cluster differs from the local one")
        rows.append((size, base, runs))
    print()
    print("| packets | tasks | local | " + " | ".join(f"{n} worker{'s' if n > 1 else ''}" for n in counts)
          + " | task compute (sum S) | client's share C |")
    print("|---|---|---|" + "---|" * len(counts) + "---|---|")
    for size, base, runs in rows:
        one = runs[min(counts)]
        cells = " | ".join(f"{runs[n].seconds:.1f} s" for n in counts)
        print(f"| {size / 1e6:g}M | {len(one.tasks)} | {base.seconds:.1f} s | {cells} | {sum(one.tasks):.1f} s "
              f"| {one.seconds - sum(one.tasks):.1f} s |")
    print()
    print("projection from the 1-worker run: T(N) = C + max(S/N, slowest task)")
    for size, _, runs in rows:
        one = runs[min(counts)]
        checks = ", ".join(f"T({n}) {project(one, n):.1f} s (measured {runs[n].seconds:.1f} s)" for n in counts if n > 1)
        ahead = ", ".join(f"T({n}) {project(one, n):.1f} s" for n in (4, 8, 16, 64))
        print(f"  {size / 1e6:g}M: S {sum(one.tasks):.1f} s over {len(one.tasks)} tasks (slowest {max(one.tasks):.1f} s), "
              f"C {one.seconds - sum(one.tasks):.1f} s; {checks}; {ahead}; "
              f"limit {one.seconds - sum(one.tasks) + max(one.tasks):.1f} s (x{one.seconds / (one.seconds - sum(one.tasks) + max(one.tasks)):.1f})")


if __name__ == "__main__":
    main()
