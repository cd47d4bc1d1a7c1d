"""Header layouts, declared once as data and read two ways.

Each `Header` is a table of fields (name, byte offset, format). The per-packet
fallback reads it with `struct` (`Header.unpack`); vectorized readers read a
field for many rows at once as a strided, big-endian view into gathered byte
windows (`Header.column`: the SLL2 headers `wire.convert` rewrites). The C
decoder (`_decode.c`) spells the same offsets out, and tests hold it to the
fallback row for row.
The same declaration writes headers too (`Header.pack`): frames rebuilt from
tcpdump's text (`--pcapng`) and the tests' frames.

Formats: "u1", ">u2", ">u4" (unsigned, network order), "<u4" (little-endian), "mac" (48 bits as an
int), "b16" (16 raw bytes: IPv6 addresses; Python path only gives bytes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

_STRUCT = {"u1": "B", ">u2": ">H", ">u4": ">I", "<u4": "<I"}
_WIDTH = {"u1": 1, ">u2": 2, ">u4": 4, "<u4": 4, "mac": 6, "b16": 16}
_NATIVE = {"u1": np.uint8, ">u2": np.uint16, ">u4": np.uint32, "<u4": np.uint32, "mac": np.uint64}


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    fmt: str


@dataclass(frozen=True)
class Header:
    name: str
    size: int
    fields: tuple[Field, ...]
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)
    # fields that share no byte, in offset order: one struct reads them all (macs as 6 bytes, made ints after)
    _whole: tuple[struct.Struct, tuple[str, ...], tuple[str, ...]] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})
        for f in self.fields:
            if f.offset + _WIDTH[f.fmt] > self.size:
                raise ValueError(f"{self.name}.{f.name} runs past the {self.size}-byte header")
        object.__setattr__(self, "_whole", _one_struct(self.fields))

    def unpack(self, buf: bytes | memoryview, at: int) -> dict[str, int | bytes]:
        """Python path: every field of the header starting at `at` (caller checked the length)."""
        if self._whole is not None:
            whole, names, macs = self._whole
            found: dict[str, int | bytes] = dict(zip(names, whole.unpack_from(buf, at)))
            for name in macs:
                raw = found[name]
                assert isinstance(raw, bytes)
                found[name] = int.from_bytes(raw, "big")
            return found
        out: dict[str, int | bytes] = {}
        for f in self.fields:
            pos = at + f.offset
            if f.fmt == "mac":
                out[f.name] = int.from_bytes(buf[pos : pos + 6], "big")
            elif f.fmt == "b16":
                out[f.name] = bytes(buf[pos : pos + 16])
            else:
                out[f.name] = struct.unpack_from(_STRUCT[f.fmt], buf, pos)[0]
        return out

    def pack(self, **values: int | bytes) -> bytes:
        """The header's bytes with the fields named set (a "mac" as an int or 6 bytes, a "b16" as 16 bytes) and
        every other byte 0. Fields that share bytes (ICMP's id/seq and MTU) are written in the order given."""
        out = bytearray(self.size)
        for name, value in values.items():
            f = self._by_name.get(name)
            if f is None:
                raise ValueError(f"{self.name} has no field {name!r}")
            if isinstance(value, int):
                raw = value.to_bytes(6, "big") if f.fmt == "mac" else struct.pack(_STRUCT[f.fmt], value)
            else:
                raw = bytes(value)
            if len(raw) != _WIDTH[f.fmt]:
                raise ValueError(f"{self.name}.{name} takes {_WIDTH[f.fmt]} bytes, not {len(raw)}")
            out[f.offset : f.offset + len(raw)] = raw
        return bytes(out)

    def column(self, windows: np.ndarray, name: str, at: int | np.ndarray = 0, rows: np.ndarray | None = None) -> np.ndarray:
        """Vector path: field `name` of the header starting `at` bytes into each window.

        `windows` is a contiguous 1-D array of `V<k>` byte windows. With a scalar
        `at` the field is read through one strided view; `rows` (an index into
        `windows`) then picks the rows without copying whole windows. With an
        array `at` (a per-row header position, aligned with `rows`) the bytes
        are gathered per row.
        """
        f = self._by_name[name]
        if f.fmt == "mac":
            hi = self._read(windows, ">u2", at, f.offset, rows).astype(np.uint64)
            lo = self._read(windows, ">u4", at, f.offset + 2, rows).astype(np.uint64)
            return (hi << np.uint64(32)) | lo
        return self._read(windows, f.fmt, at, f.offset, rows).astype(_NATIVE[f.fmt])

    @staticmethod
    def _read(windows: np.ndarray, fmt: str, at: int | np.ndarray, offset: int, rows: np.ndarray | None) -> np.ndarray:
        k = windows.dtype.itemsize
        n = windows.shape[0]
        if isinstance(at, np.ndarray):
            raw = windows.view(np.uint8).reshape(n, k)
            pick = np.arange(n) if rows is None else rows
            value = raw[pick, at + offset].astype(np.uint32)
            for i in range(1, _WIDTH[fmt]):
                value = (value << np.uint32(8)) | raw[pick, at + offset + i]
            found: np.ndarray = value
            return found
        if at + offset + _WIDTH[fmt] > k:
            raise ValueError(f"field at {at + offset} runs past the {k}-byte window")
        view = np.ndarray(shape=(n,), dtype=fmt, buffer=windows, offset=at + offset, strides=(k,))
        return view if rows is None else view[rows]


def _one_struct(fields: tuple[Field, ...]) -> tuple[struct.Struct, tuple[str, ...], tuple[str, ...]] | None:
    """A struct reading every field at once (in declaration order), when no two fields share a byte and they are
    declared in offset order with one byte order; else None."""
    codes, pos, order = [], 0, None
    for f in fields:
        if f.offset < pos:
            return None
        if f.fmt in ("mac", "b16"):
            code = f"{_WIDTH[f.fmt]}s"
        else:
            fmt = _STRUCT[f.fmt]
            if fmt[0] in "<>":
                if order not in (None, fmt[0]):
                    return None
                order, fmt = fmt[0], fmt[1:]
            code = fmt
        codes.append(f"{f.offset - pos}x{code}" if f.offset > pos else code)
        pos = f.offset + _WIDTH[f.fmt]
    return (struct.Struct((order or ">") + "".join(codes)), tuple(f.name for f in fields),
            tuple(f.name for f in fields if f.fmt == "mac"))


def _h(name: str, size: int, *fields: tuple[str, int, str]) -> Header:
    return Header(name, size, tuple(Field(*f) for f in fields))


ETHERNET = _h("ethernet", 14, ("dst", 0, "mac"), ("src", 6, "mac"), ("type", 12, ">u2"))
VLAN = _h("vlan", 4, ("tci", 0, ">u2"), ("type", 2, ">u2"))
SLL = _h("sll", 16, ("pkttype", 0, ">u2"), ("hatype", 2, ">u2"), ("halen", 4, ">u2"), ("addr", 6, "mac"), ("proto", 14, ">u2"))
SLL2 = _h(
    "sll2", 20,
    ("proto", 0, ">u2"), ("ifindex", 4, ">u4"), ("hatype", 8, ">u2"),
    ("pkttype", 10, "u1"), ("halen", 11, "u1"), ("addr", 12, "mac"),
)
IPV4 = _h(
    "ipv4", 20,
    ("vihl", 0, "u1"), ("tos", 1, "u1"), ("len", 2, ">u2"), ("id", 4, ">u2"), ("frag", 6, ">u2"),
    ("ttl", 8, "u1"), ("proto", 9, "u1"), ("csum", 10, ">u2"), ("src", 12, ">u4"), ("dst", 16, ">u4"),
)
IPV6 = _h(
    "ipv6", 40,
    ("vtcfl", 0, ">u4"), ("plen", 4, ">u2"), ("nh", 6, "u1"), ("hlim", 7, "u1"), ("src", 8, "b16"), ("dst", 24, "b16"),
)
IPV6_EXT = _h("ipv6-ext", 2, ("nh", 0, "u1"), ("len", 1, "u1"))
IPV6_FRAG = _h("ipv6-frag", 8, ("nh", 0, "u1"), ("offflags", 2, ">u2"), ("id", 4, ">u4"))
ARP = _h(
    "arp", 28,
    ("htype", 0, ">u2"), ("ptype", 2, ">u2"), ("hlen", 4, "u1"), ("plen", 5, "u1"), ("op", 6, ">u2"),
    ("sha", 8, "mac"), ("spa", 14, ">u4"), ("tha", 18, "mac"), ("tpa", 24, ">u4"),
)
TCP = _h(
    "tcp", 20,
    ("sport", 0, ">u2"), ("dport", 2, ">u2"), ("seq", 4, ">u4"), ("ack", 8, ">u4"),
    ("doff", 12, "u1"), ("flags", 13, "u1"), ("win", 14, ">u2"), ("csum", 16, ">u2"),
)
PORTS = _h("ports", 4, ("sport", 0, ">u2"), ("dport", 2, ">u2"))  # the start of a TCP/UDP header quoted by ICMP
UDP = _h("udp", 8, ("sport", 0, ">u2"), ("dport", 2, ">u2"), ("len", 4, ">u2"), ("csum", 6, ">u2"))
ICMP = _h("icmp", 8, ("type", 0, "u1"), ("code", 1, "u1"), ("csum", 2, ">u2"), ("id", 4, ">u2"), ("seq", 6, ">u2"),
          ("mtu4", 6, ">u2"), ("mtu6", 4, ">u4"))
VXLAN = _h("vxlan", 8, ("flags", 0, "u1"), ("vni_res", 4, ">u4"))
GENEVE = _h("geneve", 8, ("verlen", 0, "u1"), ("flags", 1, "u1"), ("proto", 2, ">u2"), ("vni_res", 4, ">u4"))
DNS = _h("dns", 4, ("id", 0, ">u2"), ("flags", 2, ">u2"))
LOOPBACK = _h("loopback", 4, ("family", 0, ">u4"))  # DLT_LOOP: network order; DLT_NULL: the host's (swapped if so)
C_HDLC = _h("c-hdlc", 4, ("address", 0, "u1"), ("control", 1, "u1"), ("type", 2, ">u2"))
PKTAP = _h("pktap", 8, ("length", 0, "<u4"), ("dlt", 4, "<u4"))  # macOS: little-endian header length, inner DLT

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
ETH_QINQ = 0x88A8
ETH_TEB = 0x6558  # transparent Ethernet bridging: Geneve's "inner Ethernet" protocol type

PROTO_ICMP = 1
PROTO_IPIP = 4
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
PROTO_IPV6 = 41

# Loopback address families (DLT_NULL, DLT_LOOP, NFLOG): AF_INET everywhere; AF_INET6 on Linux 10, the BSDs 24,
# FreeBSD 28, macOS 30
AF_ETHERTYPE = {2: ETH_IPV4, 10: ETH_IPV6, 24: ETH_IPV6, 28: ETH_IPV6, 30: ETH_IPV6}
# PPP protocol -> ethertype (IPv4, IPv6)
PPP_ETHERTYPE = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}

# IP protocol of an IP-in-IP envelope -> ethertype of what it carries (IPv4 in IPv4/IPv6, IPv6 in IPv4/IPv6: sit, ip6tnl)
IP_IN_IP = {PROTO_IPIP: ETH_IPV4, PROTO_IPV6: ETH_IPV6}

# IPv6 extension headers we walk: hop-by-hop, routing, fragment, destination options, AH.
IPV6_EXTENSIONS = frozenset({0, 43, 44, 60, 51})
# ICMP types that quote the offending packet.
ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})
ICMP6_ERRORS = frozenset({1, 2, 3, 4})
