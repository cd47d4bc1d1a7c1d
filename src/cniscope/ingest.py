"""Ingest: what the user named -> one packet table (`Capture`); the stage above the readers and the decoders.

For each input it opens the file (or standard input), undoes its compression and tells its format by content
(`cniscope.sources.open`), has the format's reader find the frames (`sources.pcap`, `sources.pcapng`) or the
text rows (`sources.text.reader`), decodes the frames (`cniscope.packets.chunks`), tags every row with its input
and node (`packets.tags`) and makes each batch a table (polars': `packets.decode`; `read --format parquet` pyarrow's,
without importing polars). Directories become their files first (`expand`): a `cniscope capture` directory the
per-node files its manifest names, any other directory every capture in it.

Theory of operation: a batch of frames decodes on the other core while the reader walks on (the C decoder and
polars release the GIL), at most `DECODERS` + 1 batches in flight; the mapped pages behind a decoded batch go back to
the OS, so a file larger than memory streams. Damage never raises: what could be read is kept and the input's
`InputInfo` says where it broke; an input that cannot be opened at all raises `InputError`.

`Capture.source` reopens the inputs on demand (`Reopen`): the report carries it so that `--pcapng` copies the
frames of binary inputs without a renderer reading files.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from cniscope.ahead import Ahead, Walked
from cniscope.capture import manifest
from cniscope.errors import InputError, ReadWarning
from cniscope.models import TUNNEL_PORTS
from cniscope.packets import chunks
from cniscope.packets.chunks import Arrays, Scratch
from cniscope.packets.frames import FrameBatch
from cniscope.packets.tags import Tags, tagged
from cniscope.sources import InputInfo, InputSpec
from cniscope.sources.open import (
    BATCH,
    HEAD_LEN,
    Frames,
    Opened,
    Releaser,
    batch_frames,
    looks_like_capture,
    open_input,
    refuse,
    text_tables,
)
from cniscope.wire.guarded import cut_at

if TYPE_CHECKING:
    import polars as pl  # imported where a table is made: `read --format parquet` of binary inputs makes none

# threads decoding batches at once (the C decoder and polars release the GIL); 0, on one core: the reading thread
DECODERS = min(2, os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 0
T = TypeVar("T")
Make = Callable[[list[Arrays], int], T]  # a batch's table from its chunks' tagged arrays and its input's index
INVENTORY = "cluster.yaml"  # what `cniscope lab capture`, `lab record` and `demo` write beside their captures


@dataclass
class Capture:
    """Everything read from the inputs: one table of sightings, what we know of each input, and the inputs
    themselves, to be read again (`source`)."""

    table: pl.DataFrame
    inputs: list[InputInfo]
    source: Reopen = field(default_factory=lambda: Reopen(()))

    @property
    def warnings(self) -> list[ReadWarning]:
        return [w for info in self.inputs for w in info.warnings]

    @property
    def damaged(self) -> bool:
        return any(info.damaged for info in self.inputs)


@dataclass(frozen=True)
class Reopen:
    """The inputs of a capture, opened again on demand: the report's handle on them (`results.InputHandle`)."""

    specs: tuple[InputSpec, ...]

    def frames(self, index: int) -> Iterator[FrameBatch]:
        """The undecoded frames of binary input `index` (pcap or pcapng, compressed or not), numbered as when it
        was first read; nothing for text, standard input (read once) or an input no longer there to open.
        Warnings go to a scratch `InputInfo`: they were said the first time."""
        spec = self.specs[index] if index < len(self.specs) else None
        if spec is None or spec.unreadable or spec.path == "-":
            return
        scratch = InputInfo(index=index, name=spec.path)
        with ExitStack() as stack:
            opened = open_input(spec, scratch, stack)
            if opened.binary:
                yield from Frames.of(opened, scratch, BATCH).batches


# --- reading -------------------------------------------------------------------------------


def read(specs: list[InputSpec], batch_size: int = BATCH, on_batch: Callable[[InputSpec, InputInfo], None] | None = None,
         unread: Collection[str] = (), ahead: Ahead | None = None) -> Capture:
    """Read every input into one table (row order: input, then frame); `on_batch` is told after each batch (progress).
    `unread`: columns the caller drops unread (`analyze`'s UNREAD): the decoder leaves them null, unbuilt. `ahead`: the
    walk of the one input begun while the caller imported this (`cniscope.ahead.start`), taken over.

    The batches are not copied into one chunk: that would hold the table twice at the end of reading.
    """
    infos: list[InputInfo] = []
    walked = None
    if ahead is not None:
        walked = ahead.take() if specs == [ahead.spec] else None
        ahead.close()  # what it holds, unless taken
    tables = list(batches(specs, infos, batch_size, on_batch, unread, kept=True, walked=walked))
    import polars as pl

    from cniscope.packets.schema import empty

    table = pl.concat(tables, rechunk=False) if tables else empty()
    return Capture(table=table, inputs=infos, source=Reopen(tuple(specs)))


def batches(specs: list[InputSpec], infos: list[InputInfo], batch_size: int = BATCH,
            on_batch: Callable[[InputSpec, InputInfo], None] | None = None, unread: Collection[str] = (),
            kept: bool = False, walked: Walked | None = None, decoders: int = DECODERS) -> Iterator[pl.DataFrame]:
    """The packet table of every input, batch by batch, in order (for writers that stream: `read --format json`);
    appends each input's `InputInfo` to `infos` as it starts. `kept`: the caller keeps every batch (`read`): a large
    binary input's batches larger (`LARGE`), their columns in pages of their own (`decode.decode_batch`). `walked`:
    the first input, opened and walked ahead (`read`). `decoders`: threads decoding a binary input's batches (0: this
    one, each batch as it is walked)."""
    return batches_as(_polars, specs, infos, batch_size, on_batch, unread, kept, walked, decoders)


def batches_as(make: Make[T], specs: list[InputSpec], infos: list[InputInfo], batch_size: int = BATCH,
               on_batch: Callable[[InputSpec, InputInfo], None] | None = None, unread: Collection[str] = (),
               kept: bool = False, walked: Walked | None = None,
               decoders: int = DECODERS) -> Iterator[T | pl.DataFrame]:
    """`batches`, a binary input's batches made by `make` from their tagged arrays (on the decoding threads: a polars
    table, `decode.table`, or pyarrow's for parquet, `parquet_out.arrow_table`); a text input's as polars tables."""
    for index, spec in enumerate(specs):
        mine = walked if index == 0 else None
        info = mine.info if mine is not None else InputInfo(index=index, name=spec.path, node=spec.node)
        infos.append(info)
        for table in _input_tables(make, spec, info, batch_size, unread, kept, mine, decoders):
            yield table
            if on_batch is not None:
                on_batch(spec, info)


def iter_tables(spec: InputSpec, info: InputInfo, batch_size: int = BATCH, unread: Collection[str] = (),
                kept: bool = False, walked: Walked | None = None, decoders: int = DECODERS) -> Iterator[pl.DataFrame]:
    """The packet table of one input in batches of at most `batch_size` rows (a large binary input's grown where the
    caller keeps every batch: `kept`, `LARGE`), tagged with its input and node; the `unread` columns of binary inputs
    null (text rows come whole). `walked`: the input already opened and walked ahead (its batches grown)."""
    return _input_tables(_polars, spec, info, batch_size, unread, kept, walked, decoders)


def _polars(decoded: list[Arrays], input_index: int) -> pl.DataFrame:
    """A binary batch's polars table (`decode.table`)."""
    from cniscope.packets.decode import table  # here: the decoders, imports that text does not need

    return table(decoded, input_index)


def _input_tables(make: Make[T], spec: InputSpec, info: InputInfo, batch_size: int, unread: Collection[str],
                  kept: bool, walked: Walked | None, decoders: int) -> Iterator[T | pl.DataFrame]:
    """`iter_tables`, a binary input's batches made by `make`."""
    if spec.unreadable:
        info.warn("", f"skipped: {spec.unreadable}")
        info.skipped = True
        return
    with ExitStack() as stack:
        if walked is not None:
            stack.enter_context(walked.stack)
            early = walked.decoded if kept and walked.unread == frozenset(unread) else None
            yield from _binary(make, walked.opened, spec, info, frozenset(unread), walked.found, kept, early,
                               walked.scratch, walked.release, decoders)
            return
        opened = open_input(spec, info, stack)
        if opened.binary:
            grown = batch_frames(batch_size, opened.buf.nbytes) if kept else batch_size
            yield from _binary(make, opened, spec, info, frozenset(unread), Frames.of(opened, info, grown), kept,
                               decoders=decoders)
        elif opened.kind == "text":
            for table in text_tables(opened, info, batch_size, TUNNEL_PORTS):  # the text reader counts info.packets itself
                yield table.with_columns(_text_tags(spec, info))
        else:
            refuse(opened, info)


def _text_tags(spec: InputSpec, info: InputInfo) -> list[pl.Expr]:
    """A text input's index on every row; the node the user named where the input did not say one (a binary input's:
    `packets.tags`)."""
    import polars as pl  # (the text reader imported it)

    columns = [pl.lit(info.index, dtype=pl.UInt16).alias("input")]
    if spec.node is not None:
        columns.append(pl.col("node").fill_null(spec.node))
    return columns


def _binary(make: Make[T], opened: Opened, spec: InputSpec, info: InputInfo, unread: frozenset[str], found: Frames,
            kept: bool, early: deque[Future[list[Arrays]]] | None = None, scratch: Scratch | None = None,
            release: Releaser | None = None, decoders: int = DECODERS) -> Iterator[T]:
    release = release or Releaser(opened.buf)
    oversized, first, kept_end = 0, 0, 0
    decoding = _Decoding(make, info.index, spec.node, found.comments, unread, kept, scratch or Scratch())
    for batch, table in decoding.tables(found.batches, early or deque(), decoders):
        cut = cut_at(opened.buf)
        if cut is not None and int(batch.offset[-1]) + int(batch.caplen[-1]) > cut:  # read in part as zeros
            kept_frames = int(np.searchsorted(batch.offset + batch.caplen, cut, side="right"))
            info.packets += kept_frames
            if kept_frames:
                kept_end = int(batch.offset[kept_frames - 1]) + int(batch.caplen[kept_frames - 1])
                yield table.slice(0, kept_frames)
            break
        release.before(int(batch.offset[-1]))
        info.done = (int(batch.offset[-1]) + int(batch.caplen[-1])) / max(len(opened.buf), 1)
        info.packets += len(batch.offset)
        kept_end = int(batch.offset[-1]) + int(batch.caplen[-1])
        over = batch.caplen > batch.wirelen
        if over.any():
            first = first if oversized else int(batch.offset[int(over.argmax())])
            oversized += int(over.sum())
        yield table
    if oversized:
        info.warn(f"byte {first}", f"{oversized} packets say they captured more bytes than they had on the wire "
                                   "(captured length above wire length)")
    cut = cut_at(opened.buf)
    if cut is not None:
        _cut_while_read(info, cut, min(cut, kept_end))


def _cut_while_read(info: InputInfo, cut: int, kept_end: int) -> None:
    """Say that the file was cut at byte `cut` while it was read (its bytes from there on read as zeros, `wire.guarded`),
    in place of what the walk said past the last packet kept (`kept_end`): of a record the cut ran through, or zeros."""
    def past(where: str) -> bool:
        return where.startswith("byte ") and where[5:].isdigit() and int(where[5:]) >= kept_end

    info.warnings[:] = [w for w in info.warnings if not past(w.where)]
    info.warn(f"byte {cut}", f"the file was cut to {cut} bytes while it was read (another program truncated or "
                             f"rewrote it); kept the {info.packets} packets read before that")


@dataclass
class _Decoding:
    """One binary input's batches decoded, tagged (`packets.tags`: its node, the batch's pcapng comments unless
    `info` is unread) and made tables by `make`. `scratch`: the decoders' working arrays, taken again batch after
    batch."""

    make: Make[Any]
    index: int
    node: str | None
    comments: dict[int, str]  # the reader's, by frame: each batch's taken as it is handed out, in order
    unread: frozenset[str]
    kept: bool
    scratch: Scratch

    def tags(self, batch: FrameBatch) -> Tags:
        """What to put on `batch`'s rows; on the reading thread, once the batch is walked (its comments found)."""
        end = batch.first_frame + len(batch.offset)  # the reader may have walked further (batches decode ahead)
        mine = {frame: self.comments.pop(frame) for frame in [f for f in self.comments if f < end]}
        return Tags(self.node, mine if "info" not in self.unread else {})

    def decode(self, batch: FrameBatch, tags: Tags) -> Any:
        decoded = chunks.decoded(batch, TUNNEL_PORTS, self.unread, self.scratch, self.kept)
        return self.make(tagged(decoded, batch, tags), self.index)

    def ahead(self, decoded: Future[list[Arrays]], batch: FrameBatch, tags: Tags) -> Any:
        """A batch decoded ahead (`cniscope.ahead`), tagged and made a table here."""
        return self.make(tagged(decoded.result(), batch, tags), self.index)

    def tables(self, batches: Iterator[FrameBatch], early: deque[Future[list[Arrays]]],
               decoders: int) -> Iterator[tuple[FrameBatch, Any]]:
        """Each batch with its table, in order, the next ones decoding on `decoders` threads meanwhile (at most
        `decoders` + 1 batches decoding at once: memory stays bounded; 0: on this thread). `early`: the first
        batches' arrays, decoded ahead: made tables here while the batches after them decode. Each batch's tags are
        taken as it comes from the reader, in order (a batch takes the comments of the frames before its end)."""
        if decoders < 1:
            for batch in batches:
                tags = self.tags(batch)
                yield batch, self.ahead(early.popleft(), batch, tags) if early else self.decode(batch, tags)
            return
        with ThreadPoolExecutor(decoders, thread_name_prefix="decode") as pool:
            pending: deque[tuple[FrameBatch, Tags, Future[Any] | None]] = deque()  # None: the next of `early`
            decoding, ahead = 0, len(early)  # of the pending batches, those the pool has; of the batches, those decoded ahead
            for batch in batches:
                tags = self.tags(batch)
                if ahead:
                    ahead -= 1
                    pending.append((batch, tags, None))
                    continue
                pending.append((batch, tags, pool.submit(self.decode, batch, tags)))
                decoding += 1
                while decoding > decoders:
                    done, taken, work = pending.popleft()
                    decoding -= work is not None
                    yield done, self.ahead(early.popleft(), done, taken) if work is None else work.result()
            while pending:
                done, taken, work = pending.popleft()
                yield done, self.ahead(early.popleft(), done, taken) if work is None else self.waited(work)

    def waited(self, work: Future[Any]) -> Any:
        """`work`'s result, one of the last batches' (none left to decode: a core idle). Where the reading thread would
        wait for it and the table is kept for analysis, it first imports what analysis imports later on the main
        thread: numpy.ma (8 ms alone, 15-17 in the command at 2M; polars looks it up at the first Series made from an
        array)."""
        if self.kept and not work.done():
            import numpy.ma  # noqa: F401
        return work.result()


# --- what the user named: files, directories, capture directories ------------------------------


def expand(specs: list[InputSpec]) -> list[InputSpec]:
    """Directories become their files: a `cniscope capture` directory its per-node files (nodes from the manifest),
    any other directory every capture in it, each a node named after its file (`node3.pcap.gz` -> node3)."""
    out: list[InputSpec] = []
    for spec in specs:
        if spec.path != "-" and os.path.isdir(spec.path):
            try:
                out.extend(manifest_inputs(spec.path) if manifest.is_capture_dir(spec.path) else _captures_in(spec))
            except OSError as exc:  # the directory itself (no permission): its entries are handled one by one
                raise InputError(f"{spec.path}: cannot read the directory: {exc.strerror}") from None
        else:
            out.append(spec)
    return out


def manifest_inputs(directory: str) -> list[InputSpec]:
    """One input per node of a capture directory: its pcapng file, tagged with the node's name."""
    found = manifest.load(directory)
    specs = []
    for index, node in enumerate(found["nodes"]):
        if not isinstance(node, dict) or not isinstance(node.get("file"), str) or not isinstance(node.get("name"), str):
            raise InputError(f"{Path(directory) / manifest.MANIFEST}: nodes[{index}] needs 'name' and 'file'")
        if "/" in node["file"] or node["file"].startswith(".."):
            raise InputError(f"{Path(directory) / manifest.MANIFEST}: nodes[{index}].file must be a file in the directory")
        specs.append(InputSpec(path=str(Path(directory) / node["file"]), node=node["name"]))
    return specs


def _captures_in(spec: InputSpec) -> list[InputSpec]:
    found = []
    for entry in sorted(os.scandir(spec.path), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        node = spec.node or entry.name.split(".")[0]
        try:
            if not entry.is_file():
                continue
            with open(entry.path, "rb") as handle:
                head = handle.read(HEAD_LEN)
        except OSError as exc:  # a symlink loop, no permission: warned about when read, the rest read
            found.append(InputSpec(entry.path, node=node, unreadable=exc.strerror or str(exc)))
            continue
        if looks_like_capture(head):
            found.append(InputSpec(entry.path, node=node))
    if not found:
        raise InputError(f"{spec.path}: no capture in this directory (pcap, pcapng or tcpdump text, compressed or not)")
    return found


def inventory_beside(specs: list[InputSpec]) -> str | None:
    """The cluster inventory a capture directory among the inputs carries (the first), for use without --cluster."""
    for spec in specs:
        if spec.path != "-" and os.path.isfile(os.path.join(spec.path, INVENTORY)):  # isfile: False on any OSError
            return os.path.join(spec.path, INVENTORY)
    return None


def scenarios(path: str) -> list[str]:
    """The capture directories inside a `cniscope lab record` directory (one per scenario), in name order;
    empty when `path` is no such directory (it holds captures of its own, or none below it)."""

    def capture_dir(entry: os.DirEntry[str]) -> bool:
        try:
            return entry.is_dir() and not entry.name.startswith(".") and manifest.is_capture_dir(entry.path)
        except OSError:  # a symlink loop, no permission: not a scenario (expand() says what is wrong with it)
            return False

    try:
        if path == "-" or not os.path.isdir(path) or manifest.is_capture_dir(path):
            return []
        return sorted(e.path for e in os.scandir(path) if capture_dir(e))
    except OSError:
        return []  # the directory itself cannot be read: expand() says so
