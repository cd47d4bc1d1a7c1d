"""End-to-end `cniscope analyze --json` against `tcpdump -nn -r` merely printing the same file.

    python benchmarks/analyze.py [--sizes 1M,10M] [--rounds 1] [--nodes 1]
    python benchmarks/analyze.py --stages [--sizes 10M] [--capture FILE]


Same generated LINUX_SLL2 captures as benchmarks/decode.py (TCP conversations
between pods and nodes, a fifth VXLAN-encapsulated), same run, whole-process
wall time and peak memory of each tool. Prints the ratio the README quotes
(issue 3's target: analyze at least 5x faster than tcpdump printing, at most
400 bytes of peak memory per packet). `--stages` runs the pipeline in this
process instead and prints each stage's time and the peak memory so far, to
see where time and memory go. `--nodes N` gives the same file as N nodes
(node1=FILE node2=FILE ...): every packet crosses them all, the worst case
for clock estimation and hop order; tcpdump then prints the file N times.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import CNISCOPE, Run, capture_for, parse_size, timed, warm  # noqa: E402


def bench(packets: int, snaplen: int, rounds: int, nodes: int = 1) -> dict[str, Run]:
    path = capture_for(packets, snaplen)
    warm(path)
    inputs = [str(path)] if nodes == 1 else [f"node{i + 1}={path}" for i in range(nodes)]
    commands = {
        "cniscope": [str(CNISCOPE), "analyze", "--json", *inputs],  # default flags: what users get
        "tcpdump": ["sh", "-c", 'for i in $(seq "$1"); do tcpdump -nn -r "$2"; done', "tcpdump", str(nodes), str(path)],
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


def stages(packets: int, snaplen: int, given: Path | None = None) -> None:
    """The stages of `cniscope.analyze.analyze_capture`, timed one by one (peak RSS is the process's so far), on
    benchmarks/gen.py's capture or the one `given` (e.g. of benchmarks/gen_capture.py, the reference)."""
    import gc

    from cniscope import findings, flows, journeys, next_hops
    from cniscope.analyze import HOPS_ONLY, KEY_ONLY, MAX_JOURNEYS, UNREAD, default_memory, give_back, plan_partitions, workers_default
    from cniscope.findings import facts as findings_facts
    from cniscope.ingest import read
    from cniscope.models import infer, roles
    from cniscope.report.json_out import write
    from cniscope.results import Report
    from cniscope.sources import InputSpec

    gc.disable()  # as the analyze command does for the analysis (cniscope.collector.paused)
    path = given or capture_for(packets, snaplen)
    warm(path)
    started = last = time.monotonic()
    last_cpu = time.process_time()  # CPU time of this process (all its threads): on a shared machine the steadier figure

    def done(stage: str) -> None:
        nonlocal last, last_cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        rows = packets or capture.table.height
        print(f"  {stage:12s} {time.monotonic() - last:7.2f} s  cpu {time.process_time() - last_cpu:6.2f} s  "
              f"peak {peak / 1e6:7.0f} MB ({peak / rows:4.0f} B/packet)", flush=True)
        last, last_cpu = time.monotonic(), time.process_time()

    capture = read([InputSpec(str(path))], unread=UNREAD)  # as the command reads for every report but --pcapng
    done("read")
    give_back()  # as analyze_capture does for the command (keep_columns=False): the columns it is done with go
    capture.table = capture.table.drop(UNREAD)
    workers = workers_default()
    partitions = plan_partitions(capture.table.height, capture.table.estimated_size(), default_memory(), workers)
    correlation = journeys.correlate(capture.table, partitions=partitions, workers=workers, hops=False)
    done("correlate")
    table, leg_rows, _ = flows.number(correlation.table)
    table = table.drop(*KEY_ONLY, *HOPS_ONLY, strict=False)  # as analyze_capture: a text capture may lack some
    capture.table, clocks = table, correlation.clocks
    del correlation
    give_back()
    done("flows.number")
    early = findings.start(table)  # as analyze_capture does: the table-wide findings work beside the Python stages
    kept = journeys.materialise(table, limit=MAX_JOURNEYS)
    done("materialise")
    # here one after the other: analyze_capture tallies on a thread of its own beside the next three stages
    flow_list, kept = flows.link(flows.tally(table, MAX_JOURNEYS, max(MAX_JOURNEYS, flows.MAX_FLOWS), leg_rows), kept)
    done("flows.tally")
    verdict = infer.infer(table, kept)
    done("models.infer")
    kept = roles.label(kept, table, verdict)
    done("models.roles")
    facts = findings_facts.build(table, kept, flow_list, verdict, clocks, early=early)
    found = findings.detect_in(facts)  # with the model's expected paths (losses)
    give_back()
    done("findings")
    kept = next_hops.label(kept, table, facts.node_names, facts.node_codes, facts.role, lambda: facts.mac_owners)
    done("next_hops")
    with open(os.devnull, "wb") as out:  # as the command writes it: a piece at a time
        write(Report(inputs=capture.inputs, table=table, journeys=kept, flows=flow_list, findings=found, model=verdict,
                     clocks=clocks), out)
    done("json")
    print(f"  {'total':12s} {time.monotonic() - started:7.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1M,10M")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--snaplen-10m", type=int, default=128)
    parser.add_argument("--stages", action="store_true", help="time each stage in this process instead")
    parser.add_argument("--nodes", type=int, default=1, help="give the file as this many nodes")
    parser.add_argument("--capture", type=Path, help="with --stages: time the stages on this file instead")
    args = parser.parse_args()
    if args.stages and args.capture:
        stages(0, 0, args.capture)
        return
    for size in args.sizes.split(","):
        packets = parse_size(size)
        snaplen = args.snaplen_10m if packets >= 10_000_000 else 262144
        if args.stages:
            print(f"{packets:,} packets, snaplen {snaplen}:", flush=True)
            stages(packets, snaplen)
            continue
        best = bench(packets, snaplen, args.rounds, args.nodes)
        ours, tcpdump = best["cniscope"], best["tcpdump"]
        sightings = packets * args.nodes
        print(f"\n{packets:,} packets x {args.nodes} node(s), snaplen {snaplen}: analyze {ours.seconds:.2f} s, "
              f"{ours.peak_bytes / sightings:.0f} B/sighting peak; tcpdump -nn -r {tcpdump.seconds:.2f} s; "
              f"analyze is {tcpdump.seconds / ours.seconds:.1f}x faster\n", flush=True)


if __name__ == "__main__":
    main()
