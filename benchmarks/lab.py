"""Lab build and teardown time per model (needs root).

Usage: .venv/bin/python benchmarks/lab.py [--rounds N] [--nodes N]

up: namespaces, links, addresses, routes, sysctls, iptables, an nginx per pod
and a BIRD per node started (Lab.up). BGP convergence (kube-router,
calico-bgp: until every node has routes to every other node's pod CIDR) is
reported apart. down: kill every process in the lab's namespaces, delete the
namespaces. "by hand" builds the same plan with one process per step, as the
`--dry-run` listing typed line by line would, in the same run; LAB-NOTES'
hand-built reading on this kind of machine: 0.13-0.31 s up, about 0.25 s down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

from cniscope.lab import executor, state as lab_state
from cniscope.lab.builders import plan_lab
from cniscope.lab.cluster import Lab
from cniscope.lab.naming import UNDERLAY, ns_name
from cniscope.lab.plan import WaitRoutes
from cniscope.lab.spec import BUILDABLE, LabSpec, default_spec


def by_hand(spec: LabSpec) -> float:
    """Apply the plan one step per process (no batching, daemons one by one); return seconds; then remove it."""
    steps = [s for s in plan_lab(replace(spec, faults=())) if not isinstance(s, WaitRoutes)]
    members = [UNDERLAY, *(n.name for n in spec.nodes), *(p.name for p in spec.pods)]
    state = lab_state.LabState(spec, os.getpid(), lab_state.process_start(os.getpid()), [ns_name(spec.name, m) for m in members])
    state.save()
    started = time.perf_counter()
    try:
        for step in steps:
            executor.apply([step])
        return time.perf_counter() - started
    finally:
        lab_state.teardown(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.nodes} nodes, {args.nodes + 1} pods, {args.rounds} rounds per model; seconds, median (min-max)")
    print(f"{'model':16} {'up':>20} {'up by hand':>20} {'ratio':>6} {'BGP converged':>20} {'down':>20}")
    for model in BUILDABLE:
        ups, hands, converges, downs = [], [], [], []
        for round_ in range(args.rounds):
            hands.append(by_hand(default_spec(model, args.nodes, name=f"bench{os.getpid()}-h{round_}")))
            lab = Lab.up(default_spec(model, args.nodes, name=f"bench{os.getpid()}-{round_}"))
            ups.append(lab.state.up_seconds)
            converges.append(lab.state.converge_seconds)
            ok = lab.curl("client1", f"web{args.nodes}").returncode == 0
            started = time.perf_counter()
            lab.down()
            downs.append(time.perf_counter() - started)
            if not ok:
                raise SystemExit(f"{model}: cross-node curl failed")
        bgp = fmt(converges) if any(converges) else "-"
        ratio = statistics.median(hands) / statistics.median(ups)
        print(f"{model:16} {fmt(ups):>20} {fmt(hands):>20} {ratio:>6.1f} {bgp:>20} {fmt(downs):>20}")


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    main()
