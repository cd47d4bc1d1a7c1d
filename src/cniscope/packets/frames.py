"""The decoder's input: frames a binary reader found, not yet decoded (`cniscope.packets.decode.decode_batch`).

The readers (`cniscope.sources.pcap`, `pcapng`) fill it from a mapped file; tests and benchmarks build it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_TS = np.iinfo(np.int64).min  # `ts` of a frame that carries no time (pcapng's simple packet block)


@dataclass
class FrameBatch:
    """Frames found by a binary reader, not yet decoded. All arrays have one entry per frame. The decoder may keep
    `ts`, `linktype`, `caplen` and `wirelen` (or the array one views whole) as its columns: a reader makes them anew."""

    data: np.ndarray  # uint8: the buffer the offsets point into (usually the mapped file)
    offset: np.ndarray  # int64: start of each frame's captured bytes in `data`
    caplen: np.ndarray  # uint32: bytes captured
    wirelen: np.ndarray  # uint32: bytes on the wire
    ts: np.ndarray  # int64: ns since the epoch; NO_TS when the frame carries none
    linktype: np.ndarray  # uint16
    iface: np.ndarray  # int32: index into iface_names, -1 when unnamed
    iface_names: list[str | None]
    node: np.ndarray  # int32: index into node_names, -1 when the file does not say
    node_names: list[str | None]
    direction: np.ndarray  # int16: Direction value, -1 unknown (pcapng epb_flags; SLL/SLL2 decode fills it)
    first_frame: int  # index in the input of the first frame in this batch
