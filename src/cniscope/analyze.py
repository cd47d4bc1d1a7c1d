"""The analysis pipeline: ingest (sources -> packets) -> journeys/flows -> model, findings -> Report.

The one function renderers and commands call. Reading is the only I/O here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from functools import partial
from typing import TYPE_CHECKING, Any

import polars as pl

from cniscope import findings as findings_mod
from cniscope import flows as flows_mod
from cniscope import journeys as journeys_mod
from cniscope import next_hops
from cniscope.ahead import Ahead
from cniscope.findings import facts as findings_facts
from cniscope.footprint import default_memory as default_memory
from cniscope.footprint import needed as spills
from cniscope.heap import give_back, small_pages
from cniscope.ingest import Capture, expand, inventory_beside, read
from cniscope.journeys import capture_points
from cniscope.models import infer as infer_mod
from cniscope.models import roles
from cniscope.models.evidence import interface_sightings
from cniscope.packets.kinds import UNREAD as UNREAD
from cniscope.results import InputSummary, Point, Report, Selection
from cniscope.sources import InputInfo, InputSpec

if TYPE_CHECKING:  # what only some analyses need is imported where they need it: an inventory, a filter, spilling
    from cniscope.inventory import Inventory

KEY_ONLY = ("ip_id", "tsval", "tsecr", "payload_digest")
# Correlation's columns only the annotated pcapng reads (materialising derives a hop's delay from the times): 12 B a sighting.
HOPS_ONLY = ("hops", "delay")

MAX_JOURNEYS = 20_000  # journeys materialised for reports; the table keeps every one
PARTITION_ROWS = 1 << 19  # sightings correlated at a time at most: working memory stays a partition's (at 10M, 2M: 291, 1M: 277, 512k: 245 B a sighting at the peak of correlation)
CORRELATE_BYTES_PER_ROW = 200  # working memory of correlation per sighting (sorts, gathers), measured at 10M


def plan_partitions(rows: int, table_bytes: int, memory: int, workers: int) -> int:
    """How many fingerprint partitions correlation needs so that `workers` of them at a time fit beside the table
    in `memory` bytes (a quarter of `memory` at least is assumed free: the table itself is not partitioned)."""
    room = max(memory - table_bytes, memory // 4)
    by_memory = -(-rows * CORRELATE_BYTES_PER_ROW * workers // max(room, 1))
    return max(1, -(-rows // PARTITION_ROWS), min(by_memory, max(1, rows // 16)))


def workers_default() -> int:
    return min(2, os.cpu_count() or 1)


@small_pages()  # the whole analysis: a fresh array of any stage could wait for compaction (heap.small_pages)
def analyze(
    specs: list[InputSpec],
    *,
    model: str | None = None,
    cluster: str | None = None,
    max_journeys: int | None = MAX_JOURNEYS,
    memory: int | None = None,
    workers: int | None = None,
    select: str | None = None,
    flow: int | None = None,
) -> Report:
    """Analyse capture files or directories; a capture directory's cluster.yaml is the inventory unless `cluster`
    names one (as `cniscope analyze DIR` does)."""
    capture, correlated = read_within(expand(specs), memory, workers)
    cluster = cluster if cluster is not None else inventory_beside(specs)
    return analyze_capture(capture, model=model, cluster=cluster, max_journeys=max_journeys, memory=memory, workers=workers,
                           select=select, flow=flow, correlated=correlated)


def read_within(specs: list[InputSpec], memory: int | None, workers: int | None,
                on_batch: Callable[[InputSpec, InputInfo], None] | None = None,
                unread: Collection[str] = (), ahead: Ahead | None = None) -> tuple[Capture, journeys_mod.Correlation | None]:
    """The capture, read into memory when it fits in `memory` (default: `default_memory`); else spilled to disk
    and correlated there, with its correlation (`cniscope.spill`: the same report). `unread`: columns read in memory
    may leave null, unbuilt (`UNREAD` for `analyze_capture(keep_columns=False)`, which drops them). `ahead`: the
    input's walk begun while the command imported this (`cniscope.ahead`), taken over in memory."""
    memory = memory or default_memory()
    if spills(specs, memory):
        if ahead is not None:
            ahead.close()
        from cniscope import spill

        return spill.read(specs, memory, workers or workers_default(), on_batch)
    return read(specs, on_batch=on_batch, unread=unread, ahead=ahead), None


def analyze_capture(
    capture: Capture,
    *,
    model: str | None = None,
    cluster: str | None = None,
    max_journeys: int | None = MAX_JOURNEYS,
    memory: int | None = None,
    workers: int | None = None,
    on_stage: Callable[[str], None] = lambda stage: None,
    select: str | None = None,
    flow: int | None = None,
    partitions: int | None = None,
    run: journeys_mod.Run | None = None,
    correlated: journeys_mod.Correlation | None = None,
    keep_columns: bool = True,
) -> Report:
    """`memory`: bytes the analysis plans its working memory for (default: half the machine's); `workers`:
    partitions correlated at once (default: up to 2 cores); `on_stage` is told
    as each stage starts (progress). `select`: a `--filter` expression (cniscope.filters); `flow`: one
    conversation's id. Either keeps every sighting of the packets it selects; flow ids stay the whole capture's.
    `partitions` (default: planned from `memory`) and `run` (default: `workers` threads here) are for running
    the partitions elsewhere (`analyze --dask`). `correlated`: the capture already correlated, its conversations
    numbered (`cniscope.spill`: beyond memory). `keep_columns=False`: the report's table without the columns
    the analysis is done with (`UNREAD`, `KEY_ONLY`, `HOPS_ONLY`; enough for every report but the annotated pcapng), and the
    capture's table becomes the report's: the rest of it is let go as soon as it is read."""
    if cluster:
        from cniscope.inventory import load as load_inventory

        inventory = load_inventory(cluster)
    else:
        inventory = None
    chosen = _selector(select, flow, inventory)  # before the long part: a mistyped filter is said at once
    give_back()  # what reading freed
    if not keep_columns:
        capture.table = capture.table.drop(UNREAD, strict=False)
    if correlated is None:
        workers = workers or workers_default()
        rows, table_bytes = capture.table.height, int(capture.table.estimated_size())
        partitions = partitions or plan_partitions(rows, table_bytes, memory or default_memory(), workers)
        on_stage(f"correlating {rows:,} sightings" + (f" in {partitions} partitions" if partitions > 1 else ""))
        correlation = journeys_mod.correlate(capture.table, partitions=partitions, workers=workers, run=run, hops=keep_columns)
        on_stage("rebuilding conversations")
        table, leg_rows, firsts = flows_mod.number(correlation.table, workers, correlation.spare)
    else:
        correlation, table, leg_rows, firsts = correlated, correlated.table, None, None
    clocks = correlation.clocks
    del correlation  # its table is `table` but the conversations' column
    selection = None
    if chosen is not None:
        table, selection = _select(table, chosen, flow)
        leg_rows = firsts = None  # (rows of the whole table)
        if flow is not None:
            max_journeys = None  # one conversation: all its packets
    if not keep_columns:
        capture.table = table = table.drop(*KEY_ONLY, *HOPS_ONLY, strict=False)
    give_back()  # correlation's working memory
    # on another core while the Python stages below hold this one; not when spilled: scanning the mapped table on two
    # threads at once kept more of its pages resident (--memory 1G at 10M: 1.61 GB, 1.18 GB on one thread, no slower)
    known: dict[Callable[[pl.DataFrame], Any], Any] = {}  # (each journey's first row: numbering found them)
    if firsts is not None:
        known[findings_facts.first_rows] = findings_facts.first_rows_of(firsts)
    early = findings_mod.start(table, _points, known=known) if correlated is None else findings_facts.Early(table, {})
    journey_limit, flow_limit = _limits(table, max_journeys, selection is not None)
    # the conversations need the table alone: tallied on a thread of their own while the journeys are materialised,
    # the model inferred and the hops labelled (which need no conversation); not when spilled, as `early`
    tally = partial(flows_mod.tally, kept=journey_limit, limit=flow_limit, leg_rows=leg_rows)
    tallied = findings_facts.start(table, [tally]) if correlated is None else findings_facts.Early(table, {})
    journeys = journeys_mod.materialise(table, limit=journey_limit)
    # the table's columns the detectors read at the journeys' hops, gathered on another core meanwhile (not when spilled)
    hops_ahead = findings_facts.gather_hops(table, journeys) if correlated is None else None
    on_stage("inferring the network model")
    verdict = infer_mod.infer(table, journeys, inventory, force=model)
    on_stage("labelling hops, looking for problems")
    journeys = roles.label(journeys, table, verdict, inventory)
    # the facts of the hops made while the conversations may still be tallied (linking keeps the hops)
    unlinked = findings_facts.unlinked(table, journeys, verdict, clocks, inventory, early, hops_ahead)
    flows, journeys = flows_mod.link(tallied.result(tally, table), journeys)
    facts = findings_facts.linked(unlinked, journeys, flows)
    findings = findings_mod.detect_in(facts)
    give_back()  # the detectors'
    journeys = next_hops.label(journeys, table, facts.node_names, facts.node_codes, facts.role, lambda: facts.mac_owners)
    warnings = []  # the inputs' own warnings stay with each input (Report.inputs): said once, not twice
    for info in capture.inputs:
        if info.packets == 0 and not info.damaged:
            warnings.append(f"{info.name}: no packets")
    return Report(
        inputs=[summary(info) for info in capture.inputs],
        table=table,
        journeys=journeys,
        flows=flows,
        findings=findings,
        model=verdict,
        clocks=clocks,
        warnings=warnings,
        inventory=inventory,
        journeys_total=_distinct(table, "journey", selection is not None),
        flows_total=_distinct(table, "flow", selection is not None),
        points=early.result(_points, table),
        selection=selection,
        source=capture.source,
    )


def _points(table: pl.DataFrame) -> list[Point]:
    """The capture points (node, interface) and their sightings; streaming: counted as the rows go by (the two
    columns grouped at once held 45 B a sighting at 2M, 2 this way). Of one capture point (one node: a file, most
    often), the sightings per interface counted over the codes, as inference counts them (0.1 s of CPU at 10M)."""
    pairs = capture_points(table)
    if pairs.height == 1:
        counts = interface_sightings(table)
        unnamed = table.get_column("iface").null_count()
        names, sightings = [*counts, *([None] if unnamed else [])], [*counts.values(), *([unnamed] if unnamed else [])]
        found = pl.DataFrame([pl.Series("node", [pairs.item(0, "node")] * len(names), dtype=table.schema["node"]),
                              pl.Series("iface", names, dtype=table.schema["iface"]), pl.Series("len", sightings)])
    else:
        found = table.lazy().group_by("node", "iface").len().collect(engine="streaming")
    return [Point(*row) for row in found.sort("node", "iface", nulls_last=True).iter_rows()]


def summary(info: InputInfo) -> InputSummary:
    """What the report says of an input: what its reader learned, frozen."""
    return InputSummary(index=info.index, name=info.name, format=info.format, node=info.node, clock=info.clock,
                        packets=info.packets, unparsed_lines=info.unparsed_lines, damaged=info.damaged,
                        warnings=tuple(info.warnings), skipped=info.skipped)


def _distinct(table: pl.DataFrame, column: str, selected: bool = True) -> int:
    """Journeys and flows are numbered 0..n-1 in the whole capture (the highest number tells how many: no hash
    table of millions of ids); a selection keeps some of them."""
    if not table.height:
        return 0
    return table[column].n_unique() if selected else int(table.select(pl.col(column).max()).item()) + 1


def _selector(text: str | None, flow: int | None, inventory: Inventory | None) -> tuple[pl.Expr, str] | None:
    """The rows a `--filter` and a `--flow` select, and how to say it; None when neither was given."""
    if text is None and flow is None:
        return None
    from cniscope import filters

    expr, said = pl.lit(True), []
    if text is not None:
        expr = expr & filters.compile(text, inventory)
        said.append(repr(text))
    if flow is not None:
        expr = expr & (pl.col("flow") == flow)
        said.append(f"conversation {flow}")
    return expr, " and ".join(said)


def _select(table: pl.DataFrame, chosen: tuple[pl.Expr, str], flow: int | None) -> tuple[pl.DataFrame, Selection]:
    """Every sighting of each packet (journey) that has a sighting the selector selects."""
    from cniscope.filters import FilterError

    expr, said = chosen
    whole = Selection(text=said, sightings=table.height, journeys=_distinct(table, "journey"), flows=_distinct(table, "flow"))
    if flow is not None and flow >= whole.flows:
        raise FilterError(f"no conversation {flow}: the capture has {whole.flows} (numbered 0 to {whole.flows - 1})"
                          if whole.flows else f"no conversation {flow}: the capture has none")
    journeys = table.lazy().filter(expr).select(pl.col("journey").unique()).collect().to_series()
    kept = table.filter(pl.col("journey").is_in(journeys.implode()))
    # results name sightings by their row in the report's table: number the kept ones 0..n-1 (their order is kept)
    return kept.with_columns(pl.int_range(pl.len()).cast(table.schema["row"]).alias("row")), whole


def _limits(table: pl.DataFrame, max_journeys: int | None, selected: bool) -> tuple[int | None, int | None]:
    """Id thresholds for materialising the first `max_journeys` journeys and every flow they belong to."""
    if max_journeys is None:
        return None, None
    # every materialised journey's flow must become an object too: a journey's flow id never exceeds its own id
    flow_limit = max(max_journeys, flows_mod.MAX_FLOWS)
    if not selected:
        return max_journeys, flow_limit
    # ids of a selection have gaps: the threshold is the id after the first `max_journeys` kept ones
    ids = table["journey"].unique().sort()
    if ids.len() <= max_journeys:
        return None, None
    journey_limit = int(ids.item(max_journeys))
    flows = table["flow"].unique().sort()
    needed = int(table.filter(pl.col("journey") < journey_limit).select(pl.col("flow").max()).item() or 0) + 1
    return journey_limit, max(needed, int(flows.item(flow_limit)) if flows.len() > flow_limit else needed)

