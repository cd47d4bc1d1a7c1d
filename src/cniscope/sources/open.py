"""Open one input and pick its reader by content: pcap, pcapng or tcpdump text.

Theory of operation: a plain file is mapped (zero copy; the OS pages it in and
out, so files larger than memory work) and walked by the binary readers in
bounded batches (`Frames`); the caller (`cniscope.ingest`) decodes each batch
and hands the mapped pages behind it back to the OS (`Releaser`). Compressed files (gzip,
zstd, xz, bzip2; recognised by their magic, not their name), pipes and standard
input cannot be mapped: a binary capture among them is first spooled to an
unlinked temporary file (MAX_SPOOL bytes at most) and mapped from there, while
text is streamed line by line (MAX_LINE characters a line at most). Nothing is
ever held whole in memory: decompression goes in bounded steps, and stops at
what looks like a decompression bomb (`_Decompressed`).

An input that cannot be opened at all (missing, a directory, no permission)
raises `InputError` (`open_input`). One that opens but holds no capture (empty,
unknown magic: `refuse`) and one damaged part-way gets a warning on its
`InputInfo` and yields what could be read: the caller decides the exit code.
"""

from __future__ import annotations

import bz2
import io
import lzma
import mmap
import os
import stat
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, BinaryIO, Protocol

import zstandard

from cniscope.errors import InputError
from cniscope.packets.frames import FrameBatch
from cniscope.packets.kinds import Clock
from cniscope.packets.ports import TunnelPorts
from cniscope.sources import InputInfo, InputSpec
from cniscope.wire.guarded import guarded
from cniscope.wire.pcap import is_pcap
from cniscope.wire.pcapng import is_pcapng

if TYPE_CHECKING:
    import polars as pl
    from _typeshed import WriteableBuffer

HEAD_LEN = 4096  # bytes looked at to tell text from binary
MAX_LINE = 64 << 10  # characters of a text line held at once
CHUNK = 1 << 20
PAGE = mmap.PAGESIZE
BATCH = 65536  # frames (or text packets) read and decoded at a time
# `ingest.read` (the whole table in memory) reads a binary input in batches of BATCH times its multiples of LARGE bytes,
# up to GROWN times (`batch_frames`): each batch costs ~4 ms beside its rows (the readers' and the decoder's Python, the
# chunk's 50 columns to polars, then a chunk more a column in the stages after); a small input keeps enough batches to
# decode on both cores (at 64 MiB, a file of 64-256 MiB has 5-8 batches). Writers that stream keep BATCH: they hold
# several batches at a time. The 2M pcap in 8 batches of 256k, not 31 of 64k: read 0.53 -> 0.45 s, CPU 0.94 -> 0.80 s.
LARGE = 1 << 26
GROWN = 4

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
FEED = 1 << 16  # compressed bytes fed to a decompressor at a time
FEED_ZSTD = 256  # zstd: a 128 KiB block takes at least 4 bytes, so 256 bytes make at most 8 MiB
OUT_STEP = 1 << 20  # decompressed bytes made at a time (gzip, xz, bzip2)
BOMB_FLOOR = 64 << 20  # past this many decompressed bytes ...
BOMB_RATIO = 200  # ... an input expanding more than this is a bomb (real captures: 2-50 times, gzip or zstd -19)
MAX_NESTING = 3  # compressions undone one inside the other
MAX_SPOOL = 1 << 30  # decompressed bytes of a binary capture spooled to disk to be mapped
ZLIB_TYPE = type(zlib.decompressobj())

# leading bytes -> (name, new decompressor); each decompresses one member/frame/stream
COMPRESSIONS: dict[bytes, tuple[str, Callable[[], Decompressor]]] = {
    b"\x1f\x8b": ("gzip", lambda: zlib.decompressobj(wbits=31)),
    b"\x28\xb5\x2f\xfd": ("zstd", lambda: zstandard.ZstdDecompressor().decompressobj()),
    b"\xfd7zXZ\x00": ("xz", lzma.LZMADecompressor),
    b"BZh": ("bzip2", bz2.BZ2Decompressor),
}
# what damaged compressed data raises
DECOMPRESS_ERRORS: tuple[type[Exception], ...] = (zlib.error, lzma.LZMAError, OSError, EOFError, zstandard.ZstdError)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, /) -> bytes: ...


def sniff(head: bytes) -> str:
    """The format of an uncompressed input from its first bytes: pcap, pcapng, text, empty or unknown."""
    if not head:
        return "empty"
    if is_pcap(head):
        return "pcap"
    if is_pcapng(head):
        return "pcapng"
    if head.startswith(UTF16_BOMS):  # what a Windows shell's `>` writes
        return "text"
    if _looks_like_text(head):
        return "text"
    return "unknown"


def looks_like_capture(head: bytes) -> bool:
    """A file worth reading when a directory is given: pcap, pcapng, tcpdump text, or compressed (checked when read)."""
    return _compression(head) is not None or sniff(head) in ("pcap", "pcapng") or _text_reader().shows_packets(head)


def _text_reader() -> ModuleType:
    """The tcpdump text reader, imported when text is looked at: a binary capture does without its grammar's
    regular expressions (10-15 ms of the command's imports)."""
    from cniscope.sources.text import reader

    return reader


def _looks_like_text(head: bytes) -> bool:
    if _text_reader().starts_like_tcpdump(head):  # tcpdump text, whatever junk follows its first line
        return True
    if b"\0" in head:
        return False
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return control * 20 <= len(head)


def _compression(head: bytes) -> tuple[str, Callable[[], Decompressor]] | None:
    for magic, found in COMPRESSIONS.items():
        if head.startswith(magic):
            return found
    return None


def refuse(opened: Opened, info: InputInfo) -> None:
    """Say why an input that opened holds no capture: empty, compressed too many times over, or no known format."""
    if opened.kind == "empty":
        info.warn("", "empty input: no capture in it")
    elif _compression(opened.head) is not None:
        info.warn("byte 0", f"compressed more than {MAX_NESTING} times over: decompress it first")
    else:
        info.warn("byte 0", f"not a capture: starts with {opened.head[:8].hex(' ')}; expected pcap (d4 c3 b2 a1 "
                            "...), pcapng (0a 0d 0d 0a), tcpdump text, or one of them compressed (gzip, zstd, xz, "
                            "bzip2)")


@dataclass
class Opened:
    """An opened input: its format and, for binary ones, the mapped bytes; for text, the byte stream."""

    kind: str  # as sniff() says
    head: bytes  # the first bytes, decompressed
    buf: memoryview = memoryview(b"")
    stream: Readable = field(default_factory=io.BytesIO)
    encoding: str = "utf-8"
    counted: _Counted | None = None  # text: the input's own bytes as read so far (before decompression)
    size: int | None = None  # text: the input's size, when it is a file

    @property
    def binary(self) -> bool:
        return self.kind in ("pcap", "pcapng")


def batch_frames(batch_size: int, nbytes: int) -> int:
    """The frames of a batch of a binary input of `nbytes` read whole (`ingest.read`): `batch_size` grown (`LARGE`)."""
    return batch_size * min(GROWN, max(1, nbytes // LARGE))


@dataclass
class Frames:
    """The frames of a binary input, found batch by batch; pcapng's packet comments by frame index, gathered as
    the batches are walked."""

    batches: Iterator[FrameBatch]
    comments: dict[int, str]

    @classmethod
    def of(cls, opened: Opened, info: InputInfo, batch_size: int) -> Frames:
        info.format = opened.kind
        info.clock = Clock.EPOCH
        from cniscope.sources import pcap, pcapng  # here: text needs neither reader

        if opened.kind == "pcap":
            return cls(pcap.iter_batches(opened.buf, info, batch_size), {})
        reader = pcapng.Reader(opened.buf, info, batch_size)
        return cls(reader.batches(), reader.comments)


def open_input(spec: InputSpec, info: InputInfo, stack: ExitStack, file: BinaryIO | None = None,
               mapped: mmap.mmap | None = None) -> Opened:
    """Open the input, undo its compression, tell its format; map binary captures (spooled first when
    they come compressed or through a pipe or standard input, which cannot be mapped). `file`: the input already
    opened (on `stack`), and `mapped` its mapping, made before numpy was imported (`cniscope.ahead`)."""
    opened = file or _open(spec, stack)
    size = _file_size(opened)  # None: a pipe, <(zcat f)
    mappable = spec.path != "-" and size is not None
    raw = _Counted(opened)
    head = _read_head(raw)
    compression = _compression(head)
    if compression is None and mappable and sniff(head) in ("pcap", "pcapng"):
        return Opened(sniff(head), head, buf=map_file(opened, stack, mapped))
    stream: Readable = _Prefixed(head, raw)
    for _ in range(MAX_NESTING):  # capture.pcap.gz.zst: each layer bounded on its own
        if compression is None:
            break
        stream = _Decompressed(stream, *compression, info)
        head = _read_head(stream)
        stream = _Prefixed(head, stream)
        compression = _compression(head)
    kind = sniff(head)
    if kind in ("pcap", "pcapng"):
        spool = stack.enter_context(tempfile.TemporaryFile(prefix="cniscope-", buffering=0))  # noqa: SIM115 - the stack closes it
        _spool(stream, spool, info)
        return Opened(kind, head, buf=map_file(spool, stack))
    encoding = "utf-16" if head.startswith(UTF16_BOMS) else "utf-8"
    return Opened(kind, head, stream=stream, encoding=encoding, counted=raw, size=size)


def _open(spec: InputSpec, stack: ExitStack) -> BinaryIO:
    if spec.path == "-":
        return sys.stdin.buffer
    try:
        mode = os.stat(spec.path).st_mode
    except OSError as exc:
        raise InputError(f"{spec.path}: cannot read it: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{spec.path}: is a directory; give the capture files in it")
    try:
        return stack.enter_context(open(spec.path, "rb"))
    except OSError as exc:
        raise InputError(f"{spec.path}: cannot read it: {exc.strerror}") from None


def _file_size(file: BinaryIO) -> int | None:
    """The size of a regular file (standard input redirected from one too); None for a pipe or a terminal."""
    try:
        mode = os.fstat(file.fileno())
    except (OSError, io.UnsupportedOperation):  # no descriptor: a stream made in Python
        return None
    return mode.st_size if stat.S_ISREG(mode.st_mode) else None


def _read_head(stream: Readable) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < HEAD_LEN:
        part = stream.read(HEAD_LEN - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def map_file(file: BinaryIO, stack: ExitStack, mapped: mmap.mmap | None = None) -> memoryview:
    """The whole file, mapped read-only (an empty file maps to an empty view); `mapped`: its mapping made already,
    taken while the file is still that size."""
    file.flush()
    size = os.fstat(file.fileno()).st_size
    if size == 0:
        return memoryview(b"")
    if mapped is None or mapped.closed or len(mapped) != size:  # (the one given is guarded and closed by its maker)
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        stack.callback(guarded(mapped, file.fileno()))
    return memoryview(mapped)


def _spool(source: Readable, spool: BinaryIO, info: InputInfo) -> None:
    """Copy at most MAX_SPOOL bytes; past that, or when the disk fills, keep what was written and say why."""
    written = 0
    while written < MAX_SPOOL and (chunk := memoryview(source.read(min(CHUNK, MAX_SPOOL - written)))):
        while chunk:
            try:
                done = spool.write(chunk) or 0
            except OSError as exc:
                info.warn(f"byte {written}", f"cannot spool the decompressed capture to {tempfile.gettempdir()} "
                                             f"({exc.strerror}); kept the {written} bytes before it")
                return
            written += done
            chunk = chunk[done:]
    if written >= MAX_SPOOL and source.read(1):
        info.warn(f"byte {written}", f"a compressed or piped binary capture is read up to {MAX_SPOOL >> 20} MiB; "
                                     "kept those (decompress it to a file to read it all)")


class Releaser:
    """Hands the mapped pages already decoded back to the OS, so a file larger than memory streams."""

    def __init__(self, buf: memoryview) -> None:
        self.mapped = buf.obj if isinstance(buf.obj, mmap.mmap) else None
        self.done = 0

    def before(self, offset: int) -> None:
        upto = offset // PAGE * PAGE
        if self.mapped is not None and upto > self.done:
            self.mapped.madvise(mmap.MADV_DONTNEED, self.done, upto - self.done)
            self.done = upto


def text_tables(opened: Opened, info: InputInfo, batch_size: int, ports: TunnelPorts) -> Iterator[pl.DataFrame]:
    """The rows of a tcpdump text input, batch by batch (not yet tagged with the input's index and node)."""
    text = io.TextIOWrapper(io.BufferedReader(_Raw(opened.stream), CHUNK), encoding=opened.encoding, errors="replace")
    blank = True

    def lines() -> Iterator[str]:
        nonlocal blank
        for line in _lines(text, info):
            blank = blank and not line.strip()
            yield line

    for table in _text_reader().iter_tables(lines(), info, batch_size, ports=ports):  # the text reader counts info.packets itself
        if opened.counted is not None:
            info.bytes_read = opened.counted.count
            info.done = min(info.bytes_read / opened.size, 1.0) if opened.size else None
        yield table
    if blank and not info.warnings:
        info.warn("", "no capture in it: blank lines only")


def _lines(text: io.TextIOWrapper, info: InputInfo) -> Iterator[str]:
    """The lines of `text`, each held whole only up to MAX_LINE characters: a longer one (no tcpdump line
    comes near) is skipped with a warning, read in bounded pieces, and counted as an empty line."""
    number = 0
    while line := text.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE:
            length = len(line)
            while not line.endswith("\n") and (line := text.readline(CHUNK)):
                length += len(line)
            length -= line.endswith("\n")
            info.warn(f"line {number}", f"a line of {length} characters (more than {MAX_LINE >> 10} KiB): skipped")
            line = "\n"
        yield line


# --- byte streams ------------------------------------------------------------------


class _Counted:
    """A stream that counts the bytes read from it (progress through a compressed or piped input)."""

    def __init__(self, source: Readable) -> None:
        self.source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.count += len(data)
        return data


class _Raw(io.RawIOBase):
    """Any object with read(n) as a raw stream, for io.BufferedReader."""

    def __init__(self, source: Readable) -> None:
        self.source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.source.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Prefixed:
    """`head` (already read) followed by the rest of `rest`."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self.head = head
        self.rest = rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            part = self.head if size < 0 else self.head[:size]
            self.head = self.head[len(part):]
            return part
        return self.rest.read(size)


class _Decompressed:
    """Decompressed bytes of a stream; ends, with a warning, where the compressed data is damaged or cut.

    Fed in small chunks so that whatever decompressed before the damage is kept
    (gzip.GzipFile would drop the last chunk it was working on), and each step
    bounded (at most about OUT_STEP bytes out), so that a small input that
    expands to gigabytes never sits in memory at once. Past BOMB_FLOOR bytes, an
    input expanding more than BOMB_RATIO times is a decompression bomb: it ends
    there, with a warning. Concatenated members (gzip), frames (zstd) and
    streams follow each other.
    """

    def __init__(self, source: Readable, name: str, new: Callable[[], Decompressor], info: InputInfo) -> None:
        self.source = source
        self.name = name
        self.new = new
        self.info = info
        self.decompressor: Decompressor | None = None
        self.fed = 0  # compressed bytes read
        self.out = 0  # decompressed bytes produced
        self.pieces = self._pieces()
        self.pending = b""
        self.at = 0

    def read(self, size: int = -1) -> bytes:
        if self.at >= len(self.pending):
            self.pending, self.at = next(self.pieces, b""), 0
        stop = len(self.pending) if size < 0 else self.at + size
        part = self.pending[self.at:stop]
        self.at += len(part)
        return part

    def _pieces(self) -> Iterator[bytes]:
        feed = FEED_ZSTD if self.name == "zstd" else FEED
        while data := self.source.read(feed):
            self.fed += len(data)
            while data:
                if self.decompressor is None or self.decompressor.eof:
                    self.decompressor = self.new()
                try:
                    for piece in _steps(self.decompressor, data):
                        self.out += len(piece)
                        if piece:
                            yield piece
                        if self.out > BOMB_FLOOR and self.out > BOMB_RATIO * self.fed:
                            self._damaged(f"data expands more than {BOMB_RATIO} times (a decompression bomb? decompress it to a file "
                                          "to read it all)")
                            return
                except DECOMPRESS_ERRORS as exc:
                    self._damaged(f"data damaged ({exc})")
                    return
                data = self.decompressor.unused_data if self.decompressor.eof else b""
        if self.decompressor is not None and not self.decompressor.eof:
            self._damaged("data cut short")

    def _damaged(self, what: str) -> None:
        self.info.warn(f"byte {self.fed}", f"{self.name} {what}; kept the {self.out} bytes decompressed before it")


def _steps(decompressor: Decompressor, data: bytes) -> Iterator[bytes]:
    """Decompress `data` in pieces of at most OUT_STEP bytes (zstd: what FEED_ZSTD bytes can make, 8 MiB at most)."""
    if isinstance(decompressor, ZLIB_TYPE):
        while data and not decompressor.eof:
            yield decompressor.decompress(data, OUT_STEP)
            data = decompressor.unconsumed_tail
    elif isinstance(decompressor, (lzma.LZMADecompressor, bz2.BZ2Decompressor)):
        yield decompressor.decompress(data, OUT_STEP)
        while not decompressor.eof and not decompressor.needs_input:
            yield decompressor.decompress(b"", OUT_STEP)
    else:  # zstandard's decompressobj has no output bound; its input is fed in small chunks instead
        yield decompressor.decompress(data)
