"""Lab build and teardown time per model (needs root).

Usage: .venv/bin/python benchmarks/lab.py [--rounds N] [--nodes N]

Build = namespaces, links, addresses, routes, sysctls, iptables, nginx per pod
and BIRD per node started; BGP convergence (kube-router, calico-bgp: until
every node has routes to every other node's pod CIDR) is reported apart.
Down = kill every process in the lab's namespaces, delete the namespaces.
LAB-NOTES' hand-built reference: build 0.13-0.31 s, teardown about 0.25 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from cniscope.lab.cluster import Lab
from cniscope.lab.spec import BUILDABLE, default_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.nodes} nodes, {args.nodes + 1} pods, {args.rounds} rounds per model; medians (min-max) in seconds")
    print(f"{'model':16} {'up':>20} {'BGP converged':>20} {'down':>20} {'first curl':>12}")
    for model in BUILDABLE:
        ups, converges, downs, curls = [], [], [], []
        for round_ in range(args.rounds):
            lab = Lab.up(default_spec(model, args.nodes, name=f"bench{os.getpid()}-{round_}"))
            ups.append(lab.state.up_seconds)
            converges.append(lab.state.converge_seconds)
            started = time.perf_counter()
            ok = lab.curl("client1", f"web{args.nodes}").returncode == 0
            curls.append(time.perf_counter() - started)
            started = time.perf_counter()
            lab.down()
            downs.append(time.perf_counter() - started)
            if not ok:
                raise SystemExit(f"{model}: cross-node curl failed")
        bgp = fmt(converges) if any(converges) else "-"
        print(f"{model:16} {fmt(ups):>20} {bgp:>20} {fmt(downs):>20} {statistics.median(curls):>12.3f}")


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    main()
