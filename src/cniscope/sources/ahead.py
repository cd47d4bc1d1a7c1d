"""One capture's records walked while the command imports the rest (polars and the analysis: 0.3 s on one core).

`analyze` knows its inputs before it imports what analyses them, and meanwhile the other core is idle. For one plain
pcap or pcapng file, `start` has a thread open it as `ingest` does (`open_input`: mapped), find its frames batch by
batch (`Frames`, in the batches `ingest.read` makes: `batch_frames`) and hold them; `ingest.read` takes the input over
(`Ahead.take`) and walks the rest itself. The walk is in C and releases the GIL the imports hold. Anything else
(several inputs, standard input, a directory, text, a compressed file) gets no thread and is read as always; so does
an input the thread could not open or walk: `ingest` meets whatever went wrong again, and says it.

Neither this module nor the readers import polars (tests/test_ahead.py), which the command's thread is importing
meanwhile.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from cniscope.sources import InputInfo, InputSpec
from cniscope.sources.open import BATCH, Frames, Opened, batch_frames, open_input
from cniscope.wire.pcap import is_pcap
from cniscope.wire.pcapng import is_pcapng

if TYPE_CHECKING:
    from cniscope.packets.frames import FrameBatch

WALKED = 32  # batches walked ahead at most (36 B a frame: 300 MB at 256k frames a batch), handed on as they decode


@dataclass
class Walked:
    """An input opened and walked ahead, as `ingest` takes it over: its closing is `stack`'s."""

    info: InputInfo
    opened: Opened
    found: Frames  # the batches walked ahead, then the rest as the reader finds them
    stack: ExitStack


def start(specs: list[InputSpec], batch_size: int = BATCH, kept: bool = True, most: int = WALKED) -> Ahead | None:
    """The walk of `specs`' one input begun on a thread, when it is one plain pcap or pcapng file; else None. `kept`:
    batches grown as `ingest.read` grows them (a streaming writer's are `batch_size` frames: `ingest.batches`);
    `most`: batches walked ahead at most."""
    if len(specs) != 1 or specs[0].path == "-" or specs[0].unreadable or not _capture_file(specs[0].path):
        return None
    return Ahead(specs[0], batch_size, kept, most)


def _capture_file(path: str) -> bool:
    """A regular file that starts like pcap or pcapng (compressed ones are spooled first: not here)."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as file:
            head = file.read(4)
        return is_pcap(head) or is_pcapng(head)
    except OSError:
        return False


class Ahead:
    """The walk of one input, on a thread until `take` or `close`; a context manager that closes it."""

    def __init__(self, spec: InputSpec, batch_size: int = BATCH, kept: bool = True, most: int = WALKED) -> None:
        self.spec = spec
        self.batch_size = batch_size
        self.kept = kept
        self.most = most
        self._info = InputInfo(index=0, name=spec.path, node=spec.node)
        self._stack = ExitStack()
        self._stop = threading.Event()
        self._walked: deque[FrameBatch] = deque()
        self._opened: Opened | None = None
        self._found: Frames | None = None
        self._failed = False
        self._thread = threading.Thread(target=self._walk, name="walk-ahead", daemon=True)
        self._thread.start()

    def _walk(self) -> None:
        try:
            opened = open_input(self.spec, self._info, self._stack)
            if not opened.binary:
                return
            self._opened = opened
            frames = batch_frames(self.batch_size, opened.buf.nbytes) if self.kept else self.batch_size
            self._found = found = Frames.of(opened, self._info, frames)
            while not self._stop.is_set() and len(self._walked) < self.most:
                batch = next(found.batches, None)
                if batch is None:
                    break
                self._walked.append(batch)
        except Exception:  # noqa: BLE001 - ingest reads the input again and says what is wrong with it
            self._failed = True

    def take(self) -> Walked | None:
        """The input as walked so far, the rest of the walk the taker's; None when the thread could not walk it."""
        self._stop.set()
        self._thread.join()
        if self._failed or self._opened is None or self._found is None:
            self.close()
            return None
        walked, self._walked = self._walked, deque()
        found = Frames(_then(walked, self._found.batches), self._found.comments)
        return Walked(self._info, self._opened, found, self._stack.pop_all())

    def close(self) -> None:
        """Stop the walk and let go of what it holds (nothing once taken)."""
        self._stop.set()
        self._thread.join()
        self._walked.clear()
        self._opened = self._found = None
        self._stack.close()

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _then(walked: deque[FrameBatch], rest: Iterator[FrameBatch]) -> Iterator[FrameBatch]:
    """The batches walked ahead, each let go as it is handed on, then the rest."""
    while walked:
        yield walked.popleft()
    yield from rest
