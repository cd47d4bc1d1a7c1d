"""Sources: find the frames in what the user gave us.

Binary readers (pcap, pcapng) yield `FrameBatch`es: where each frame's bytes are
and where/when it was seen; `cniscope.packets.decode` turns a batch into rows of
the packet table. tcpdump's text has no bytes to decode, so its reader yields
table rows directly (with nulls where the text is silent).

`read()` is the one entry point: it opens every input (file, gzip/zstd file, or
standard input), picks the reader by content, tags rows with their input and
node, and gathers warnings. Damage never raises: what could be read is kept and
a `ReadWarning` says where it broke.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import polars as pl

from cniscope.packets.schema import Clock


@dataclass(frozen=True)
class InputSpec:
    """One input as named on the command line: `node3=capture.pcap`, `-` for stdin."""

    path: str
    node: str | None = None
    unreadable: str | None = None  # a directory's entry that could not be opened: why (warned, not read)

    @classmethod
    def parse(cls, text: str) -> InputSpec:
        node, sep, path = text.partition("=")
        if sep and node and "/" not in node and not node.startswith("."):
            return cls(path=path, node=node)
        return cls(path=text)


@dataclass(frozen=True)
class ReadWarning:
    source: str  # file name as given
    where: str  # "byte 1234", "line 17", "" when the whole input is concerned
    message: str
    level: str = "warning"  # "info": worth saying, not a problem (prose around a paste, nodes named by prompts)

    def __str__(self) -> str:
        where = f":{self.where}" if self.where else ""
        return f"{self.source}{where}: {self.message}"


@dataclass
class InputInfo:
    """What we learned about one input while reading it."""

    index: int
    name: str
    format: str = "unknown"  # pcap | pcapng | text
    node: str | None = None
    clock: Clock = Clock.EPOCH
    packets: int = 0
    unparsed_lines: int = 0
    damaged: bool = False
    warnings: list[ReadWarning] = field(default_factory=list)
    done: float | None = None  # share of the input read so far (0..1), where its size is known (progress)
    bytes_read: int = 0  # of the input as given (compressed, piped): progress where its size is not known
    skipped: bool = False  # an entry of a directory that could not be opened (warned about; the rest was read)

    def warn(self, where: str, message: str, damaged: bool = True) -> None:
        self.warnings.append(ReadWarning(self.name, where, message))
        self.damaged = self.damaged or damaged

    def note(self, where: str, message: str) -> None:
        """Something the user should know that is no damage (the CLI says it as `info:`)."""
        self.warnings.append(ReadWarning(self.name, where, message, level="info"))

    @property
    def unusable(self) -> bool:
        """An input the user named from which nothing could be read: not a capture, empty, missing."""
        return self.packets == 0 and self.damaged and not self.skipped


@dataclass
class Capture:
    """Everything read from the inputs: one table of sightings and what we know of each input."""

    table: pl.DataFrame
    inputs: list[InputInfo]

    @property
    def warnings(self) -> list[ReadWarning]:
        return [w for info in self.inputs for w in info.warnings]

    @property
    def damaged(self) -> bool:
        return any(info.damaged for info in self.inputs)


def iter_tables(spec: InputSpec, info: InputInfo, batch_size: int = 65536) -> Iterator[pl.DataFrame]:
    """Yield the packet table of one input in batches, conformed to the schema."""
    from cniscope.sources.open import iter_input_tables

    yield from iter_input_tables(spec, info, batch_size)


def read(specs: list[InputSpec], batch_size: int = 65536, on_batch: Callable[[InputSpec, InputInfo], None] | None = None) -> Capture:
    """Read every input into one table (row order: input, then frame); `on_batch` is told after each batch (progress).

    The batches are not copied into one chunk: that would hold the table twice at the end of reading.
    """
    from cniscope.packets.schema import empty

    infos: list[InputInfo] = []
    tables: list[pl.DataFrame] = []
    for index, spec in enumerate(specs):
        info = InputInfo(index=index, name=spec.path, node=spec.node)
        infos.append(info)
        for table in iter_tables(spec, info, batch_size):
            tables.append(table)
            if on_batch is not None:
                on_batch(spec, info)
    table = pl.concat(tables, rechunk=False) if tables else empty()
    return Capture(table=table, inputs=infos)
