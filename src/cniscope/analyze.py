"""The analysis pipeline: sources -> packets -> journeys/flows -> model, findings -> Report.

The one function renderers and commands call. Reading is the only I/O here.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cniscope import flows as flows_mod
from cniscope import journeys as journeys_mod
from cniscope.errors import InputError
from cniscope.results import Report
from cniscope.sources import Capture, InputSpec, read

MAX_JOURNEYS = 20_000  # journeys materialised for reports; the table keeps every one
PARTITION_ROWS = 1 << 21  # sightings correlated at a time at most: working memory stays a partition's
CORRELATE_BYTES_PER_ROW = 200  # working memory of correlation per sighting (sorts, gathers), measured at 10M


def default_memory() -> int:
    """Half of the machine's memory: the share `analyze` plans its working memory for unless told (--memory)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def plan_partitions(rows: int, table_bytes: int, memory: int, workers: int) -> int:
    """How many fingerprint partitions correlation needs so that `workers` of them at a time fit beside the table
    in `memory` bytes (a quarter of `memory` at least is assumed free: the table itself is not partitioned)."""
    room = max(memory - table_bytes, memory // 4)
    by_memory = -(-rows * CORRELATE_BYTES_PER_ROW * workers // max(room, 1))
    return max(1, -(-rows // PARTITION_ROWS), min(by_memory, max(1, rows // 16)))


def workers_default() -> int:
    return min(2, os.cpu_count() or 1)


def expand(specs: list[InputSpec]) -> list[InputSpec]:
    """Directories become their files: a `cniscope capture` directory its per-node files (nodes from the manifest),
    any other directory every capture in it, each a node named after its file (`node3.pcap.gz` -> node3)."""
    out: list[InputSpec] = []
    for spec in specs:
        if spec.path != "-" and os.path.isdir(spec.path):
            from cniscope.capture.manifest import inputs, is_capture_dir

            try:
                out.extend(inputs(spec.path) if is_capture_dir(spec.path) else _captures_in(spec))
            except OSError as exc:  # the directory itself (no permission): its entries are handled one by one
                raise InputError(f"{spec.path}: cannot read the directory: {exc.strerror}") from None
        else:
            out.append(spec)
    return out


def _captures_in(spec: InputSpec) -> list[InputSpec]:
    from cniscope.sources.open import looks_like_capture

    found = []
    for entry in sorted(os.scandir(spec.path), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        node = spec.node or entry.name.split(".")[0]
        try:
            if not entry.is_file():
                continue
            with open(entry.path, "rb") as handle:
                head = handle.read(4096)
        except OSError as exc:  # a symlink loop, no permission: warned about when read, the rest read
            found.append(InputSpec(entry.path, node=node, unreadable=exc.strerror or str(exc)))
            continue
        if looks_like_capture(head):
            found.append(InputSpec(entry.path, node=node))
    if not found:
        raise InputError(f"{spec.path}: no capture in this directory (pcap, pcapng or tcpdump text, compressed or not)")
    return found


def analyze(
    specs: list[InputSpec],
    *,
    model: str | None = None,
    cluster: str | None = None,
    max_journeys: int | None = MAX_JOURNEYS,
    memory: int | None = None,
    workers: int | None = None,
) -> Report:
    capture = read(expand(specs))
    return analyze_capture(capture, model=model, cluster=cluster, max_journeys=max_journeys, memory=memory, workers=workers)


def analyze_capture(
    capture: Capture,
    *,
    model: str | None = None,
    cluster: str | None = None,
    max_journeys: int | None = MAX_JOURNEYS,
    memory: int | None = None,
    workers: int | None = None,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> Report:
    """`memory`: bytes the analysis plans its working memory for (default: half the machine's); `workers`:
    partitions correlated at once (default: up to 2 cores); `on_stage` is told
    as each stage starts (progress)."""
    from cniscope import findings as findings_mod
    from cniscope.inventory import load as load_inventory
    from cniscope.models import infer as infer_mod
    from cniscope.models import roles

    workers = workers or workers_default()
    rows, table_bytes = capture.table.height, capture.table.estimated_size()
    partitions = plan_partitions(rows, table_bytes, memory or default_memory(), workers)
    on_stage(f"correlating {rows:,} sightings" + (f" in {partitions} partitions" if partitions > 1 else ""))
    correlation = journeys_mod.correlate(capture.table, partitions=partitions, workers=workers)
    on_stage("rebuilding conversations")
    table = flows_mod.assign(correlation.table)
    correlation.table = table
    journeys = journeys_mod.materialise(correlation, limit=max_journeys)
    # every materialised journey's flow must become an object too: a journey's flow id never exceeds its own id
    flow_limit = None if max_journeys is None else max(max_journeys, flows_mod.MAX_FLOWS)
    flows, journeys = flows_mod.build(table, journeys, limit=flow_limit)
    inventory = load_inventory(cluster) if cluster else None
    on_stage("inferring the network model")
    verdict = infer_mod.infer(table, journeys, inventory, force=model)
    on_stage("labelling hops, looking for problems")
    journeys = roles.label(journeys, table, verdict, inventory)
    findings = findings_mod.detect(table, journeys, flows, verdict, correlation.clocks, inventory)
    warnings = [str(w) for w in capture.warnings]
    for info in capture.inputs:
        if info.packets == 0 and not info.damaged:
            warnings.append(f"{info.name}: no packets")
    return Report(
        inputs=capture.inputs,
        table=table,
        journeys=journeys,
        flows=flows,
        findings=findings,
        model=verdict,
        clocks=correlation.clocks,
        warnings=warnings,
        inventory=inventory,
    )
