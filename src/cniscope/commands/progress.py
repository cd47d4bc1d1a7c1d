"""The CLI's progress line: what `analyze` is reading and analysing, on standard error, only when that is a
terminal and the inputs are long (a no-op otherwise). The line itself (`live`, rich) is imported only for long
inputs, and only when standard error may be a terminal."""

from __future__ import annotations

import importlib
import io
import os
import stat
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from cniscope.ingest import Capture, read
from cniscope.sources import InputInfo, InputSpec

if TYPE_CHECKING:
    from rich.console import Console

    from cniscope.commands.live import Line

LIVE = "cniscope.commands.live"  # the line, drawn by rich: imported for long inputs only

PROGRESS_MIN_BYTES = 8 << 20  # inputs smaller than this read too fast to need a progress line


class Progress:
    """A one-line status on standard error while inputs are read and analysed (a no-op off a terminal).

        with Progress(specs) as progress:
            capture = progress.read(specs)
            progress.stage("correlating")
    """

    def __init__(self, specs: list[InputSpec], console: Console | None = None, min_bytes: int = PROGRESS_MIN_BYTES) -> None:
        sizes = [_size(spec) for spec in specs]
        long = any(size is None for size in sizes) or sum(s for s in sizes if s is not None) >= min_bytes
        self.started = time.monotonic()
        shown = long and (console is not None or _may_be_terminal())
        self.line: Line | None = importlib.import_module(LIVE).shown(console, self.started) if shown else None

    def __enter__(self) -> Progress:
        if self.line is not None:
            self.line.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.line is not None:
            self.line.stop()

    def stage(self, text: str) -> None:
        if self.line is not None:
            self.line.update(text)

    def read(self, specs: list[InputSpec]) -> Capture:
        """`cniscope.ingest.read`, saying what `reading` says."""
        return read(specs, on_batch=self.reading(specs))

    def reading(self, specs: list[InputSpec]) -> Callable[[InputSpec, InputInfo], None]:
        """What to tell after each batch read: which input, how many packets so far, and the share of the inputs'
        bytes read with when reading will end at this pace (or, through a pipe, the bytes read so far)."""
        started = time.monotonic()
        sizes = [_size(spec) for spec in specs]
        total = None if None in sizes else sum(s or 0 for s in sizes)
        before = [sum(s or 0 for s in sizes[:i]) for i in range(len(specs))]

        def batch(spec: InputSpec, info: InputInfo) -> None:
            text = f"reading {spec.path}: {info.packets:,} packets"
            if info.done is not None and total:
                share = (before[info.index] + info.done * (sizes[info.index] or 0)) / total  # of all inputs' bytes
                elapsed = time.monotonic() - started
                eta = f", about {elapsed * (1 - share) / share:.0f} s left" if share > 0.02 else ""
                text += f" ({share:.0%}{eta})"
            elif info.bytes_read:
                text += f" ({info.bytes_read / 1e6:,.0f} MB read)"
            self.stage(text)

        return batch


def _may_be_terminal() -> bool:
    """Whether rich could take standard error for a terminal: it is one, or the environment says to treat it as one
    (rich reads FORCE_COLOR and TTY_COMPATIBLE). When not, rich (0.02 s of imports) is not needed to know the line
    would not show (a long capture's `--json` into a pipe or a file)."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        tty = False
    return tty or "FORCE_COLOR" in os.environ or "TTY_COMPATIBLE" in os.environ


def _size(spec: InputSpec) -> int | None:
    """Bytes of an input file, or of standard input redirected from one; None for a pipe (length unknown)."""
    try:
        found = os.fstat(sys.stdin.fileno()) if spec.path == "-" else os.stat(spec.path)
    except (OSError, ValueError, io.UnsupportedOperation):  # missing (said when read); stdin closed or not a file
        return None if spec.path == "-" else 0
    return found.st_size if stat.S_ISREG(found.st_mode) else None
