"""Parts of inputs: what one task of a cluster reads on its own (`analyze --dask`).

Theory of operation
-------------------
An uncompressed pcap is cut into byte ranges of about `PART_BYTES`; a part holds
the records whose header starts in its range. Only the first part knows where
its first record starts (after the file header): any other one looks for the
first offset from which a chain of plausible record headers follows (`_sync`).
A payload can look like records, so that guess is checked where the parts meet
again (`join`): each part must start exactly where the walk of the one before it
ended, and a part that does not is read again from there. The joined table is
the one `cniscope.ingest.read` makes from the whole file, row for row: frames
numbered from the start of the input, the same warnings (a damaged part is read
again knowing its first record's index, and ends its input as damage does).
Every other input (pcapng, tcpdump text, anything compressed) is one part.

Inputs are local paths or fsspec URLs (`s3://`, `gs://`, `file://`): a part is
read wherever its task runs, so the path must name the same bytes there. A part
of a remote pcap fetches only its byte range; a whole remote input is copied to
a temporary file first (its size on the worker's disk, gone when read).
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from cniscope.errors import InputError, ReadWarning
from cniscope.ingest import Capture, Reopen, iter_tables
from cniscope.models import TUNNEL_PORTS
from cniscope.packets.decode import decode_batch
from cniscope.packets.schema import Clock, empty
from cniscope.packets.tags import Tags
from cniscope.sources import InputInfo, InputSpec, pcap
from cniscope.sources.open import HEAD_LEN, map_file
from cniscope.wire import pcap as pcap_file

PART_BYTES = 64 << 20  # a part's range: seconds of decoding, a few hundred MB of table at most
CHAIN = 8  # record headers that must follow one another for a guessed start
SPAN = 30 * 86400  # seconds from the first record within which a guessed record's time must be
REACH = pcap_file.RECORD_LEN + pcap_file.MAX_CAPLEN  # the furthest a record starting in a range reaches past it


@dataclass(frozen=True)
class Part:
    """Bytes [start, stop) of input `index` (stop None: to its end; a whole input is 0 to None)."""

    index: int
    spec: InputSpec  # as given: its path names the input in the report
    location: str  # where a worker reads it: the path made absolute, or the URL
    start: int = 0
    stop: int | None = None
    exact: bool = True  # `start` is a record's; else the part starts at the first record at or after it
    first: int = 0  # that record's index in the input, when known (else 0, and `join` renumbers)

    @property
    def whole(self) -> bool:
        return self.stop is None and self.start == 0

    def __str__(self) -> str:
        return f"{self.spec.path} (whole input)" if self.whole else f"{self.spec.path} bytes {self.start}-{self.stop}"


@dataclass
class PartRead:
    """What a task gives back: the part's rows, what reading learned, where its records began and ended."""

    part: Part
    table: pl.DataFrame
    info: InputInfo
    begin: int | None  # byte of the part's first record (None: no record found from its start)
    end: int | None  # byte just after its last record: where the next part must begin
    seconds: float  # wall time of the read, on the worker


# --- where the bytes are --------------------------------------------------------------------


def is_url(path: str) -> bool:
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.isidentifier()


def _local(path: str) -> str | None:
    """The local file a path names (file:// URLs included), or None for a remote URL."""
    if not is_url(path):
        return path
    return path[len("file://"):] if path.startswith("file://") else None


def _fs(url: str) -> tuple[Any, str]:  # fsspec ships no types: its filesystem is Any here
    """The fsspec filesystem and the path in it; a missing filesystem package is the user's to install."""
    import fsspec

    try:
        found: tuple[Any, str] = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(f"{url}: cannot open this URL here: {exc}") from None
    return found


def size_and_head(path: str) -> tuple[int, bytes]:
    """The size of an input and its first bytes."""
    local = _local(path)
    try:
        if local is not None:
            with open(local, "rb") as handle:
                return os.fstat(handle.fileno()).st_size, handle.read(HEAD_LEN)
        fs, inner = _fs(path)
        size = int(fs.size(inner))
        return size, bytes(fs.cat_file(inner, 0, min(size, HEAD_LEN)))
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from None


# --- planning -------------------------------------------------------------------------------


def plan(specs: list[InputSpec], part_bytes: int = PART_BYTES) -> list[Part]:
    """The parts of every input, in input order."""
    parts: list[Part] = []
    for index, spec in enumerate(specs):
        if spec.path == "-":
            raise InputError("standard input cannot be read on a cluster: save it to a file the workers can read")
        size, head = size_and_head(spec.path)
        location = spec.path if is_url(spec.path) else os.path.abspath(spec.path)  # the workers' directory is not ours
        if not pcap_file.is_pcap(head) or size <= part_bytes:
            parts.append(Part(index, spec, location))
            continue
        starts = range(pcap_file.HEADER_LEN, size, part_bytes)
        parts.extend(Part(index, spec, location, start, min(start + part_bytes, size), exact=start == pcap_file.HEADER_LEN)
                     for start in starts)
    return parts


# --- reading one part (in a worker) ---------------------------------------------------------


def read_part(part: Part, batch_size: int = 65536) -> PartRead:
    started = time.perf_counter()
    info = InputInfo(index=part.index, name=part.spec.path, node=part.spec.node)
    if part.whole:
        with _local_copy(part.location) as path:
            tables = list(iter_tables(InputSpec(path, part.spec.node), info, batch_size))
        begin = end = None
    else:
        tables, begin, end = _read_range(part, info, batch_size)
    table = pl.concat(tables, rechunk=False) if tables else empty()
    return PartRead(part, table, info, begin, end, time.perf_counter() - started)


@contextmanager
def _local_copy(path: str) -> Iterator[str]:
    """A local path holding the input: itself, or a temporary copy of a remote one."""
    local = _local(path)
    if local is not None:
        yield local
        return
    fs, inner = _fs(path)
    with tempfile.NamedTemporaryFile(prefix="cniscope-part-") as copy:
        with fs.open(inner, "rb") as source:
            shutil.copyfileobj(source, copy, 1 << 20)
        copy.flush()
        yield copy.name


def _read_range(part: Part, info: InputInfo, batch_size: int) -> tuple[list[pl.DataFrame], int | None, int | None]:
    assert part.stop is not None
    info.format, info.clock = "pcap", Clock.EPOCH
    tables: list[pl.DataFrame] = []
    with _window(part) as (buf, shift, first_sec):
        header = pcap_file.parse_header(buf)
        assert header is not None, "planned as pcap"
        start = part.start - shift if part.exact else _sync(buf, header, part.start - shift, first_sec)
        if start is None:
            return tables, None, None
        end = start
        for batch in pcap.iter_batches(buf, info, batch_size, start=start, stop=part.stop - shift, first=part.first):
            tables.append(decode_batch(batch, part.index, TUNNEL_PORTS, tags=Tags(part.spec.node)))
            info.packets += len(batch.offset)
            end = int(batch.offset[-1]) + int(batch.caplen[-1])
    if shift:
        info.warnings = [_shifted(w, shift) for w in info.warnings]
    return tables, start + shift, end + shift


@contextmanager
def _window(part: Part) -> Iterator[tuple[memoryview, int, int | None]]:
    """A buffer holding the file header and the part's bytes; what to add to a position in it for the
    position in the file (a local file is mapped whole: 0; a remote one's range is fetched after its header);
    the seconds of the file's first record."""
    assert part.stop is not None
    local = _local(part.location)
    if local is not None:
        with ExitStack() as stack:
            try:
                buf = map_file(stack.enter_context(open(local, "rb")), stack)
            except OSError as exc:
                raise InputError(f"cannot read it: {exc.strerror or exc}") from None
            yield buf, 0, _seconds(buf[: pcap_file.HEADER_LEN + pcap_file.RECORD_LEN])
        return
    fs, inner = _fs(part.location)
    try:
        head = fs.cat_file(inner, 0, pcap_file.HEADER_LEN + pcap_file.RECORD_LEN)
        body = fs.cat_file(inner, part.start, part.stop + REACH)  # fsspec stops at the end of the file
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror or exc}") from None
    yield memoryview(head[: pcap_file.HEADER_LEN] + body), part.start - pcap_file.HEADER_LEN, _seconds(head)


def _seconds(head: bytes | memoryview) -> int | None:
    """The seconds of the first record, from the file's first 40 bytes."""
    header = pcap_file.parse_header(head)
    if header is None or len(head) < pcap_file.HEADER_LEN + 4:
        return None
    return int(struct.unpack_from(header.byteorder + "I", head, pcap_file.HEADER_LEN)[0])


def _sync(buf: memoryview, header: pcap_file.Header, at: int, first_sec: int | None) -> int | None:
    """The first offset from `at` where CHAIN plausible record headers follow one another (or the buffer ends):
    times within SPAN of the first record's, sub-second fields below a second, caplen within wirelen."""
    record = struct.Struct(header.byteorder + "IIII")
    end = len(buf)
    low, high = (0, 1 << 32) if first_sec is None else (first_sec - SPAN, first_sec + SPAN)
    for candidate in range(max(at, pcap_file.HEADER_LEN), min(end, at + REACH) + 1):
        pos, links = candidate, 0
        while links < CHAIN and pos + pcap_file.RECORD_LEN <= end:
            sec, sub, caplen, wirelen = record.unpack_from(buf, pos)
            if not low <= sec <= high or sub >= header.ticks or caplen > pcap_file.MAX_CAPLEN or caplen > wirelen or pos + pcap_file.RECORD_LEN + caplen > end:
                break
            pos += pcap_file.RECORD_LEN + caplen
            links += 1
        if links == CHAIN or pos == end:
            return candidate
    return None


def _shifted(warning: ReadWarning, shift: int) -> ReadWarning:
    """A warning's `byte N`, from a position in the fetched window to one in the file."""
    kind, _, number = warning.where.partition(" ")
    if kind != "byte" or not number.isdigit():
        return warning
    return replace(warning, where=f"byte {int(number) + shift}")


# --- joining the parts (on the client) ------------------------------------------------------


def join(reads: list[PartRead], reread: Callable[[Part], PartRead]) -> Capture:
    """One capture from the reads of `plan`'s parts (in plan order), as `ingest.read` reads the whole inputs.

    `reread` reads a part again, where its guessed start was wrong or where it holds damage (to word the
    warning with the index of its first record).
    """
    infos: dict[int, InputInfo] = {}
    tables: list[pl.DataFrame] = []
    expected: dict[int, int] = {}  # per input: where its next part must begin
    ended: set[int] = set()  # inputs whose damage ends them
    for read in reads:
        part = read.part
        if part.whole:
            infos[part.index] = read.info
            tables.append(read.table)
            continue
        if part.index in ended:
            continue
        info = infos.setdefault(part.index, InputInfo(part.index, part.spec.path, "pcap", part.spec.node))
        at = expected.get(part.index, pcap_file.HEADER_LEN)
        if read.begin != at or (read.info.damaged and part.first != info.packets):
            read = reread(replace(part, start=at, exact=True, first=info.packets))
        table = read.table
        if read.part.first != info.packets and table.height:
            table = table.with_columns(pl.col("frame") + (info.packets - read.part.first))
        tables.append(table)
        info.packets += read.info.packets
        info.warnings.extend(read.info.warnings)
        info.damaged = info.damaged or read.info.damaged
        if read.info.damaged:
            ended.add(part.index)
        expected[part.index] = read.end if read.end is not None else at
    table = pl.concat(tables, rechunk=False) if tables else empty()
    specs = {read.part.index: read.part.spec for read in reads}
    return Capture(table=table, inputs=[infos[i] for i in sorted(infos)], source=Reopen(tuple(specs[i] for i in sorted(specs))))
