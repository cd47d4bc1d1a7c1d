"""A pcapng block builder for what the project's writer never writes (big-endian, SPB, OPB, NRB ...).

`o` is the struct byte order ("<" or ">") of the section being built.
"""

from __future__ import annotations

import struct

from cniscope.wire import pcapng as pcapng_file


def option(o: str, code: int, value: bytes) -> bytes:
    return struct.pack(o + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def options(o: str, *items: tuple[int, bytes]) -> bytes:
    return b"".join(option(o, c, v) for c, v in items) + struct.pack(o + "HH", 0, 0) if items else b""


def block(o: str, kind: int, body: bytes) -> bytes:
    return struct.pack(o + "II", kind, 12 + len(body)) + body + struct.pack(o + "I", 12 + len(body))


def shb(o: str, *opts: tuple[int, bytes]) -> bytes:
    return block(o, pcapng_file.SHB, struct.pack(o + "IHHq", pcapng_file.BYTE_ORDER_MAGIC, 1, 0, -1) + options(o, *opts))


def idb(o: str, linktype: int, snaplen: int = 0, *opts: tuple[int, bytes]) -> bytes:
    return block(o, pcapng_file.IDB, struct.pack(o + "HHI", linktype, 0, snaplen) + options(o, *opts))


def epb(o: str, iface: int, ts: int, frame: bytes, *opts: tuple[int, bytes], wirelen: int | None = None) -> bytes:
    head = struct.pack(o + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame) if wirelen is None else wirelen)
    return block(o, pcapng_file.EPB, head + frame + b"\0" * (-len(frame) % 4) + options(o, *opts))


def spb(o: str, frame: bytes, wirelen: int) -> bytes:
    return block(o, pcapng_file.SPB, struct.pack(o + "I", wirelen) + frame + b"\0" * (-len(frame) % 4))
