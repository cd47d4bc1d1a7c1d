"""Lab build and teardown time per model (needs root).

Usage: .venv/bin/python benchmarks/lab.py [--rounds N] [--nodes N] [--gobgp-rounds N] [--models A,B]

up: namespaces, links, addresses, routes, sysctls, iptables, an nginx per pod
and a BIRD per node started, or an ovsdb-server and ovs-vswitchd per node with
their bridges and flows (antrea-geneve, weave), or a UDP relay per node
(flannel-udp) (Lab.up). BGP convergence (kube-router,
calico-bgp: until every node has routes to every other node's pod CIDR) is
reported apart. down: kill every process in the lab's namespaces, delete the
namespaces. "by hand" builds the same plan with one process per step, as the
`--dry-run` listing typed line by line would, in the same run; LAB-NOTES'
hand-built reading on this kind of machine: 0.13-0.31 s up, about 0.25 s down.

Why BIRD: the last table runs gobgpd (what kube-router embeds) on the same
kube-router lab instead, with the same short timers and one passive side per
pair, and times how long until every node's RIB holds every other node's pod
CIDR (gobgpd installs no kernel routes; kube-router does that itself).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import time
from dataclasses import replace

from cniscope.lab import executor, state as lab_state
from cniscope.lab.builders import plan_lab
from cniscope.lab.cluster import Lab
from cniscope.lab.naming import UNDERLAY, ns_name
from cniscope.lab.steps import Daemon, WaitRoutes
from cniscope.lab.spec import MODELS, LabSpec, Node, default_spec

BUILDABLE = tuple(name for name, info in MODELS.items() if info.buildable)
GOBGP_TIMEOUT_S = 30


def _claim(spec: LabSpec) -> lab_state.LabState:
    members = [UNDERLAY, *(n.name for n in spec.nodes), *(p.name for p in spec.pods)]
    state = lab_state.LabState(spec, os.getpid(), lab_state.process_start(os.getpid()), [ns_name(spec.name, m) for m in members])
    state.save()
    return state


def by_hand(spec: LabSpec) -> float:
    """Apply the plan one step per process (no batching, daemons one by one); return seconds; then remove it."""
    steps = [s for s in plan_lab(replace(spec, faults=())) if not isinstance(s, WaitRoutes)]
    state = _claim(spec)
    started = time.perf_counter()
    try:
        for step in steps:
            executor.apply([step])
        return time.perf_counter() - started
    finally:
        lab_state.teardown(state)


def gobgpd_config(node: Node, spec: LabSpec) -> str:
    lines = ["[global.config]", "  as = 64512", f'  router-id = "{node.ip}"']
    for other in spec.nodes:
        if other == node:
            continue
        passive = "true" if ipaddress.ip_address(other.ip) > ipaddress.ip_address(node.ip) else "false"
        lines += ["[[neighbors]]", "  [neighbors.config]", f'    neighbor-address = "{other.ip}"', "    peer-as = 64512",
                  "  [neighbors.timers.config]", "    connect-retry = 1", "    hold-time = 6", "    keepalive-interval = 1",
                  "  [neighbors.transport.config]", f"    passive-mode = {passive}",
                  "  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]", '      afi-safi-name = "ipv4-unicast"']
    return "\n".join(lines) + "\n"


def gobgp(ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, "gobgp", *args], capture_output=True, text=True, timeout=10)


def gobgpd_convergence(spec: LabSpec) -> float | None:
    """Seconds from starting gobgpd on every node until every RIB holds every remote pod CIDR; None if not in 30 s."""
    steps = [s for s in plan_lab(spec) if not isinstance(s, WaitRoutes) and not (isinstance(s, Daemon) and s.name.startswith("bird"))]
    state = _claim(spec)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        executor.apply(steps)
        started = time.perf_counter()
        for node in spec.nodes:
            conf = state.dir / f"gobgpd-{node.name}.toml"
            conf.write_text(gobgpd_config(node, spec))
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns_name(spec.name, node.name), "gobgpd", "-f", str(conf),
                                           "-t", "toml", "--log-level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for node in spec.nodes:  # announce the pod CIDR once the API answers
            while gobgp(ns_name(spec.name, node.name), "global", "rib", "add", node.pod_cidr, "-a", "ipv4").returncode != 0:
                if time.perf_counter() - started > GOBGP_TIMEOUT_S:
                    return None
                time.sleep(0.02)
        waiting = list(spec.nodes)
        while waiting and time.perf_counter() - started < GOBGP_TIMEOUT_S:
            for node in list(waiting):
                rib = json.loads(gobgp(ns_name(spec.name, node.name), "global", "rib", "-a", "ipv4", "-j").stdout or "{}")
                if all(o.pod_cidr in rib for o in spec.nodes if o != node):
                    waiting.remove(node)
            time.sleep(0.05)
        return None if waiting else time.perf_counter() - started
    finally:
        lab_state.teardown(state)
        for proc in procs:
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--gobgp-rounds", type=int, default=3)
    parser.add_argument("--models", default=",".join(BUILDABLE), help="comma-separated (default: every buildable model)")
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = [m for m in models if m not in BUILDABLE]
    if unknown:
        raise SystemExit(f"not buildable here: {', '.join(unknown)} (buildable: {', '.join(BUILDABLE)})")
    print(f"{args.nodes} nodes, {args.nodes + 1} pods, {args.rounds} rounds per model; seconds, median (min-max)")
    print(f"{'model':16} {'up':>20} {'up by hand':>20} {'ratio':>6} {'BGP converged':>20} {'down':>20}")
    for model in models:
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
        bgp = fmt(converges) if any(c and c > 0.01 for c in converges) else "-"  # models without BGP wait for nothing
        ratio = statistics.median(hands) / statistics.median(ups)
        print(f"{model:16} {fmt(ups):>20} {fmt(hands):>20} {ratio:>6.1f} {bgp:>20} {fmt(downs):>20}")
    if args.gobgp_rounds:
        runs = [gobgpd_convergence(default_spec("kube-router", args.nodes, name=f"bench{os.getpid()}-g{r}"))
                for r in range(args.gobgp_rounds)]
        done = [t for t in runs if t is not None]
        print(f"gobgpd instead of BIRD (kube-router lab): RIBs complete in {fmt(done) if done else '-'}; "
              f"{len(runs) - len(done)} of {len(runs)} runs not within {GOBGP_TIMEOUT_S} s")


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    main()
