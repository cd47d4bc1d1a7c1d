"""The packet table's small vocabularies, without polars: directions, tunnels, clocks, link types.

`cniscope.packets.schema` holds the table's columns and re-exports these; the binary readers (`cniscope.sources`,
`cniscope.wire`) and the models import them from here, so that a capture can be opened and walked before polars is
imported (`cniscope.ahead`).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

# Columns no stage of `analyze` reads once the sightings are correlated, nor the JSON, terminal or HTML report (the
# annotated pcapng rebuilds text captures' packets from them): `keep_columns=False` leaves them out of the report's
# table. Those the fingerprint reads go after correlation, the others before it: 34 B a sighting of the reference
# capture. Here, without polars: the walk ahead of the command's imports decodes without them (`cniscope.ahead`).
UNREAD = ("frame", "line", "truncated", "outer_ttl", "outer_ip_id", "tos", "df", "wscale", "sack_ok", "quoted_proto",
          "info", "error")
IFINDEX_PREFIX = "ifindex "  # "ifindex 7": an interface the capture knows by its index only (LINUX_SLL2, no names)


class Direction(IntEnum):
    IN = 0
    BROADCAST = 1
    MULTICAST = 2
    OTHERHOST = 3
    OUT = 4

    @property
    def label(self) -> str:
        return DIRECTION_LABELS[self]

    @property
    def ingress(self) -> bool:
        return self is not Direction.OUT


DIRECTION_LABELS = {
    Direction.IN: "In",
    Direction.BROADCAST: "B",
    Direction.MULTICAST: "M",
    Direction.OTHERHOST: "P",
    Direction.OUT: "Out",
}


class Tunnel(IntEnum):
    NONE = 0
    VXLAN = 1
    GENEVE = 2
    IPIP = 3
    FLANNEL_UDP = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class Clock(StrEnum):
    """What an input's `ts` values count from."""

    EPOCH = "epoch"  # pcap, pcapng, tcpdump -tt / -tttt
    TIME_OF_DAY = "time-of-day"  # tcpdump's default HH:MM:SS.ffffff: date unknown
    RELATIVE = "relative"  # tcpdump -ttt / -ttttt: from the first packet
    NONE = "none"  # tcpdump -t: ts is null


class LinkType(IntEnum):
    """The link types the decoders read (pcap LINKTYPE_ values); any other is warned about once per interface."""

    NULL = 0  # BSD/macOS loopback (lo0): the address family in the capturing host's byte order
    ETHERNET = 1
    PPP = 9  # PPP protocol field, possibly after the FF 03 address and control bytes
    RAW_BSD = 12  # DLT_RAW as some BSDs write it in pcap files
    RAW_OPENBSD = 14
    PPP_HDLC = 50  # PPP in HDLC-like framing (serial lines, pppd)
    PPP_ETHER = 51  # PPPoE session frames (DSL)
    RAW = 101  # bare IPv4 or IPv6: tunl0, wg0, tun devices
    C_HDLC = 104  # Cisco HDLC: an ethertype after address and control
    LOOP = 108  # OpenBSD loopback: the address family in network byte order
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    NFLOG = 239  # Linux NFLOG (tcpdump -i nflog:N): the packet in a TLV
    PKTAP = 258  # macOS tcpdump -i pktap: a header naming the interface, then the frame of its own link type
    LINUX_SLL2 = 276


def unsupported_linktype(value: int) -> str | None:
    """Why frames of this link type stay undecoded (None: the decoders read it). Said once per interface."""
    if value in LinkType._value2member_map_:
        return None
    return (f"link type {value} is not one cniscope decodes (it reads "
            f"{', '.join(sorted(m.name.lower() for m in LinkType))}): its packets are kept, undecoded")
