"""Analysis beyond memory: the sightings spilled to disk in partitions, correlated one partition at a time.

Theory of operation
-------------------
`footprint.needed` decides before reading, from the inputs' sizes: when the in-memory path would not fit in `--memory`,
`read` takes this path; otherwise nothing here runs. Reading streams the decoded batches; each one, its rows
numbered over the whole capture (`row`), is

- written whole, in row order, to an uncompressed Arrow IPC file (the columns it leaves empty left out): the
  later stages map these files, so the table's pages are the files', not the process's own memory, and they are
  handed back whenever the process holds more than a sixteenth of `memory` of them (`_Pages`, `_pages.c`): the
  process holds what the stage at work read last, not all it has read;
- cut by a hash of the strong key fields (`journeys.KEY_FIELDS`: every sighting of one packet shares them, the
  optional ones too, whichever way the key takes them) into partitions, each appended to its Parquet file: what
  correlation reads (`journeys.NARROW`, `row`, the node), the key for each choice of optional fields (which
  one holds is known at the end of reading, as `journeys.key_fields` would say of the whole table), and the
  conversation tuple (`flows.tuple_id`).

Correlation then reads one partition at a time, `workers` at a time (threads: polars and numpy release the GIL).
On several nodes it runs twice, as `journeys.correlate` does: journeys on the raw clocks give each partition's
clock observations (`clocks.observe`), merged into one estimate; then journeys on the corrected clocks
(`journeys.correlate_partition`). `journeys.Merge` numbers journeys over all partitions by first row, and
conversations are numbered from each journey's first tuple (`flows.journey_tuples` per partition,
`flows.flow_numbers` once), so the table is the one the in-memory path makes, row for row, for any count of
partitions. What correlation adds is written beside each batch's file; the report's table is both mapped.

Memory: one batch while reading (and one partition's buffered rows), one partition per worker while
correlating, and 24 bytes a sighting for the added columns until they are written; the later stages' own
working memory is theirs (per sighting, not bounded here). Disk: the table (about as large as in memory) and
the partitions (a few tens of bytes a sighting, compressed); the directory is removed on every way out, errors and interrupts included
(the mapped files live on, unnamed, until the report is dropped).
"""

from __future__ import annotations

import mmap
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import polars as pl

from cniscope import clocks, flows, journeys
from cniscope.errors import OutputError
from cniscope.footprint import input_bytes
from cniscope.ingest import Capture, Reopen, batches
from cniscope.packets.schema import empty
from cniscope.results import NodeClock
from cniscope.sources import InputInfo, InputSpec
from cniscope.sources.open import BATCH

try:
    from cniscope import _pages
except ImportError:  # built without a C compiler: a Python thread hands the pages back
    _pages = None  # type: ignore[assignment]

if TYPE_CHECKING:  # imported when a capture is spilled: pyarrow and its Parquet writer take 50 ms to import
    import pyarrow as pa
    import pyarrow.parquet as pq

T = TypeVar("T")

MIN_RECORD = 64  # bytes of input a sighting takes at least (a pcap record of a small packet): rows are at most size / this
PARTITION_BYTES = 300  # a partition's rows in memory and correlation's working memory, per sighting
PARTITION_ROWS = 1 << 21
MAX_PARTITIONS = 1024
HELD_BYTES = 100  # a buffered row of a partition, before it is written
MAPPED_SHARE = 16  # `memory` // this: the mapped table's pages the process holds before the watcher hands them back
WATCH_EVERY = 2000  # microseconds between the watcher's looks at the process's file pages (`_pages.c`)
# Without the C watcher: seconds between a Python thread's rounds of handing back. A scan of 25 columns of 10M sightings
# takes a tenth of a second, and mapped them all in at 0.25 (10M under --memory 1G: 1.51 GB peak at 0.25 s, 1.32 at
# 0.02); but the thread waits for the GIL, which some stages hold for a fifth of a second (0.95-2.12 GB at 0.02 over 20 runs in session 21).
RELEASE_EVERY = 0.02
RELEASE_SHARE = 0.1  # of one core at most: at 100M the files are thousands, and a round of them takes longer


def partitions_for(size: int, memory: int, workers: int) -> int:
    """Partitions enough for `workers` of them to fit in half of `memory`, and none above `PARTITION_ROWS`."""
    rows = max(1, size // MIN_RECORD)
    by_memory = -(-rows * PARTITION_BYTES * workers // max(memory // 2, 1))
    return int(min(MAX_PARTITIONS, max(1, rows // 16), max(by_memory, -(-rows // PARTITION_ROWS))))


def read(specs: list[InputSpec], memory: int, workers: int, on_batch: Callable[[InputSpec, InputInfo], None] | None = None,
         partitions: int | None = None) -> tuple[Capture, journeys.Correlation | None]:
    """The capture read and correlated through a temporary directory, its table mapped from files; and its
    correlation, conversations numbered (`flow`). No correlation when there are no sightings.
    `partitions`: how many (default: as `memory` and `workers` need)."""
    count = partitions or partitions_for(input_bytes(specs) or 0, memory, workers)
    with _room():
        with _writing():
            directory = tempfile.TemporaryDirectory(prefix="cniscope-")
        with directory as scratch:
            spilled = _spill(specs, Path(scratch), count, memory, on_batch)
            if spilled.rows == 0:
                return Capture(table=empty(), inputs=spilled.infos, source=Reopen(tuple(specs))), None
            correlated = _correlate(spilled, workers, max(memory // MAPPED_SHARE, 1))
            return Capture(table=correlated.table, inputs=spilled.infos, source=Reopen(tuple(specs))), correlated


@contextmanager
def _room() -> Iterator[None]:
    """A write to the temporary directory that fails (no room, no permission) is an `OutputError` saying what to do."""
    try:
        yield
    except _Unwritable as exc:
        raise OutputError(f"cannot spill the capture to {tempfile.gettempdir()} ({exc}): it needs about twice the "
                          "capture's size there; set TMPDIR to a disk with room, or give --memory more") from None


class _Unwritable(Exception):
    """A write to the temporary directory failed (its OSError's words)."""


@contextmanager
def _writing() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _Unwritable(exc.strerror or str(exc)) from None


@dataclass
class Spilled:
    """A capture on disk: its batches in row order, its partitions, what reading learned of all of it."""

    directory: Path
    infos: list[InputInfo]
    heights: list[int]  # rows of each batch file
    empty: list[tuple[str, ...]]  # the columns each batch leaves empty (not in its file)
    schema: pl.Schema  # the batches' (the packet table's and `row`)
    partitions: list[Path]  # the files of the partitions that hold rows
    hidden: tuple[bool, ...]  # per optional key field: some sighting hides it
    nodes: int  # distinct (node, input)

    @property
    def rows(self) -> int:
        return sum(self.heights)

    def batch(self, n: int) -> Path:
        return self.directory / f"batch-{n:07d}.arrow"

    def added(self, n: int) -> Path:
        return self.directory / f"added-{n:07d}.arrow"

    def wide(self, frame: pl.DataFrame, n: int) -> pl.DataFrame:
        """Batch `n`'s file, mapped, with the columns it left empty: the batch as it was read."""
        nulls = [pl.lit(None, dtype=self.schema[name]).alias(name) for name in self.empty[n]]
        return frame.with_columns(nulls).select(self.schema.names())

    @property
    def key(self) -> str:
        return _key_column(tuple(not h for h in self.hidden))


def _key_column(shown: tuple[bool, ...]) -> str:
    return "_key_" + "".join("1" if s else "0" for s in shown)


VARIANTS = [tuple(f in chosen for f in journeys.OPTIONAL_KEY_FIELDS)
            for n in range(len(journeys.OPTIONAL_KEY_FIELDS) + 1) for chosen in combinations(journeys.OPTIONAL_KEY_FIELDS, n)]


class _Partitions:
    """One Parquet file per partition, rows buffered until `held` rows wait in all."""

    def __init__(self, directory: Path, count: int, held: int) -> None:
        self.directory, self.count, self.held = directory, count, held
        self.waiting: dict[int, list[pl.DataFrame]] = {}
        self.rows = 0
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.schema: pa.Schema | None = None

    def path(self, part: int) -> Path:
        return self.directory / f"part-{part:05d}.parquet"

    def add(self, rows: pl.DataFrame) -> None:
        for key, piece in rows.partition_by("_part", as_dict=True, include_key=False).items():
            self.waiting.setdefault(int(key[0]), []).append(piece)
        self.rows += rows.height
        if self.rows >= self.held:
            self.flush()

    def flush(self) -> None:
        for part, pieces in sorted(self.waiting.items()):
            # oldest: categoricals as dictionaries of large strings (pyarrow writes no dictionary of string views)
            table = pl.concat(pieces).to_arrow(compat_level=pl.CompatLevel.oldest())
            if self.schema is None:
                self.schema = table.schema
            writer = self.writers.get(part)
            if writer is None:
                import pyarrow.parquet as pq

                writer = self.writers[part] = pq.ParquetWriter(self.path(part), self.schema, compression="lz4")
            writer.write_table(table.cast(self.schema))
        self.waiting, self.rows = {}, 0

    def close(self, complete: bool = True) -> list[Path]:
        """The partitions' files, written out (`complete`) or left as they are (reading failed)."""
        if complete:
            self.flush()
        for writer in self.writers.values():
            try:
                writer.close()
            except OSError:
                if complete:
                    raise  # else reading failed already: that is what to say
        return [self.path(part) for part in sorted(self.writers)]


def _spill(specs: list[InputSpec], directory: Path, count: int, memory: int,
           on_batch: Callable[[InputSpec, InputInfo], None] | None) -> Spilled:
    infos: list[InputInfo] = []
    parts = _Partitions(directory, count, held=max(BATCH, min(8 << 20, memory // 8 // HELD_BYTES)))
    spilled = Spilled(directory, infos, heights=[], empty=[], schema=pl.Schema(), partitions=[],
                      hidden=(False,) * len(journeys.OPTIONAL_KEY_FIELDS), nodes=0)
    names: dict[str, int] = {}  # node -> code, in order of first sighting (as `journeys.narrow` numbers them)
    pairs: set[tuple[str | None, int]] = set()
    try:
        for table in batches(specs, infos, BATCH, on_batch):
            if not table.height:
                continue
            start = spilled.rows
            table = table.with_columns(row=pl.int_range(start, start + table.height, dtype=pl.UInt32))
            # a column the batch leaves empty takes no room in the file: a typed null again when mapped
            empty = [name for name, nulls in zip(table.columns, table.null_count().row(0)) if nulls == table.height]
            with _writing():
                table.drop(empty).write_ipc(spilled.batch(len(spilled.heights)), compat_level=pl.CompatLevel.newest())
            spilled.heights.append(table.height)
            spilled.empty.append(tuple(empty))
            spilled.schema = spilled.schema or table.schema
            hidden = table.select(journeys.hides()).row(0)
            spilled.hidden = tuple(a or bool(b) for a, b in zip(spilled.hidden, hidden))
            pairs.update(table.select("node", "input").unique().iter_rows())
            node = journeys.node_column(table)
            for name in table.select(node.unique(maintain_order=True)).to_series().to_list():
                names.setdefault(name, len(names))
            keys = {}
            for shown in VARIANTS:  # a choice that hides a field some sighting hid is not the capture's: left empty
                alive = all(s <= (not h) for s, h in zip(shown, spilled.hidden))
                fields = list(journeys.KEY_FIELDS) + [f for f, s in zip(journeys.OPTIONAL_KEY_FIELDS, shown) if s]
                keys[_key_column(shown)] = journeys.fingerprint(table, fields) if alive else pl.lit(None, dtype=pl.UInt64)
            rows = table.select(
                *journeys.NARROW, "row", **keys, _node=node,
                _nid=node.replace_strict(names, return_dtype=pl.UInt32), tuple=flows.tuple_id(),
                _part=(pl.struct(*journeys.KEY_FIELDS).hash(seed=11) % count).cast(pl.UInt32),
            )
            with _writing():
                parts.add(rows)
    except BaseException:
        parts.close(complete=False)
        raise
    with _writing():
        spilled.partitions = parts.close()
    spilled.nodes = len(pairs)
    return spilled


def _load(spilled: Spilled, path: Path) -> pl.DataFrame:
    """A partition as `journeys.narrow` gives it (NARROW, row, key, _node, _nid; one node: _nid 0), and `tuple`."""
    t = pl.read_parquet(path, columns=[*journeys.NARROW, "row", spilled.key, "_node", "_nid", "tuple"])
    t = t.rename({spilled.key: "key"})
    return t.drop("_node").with_columns(_nid=pl.lit(0, dtype=pl.UInt32)) if spilled.nodes <= 1 else t


def _map(items: list[T], work: Callable[[T], object], workers: int) -> None:
    if workers <= 1 or len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="partition") as pool:
        list(pool.map(work, items))


def _correlate(spilled: Spilled, workers: int, budget: int) -> journeys.Correlation:
    """`budget`: bytes of the mapped table's pages held before they are handed back (`_Pages`)."""
    several = spilled.nodes > 1
    offsets: list[NodeClock] = []
    if several:  # journeys on the raw clocks, for the clocks only
        seen: list[clocks.Observations] = []

        def observe(path: Path) -> None:
            sub = _load(spilled, path)
            seen.append(clocks.observe(sub.with_columns(journey=journeys.group(sub, "ts"))))

        _map(spilled.partitions, observe, workers)
        offsets = clocks.offsets(clocks.merge(seen))
        del seen
    merged = journeys.Merge(spilled.rows)
    rows: dict[Path, np.ndarray] = {}
    tuples: dict[Path, tuple[pl.DataFrame, pl.DataFrame]] = {}

    def correlate(path: Path) -> None:
        sub = _load(spilled, path)
        if several:
            sub = sub.with_columns(ts=clocks.corrected(offsets))
        partial = journeys.correlate_partition(sub.drop("tuple"), by_node=several)
        at = sub["row"].to_numpy()
        merged.add(at, partial)
        rows[path] = at
        tuples[path] = flows.journey_tuples(pl.DataFrame({  # in the partition's hop order, as `partial` holds them
            "journey": partial.journey, "hop": partial.hop, "row": partial.at(at), "tuple": sub["tuple"].to_numpy()[partial.perm]}))

    _map(spilled.partitions, correlate, workers)
    parts = [rows.pop(path) for path in spilled.partitions]
    hops = merged.finish(list(parts))
    del parts, merged.journey, merged.hop, merged.hops, merged.delay
    count = int(hops.select(pl.col("journey").max()).item()) + 1
    numbers = merged.numbers or []
    firsts, multi = [], []
    for path, number in zip(spilled.partitions, numbers):
        first, several_tuples = tuples.pop(path)
        firsts.append(first.with_columns(journey=pl.Series(number[first["journey"].to_numpy()])))
        multi.append(several_tuples.with_columns(journey=pl.Series(number[several_tuples["journey"].to_numpy()])))
    flow_of = flows.flow_numbers(pl.concat(firsts), pl.concat(multi), count)
    del firsts, multi
    hops = hops.with_columns(flow=pl.Series(flow_of[hops["journey"].to_numpy()], dtype=pl.UInt32))
    del flow_of
    pages = _Pages(budget)
    start = 0
    for n, height in enumerate(spilled.heights):
        added = hops.slice(start, height)
        if offsets:  # the table's times on one clock, as correlation leaves them
            batch = spilled.wide(pages.map(spilled.batch(n)), n)
            added = added.with_columns(ts=batch.select(journeys.node_column(batch).alias("_node"), "ts")
                                       .select(clocks.corrected(offsets)).to_series())
        with _writing():
            added.write_ipc(spilled.added(n), compat_level=pl.CompatLevel.newest())
        start += height
    del hops
    table = _table(spilled, pages, bool(offsets))
    pages.start()
    return journeys.Correlation(table=table, clocks=offsets)


class _Pages:
    """Files mapped read-only, their pages handed back while any of them is mapped (MADV_DONTNEED: a shared mapping
    of a file reads them again, from the page cache or the disk, when next touched): the process holds what the
    last moment's work read of the table, not all it has read. By the C watcher (`_pages.c`), which never waits for
    the GIL, whenever the process's file pages have grown by `budget` bytes; built without it, by a Python thread
    every `RELEASE_EVERY` seconds (`start`)."""

    def __init__(self, budget: int) -> None:
        self.maps: list[weakref.ref[mmap.mmap]] = []
        if _pages is not None:
            _pages.watch(budget, WATCH_EVERY)

    def map(self, path: Path) -> pl.DataFrame:
        """An IPC file's frame, its buffers the file's mapped pages (no copy)."""
        import pyarrow as pa
        import pyarrow.ipc as ipc

        mapped: mmap.mmap | _pages.Map
        with open(path, "rb") as handle:
            if _pages is not None:
                mapped = _pages.map(handle.fileno())
            else:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                self.maps.append(weakref.ref(mapped))
        frame = pl.from_arrow(ipc.open_file(pa.BufferReader(pa.py_buffer(mapped))).read_all(), rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def start(self) -> None:
        """The Python thread, when there is no C watcher (which watches from the first map on)."""
        if _pages is None:
            threading.Thread(target=_release, args=(self.maps,), name="release-pages", daemon=True).start()


def _release(maps: list[weakref.ref[mmap.mmap]]) -> None:
    """Until the frames holding them are gone."""
    while alive := [mapped for ref in maps if (mapped := ref()) is not None]:
        started = time.perf_counter()
        for mapped in alive:
            mapped.madvise(mmap.MADV_DONTNEED)
        del alive
        time.sleep(max(RELEASE_EVERY, (time.perf_counter() - started) * (1 / RELEASE_SHARE - 1)))


def _table(spilled: Spilled, pages: _Pages, corrected: bool) -> pl.DataFrame:
    """The correlated table from the batches' files and the added columns' beside them."""
    frames = []
    for n in range(len(spilled.heights)):
        wide, added = spilled.wide(pages.map(spilled.batch(n)), n), pages.map(spilled.added(n))
        if corrected:
            wide, added = wide.with_columns(added["ts"]), added.drop("ts")
        frames.append(pl.concat([wide, added], how="horizontal"))
    return pl.concat(frames, rechunk=False)
