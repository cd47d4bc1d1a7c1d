"""Sources: find the frames in what the user gave us.

Binary readers (pcap, pcapng) yield `FrameBatch`es (`cniscope.packets.frames`):
where each frame's bytes are and where/when it was seen. tcpdump's text has no
bytes to decode, so its reader yields table rows directly (with nulls where the
text is silent). `open.py` opens an input and tells its format by content.
Sources never decode: `cniscope.ingest` drives them, decodes, and tags rows with
their input and node. Damage never raises: what could be read is kept and a
`ReadWarning` on the input's `InputInfo` says where it broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cniscope.errors import ReadWarning
from cniscope.packets.kinds import Clock


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
