"""One capture's records walked and decoded while the command imports the rest (polars and the analysis: 0.3 s on
one core).

`analyze` knows its inputs before it imports what analyses them, and meanwhile the other core is idle. For one plain
pcap or pcapng file, `start` has a thread open it as `ingest` does (`open_input`: mapped), find its frames batch by
batch (`Frames`, in the batches `ingest.read` makes: `batch_frames`) and decode each into its columns' arrays
(`chunks.decode`, as `ingest.read` would: the columns it leaves unread, its table kept); `ingest.read` takes the input
over (`Ahead.take`), makes the decoded batches tables and decodes and walks the rest itself. The walk and the C decoder
release the GIL the imports hold. The thread begins before numpy is imported (this module imports none: the command
starts it once its arguments are parsed): it maps the file and maps its pages in (`populate`, without the GIL: the
walk's faults on the core the imports leave idle), while `Ahead` imports numpy and the readers on the command's thread;
then it walks. Anything else (several inputs, standard input, a directory, text, a compressed file)
gets no thread and is read as always; so does an input the thread could not open or walk: `ingest` meets whatever went
wrong again, and says it. Where the C decoder was not built, the thread only walks (the fallback is Python: the GIL).

Neither this module nor what it reads with and decodes with imports polars (tests/test_ahead.py), which the command's
thread is importing meanwhile; this module imports no numpy either (the readers and the decoder do, in `Ahead`).
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import deque
from collections.abc import Collection, Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from cniscope.models import TUNNEL_PORTS
from cniscope.sources import InputInfo, InputSpec
from cniscope.wire.guarded import guarded
from cniscope.wire.magic import is_pcap, is_pcapng

if TYPE_CHECKING:  # imported by `Ahead`, after its thread has begun mapping the file: they import numpy
    from cniscope.packets.chunks import Arrays, Scratch
    from cniscope.packets.frames import FrameBatch
    from cniscope.sources.open import Frames, Opened, Releaser

try:
    from cniscope.wire._walk import populate
except ImportError:  # built without a C compiler: the walk maps the pages as it goes
    populate = None  # type: ignore[assignment]

WALKED = 32  # batches walked ahead at most (36 B a frame: 300 MB at 256k frames a batch), handed on as they decode
DECODED = 8  # of them decoded ahead at most (the table's ~170 B a frame: 350 MB at 256k frames a batch)
POPULATED = 1 << 29  # bytes of the file mapped in before the walk (`populate`): as far as it walks during the imports


@dataclass
class Walked:
    """An input opened and walked ahead, as `ingest` takes it over: its closing is `stack`'s."""

    info: InputInfo
    opened: Opened
    found: Frames  # the batches walked ahead, then the rest as the reader finds them
    stack: ExitStack
    decoded: deque[Future[list[Arrays]]]  # the first batches' arrays, decoded ahead with `unread` left out, to be kept
    unread: frozenset[str]
    scratch: Scratch  # the decoder's working arrays, to take again
    release: Releaser  # the file's pages behind the batches decoded ahead handed back


def start(specs: list[InputSpec], batch_size: int | None = None, unread: Collection[str] = ()) -> Ahead | None:
    """The walk of `specs`' one input begun on a thread, when it is one plain pcap or pcapng file; else None.
    `batch_size`: as `ingest.read`'s (default: the readers' `BATCH`); `unread`: the columns `ingest.read` will be asked
    to leave unread."""
    if len(specs) != 1 or specs[0].path == "-" or specs[0].unreadable or not _capture_file(specs[0].path):
        return None
    return Ahead(specs[0], batch_size, unread)


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
    """The walk of one input, on a thread until `take` or `close`; a context manager that closes it. Made, it has
    imported what reads and decodes the input (numpy's users) while its thread mapped the file."""

    def __init__(self, spec: InputSpec, batch_size: int | None = None, unread: Collection[str] = ()) -> None:
        self.spec = spec
        self.unread = frozenset(unread)
        self._ready = threading.Event()  # the readers imported: the thread walks
        self._decoded: deque[Future[list[Arrays]]] = deque()  # the first of `_walked`, decoding or decoded
        self._decoding = False  # whether the walk is over and the decoding begun
        self._taken = False  # whether `take` handed the input on
        self._lock = threading.Lock()
        self._info = InputInfo(index=0, name=spec.path, node=spec.node)
        self._stack = ExitStack()
        self._stop = threading.Event()
        self._walked: deque[FrameBatch] = deque()
        self._opened: Opened | None = None
        self._release: Releaser | None = None
        self._found: Frames | None = None
        self._failed = False
        self._file: BinaryIO | None = None  # the file and its mapping, made before the readers are imported
        self._mapped: mmap.mmap | None = None
        self._thread = threading.Thread(target=self._walk, name="walk-ahead", daemon=True)
        self._thread.start()
        try:
            from cniscope.packets.chunks import Scratch
            from cniscope.sources.open import BATCH

            self.batch_size = BATCH if batch_size is None else batch_size
            self._scratch = Scratch()
        finally:  # (the thread then fails, as anything else it meets: `ingest` reads the input as always)
            self._ready.set()

    def _map(self) -> None:
        """The file opened and mapped as `open_input` maps it, for it to take, and its first `POPULATED` bytes' pages
        mapped in (`populate`): numpy is not imported yet, and the GIL is let go meanwhile."""
        self._file = file = self._stack.enter_context(open(self.spec.path, "rb"))  # noqa: SIM115 - the stack closes it
        size = os.fstat(file.fileno()).st_size
        if not size:
            return
        self._mapped = mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self._stack.callback(guarded(mapped, file.fileno()))
        if populate is not None:
            populate(mapped, 0, min(size, POPULATED))

    def _walk(self) -> None:
        try:
            self._map()
            self._ready.wait()
            from cniscope.packets import chunks
            from cniscope.sources.open import Frames, Releaser, batch_frames, open_input

            opened = open_input(self.spec, self._info, self._stack, self._file, self._mapped)
            if not opened.binary:
                return
            self._opened, self._release = opened, Releaser(opened.buf)
            self._found = found = Frames.of(opened, self._info, batch_frames(self.batch_size, opened.buf.nbytes))
            while not self._stop.is_set() and len(self._walked) < WALKED:
                batch = next(found.batches, None)
                if batch is None:
                    break
                self._walked.append(batch)
            for batch in list(self._walked)[:DECODED] if chunks.built() else ():  # the walk first: ingest's is serial
                with self._lock:  # the walk is done: `take` waits no more for it, nor for the batch decoding
                    self._decoding = True
                    if self._stop.is_set():
                        break
                    decoded: Future[list[Arrays]] = Future()
                    self._decoded.append(decoded)
                try:
                    arrays = self._decode(batch)
                except Exception as exc:  # taken: ingest meets it as if it had decoded the batch itself
                    decoded.set_exception(exc)
                    raise
                self._release.before(int(batch.offset[-1]))  # as ingest does: the file's pages no longer read
                decoded.set_result(arrays)  # (ingest releases the later pages once it has these arrays)
        except Exception:  # noqa: BLE001 - ingest reads the input again and says what is wrong with it
            self._failed = True

    def _decode(self, batch: FrameBatch) -> list[Arrays]:
        from cniscope.packets import chunks

        with self._scratch.held() as scratch:
            return chunks.decode(batch, TUNNEL_PORTS, self.unread, scratch, kept=True)

    def take(self) -> Walked | None:
        """The input as walked so far, the rest of the walk the taker's; None when the thread could not walk it. A
        batch still decoding is handed on as it is (its future): the taker has the rest to do meanwhile."""
        with self._lock:
            self._stop.set()
            decoding = self._decoding
        if not decoding:
            self._thread.join()
        if self._failed or self._opened is None or self._found is None or self._release is None:
            self.close()
            return None
        from cniscope.sources.open import Frames

        walked, self._walked = self._walked, deque()
        decoded, self._decoded = self._decoded, deque()
        found = Frames(_then(walked, self._found.batches), self._found.comments)
        stack = self._stack.pop_all()
        stack.callback(self._thread.join)  # first: the batch decoding reads the mapped file
        self._taken = True
        return Walked(self._info, self._opened, found, stack, decoded, self.unread, self._scratch, self._release)

    def close(self) -> None:
        """Stop the walk and let go of what it holds (nothing once taken: a batch still decoding is the taker's)."""
        self._stop.set()
        if not self._taken:
            self._thread.join()
        self._walked.clear()
        self._decoded.clear()
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
