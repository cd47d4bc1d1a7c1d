"""The per-packet decoder: the reference the C decoder (`_decode.c`) is checked against.

`decode_frame` decodes one frame's bytes into the decoded columns of the
packet table (see `DECODED`). It handles everything the table describes:
IPv6 extension headers, QinQ, ICMP errors with their quoted header, odd TCP
option layouts, and frames cut by the snap length, where it keeps every header
that was captured whole, sets `truncated` and says in `error` which header was
cut. It verifies the TCP/UDP checksum of the innermost packet when the whole
segment was captured (`l4_csum_bad`; see checksum.py).

It is slow (a few microseconds per packet): the C decoder, which follows it
statement for statement, decodes every frame where it was built; this one where
it was not. Tests run both over the same frames and require identical rows,
and compare this one with tshark.
"""

from __future__ import annotations

import socket

from cniscope.packets import headers as H
from cniscope.packets.checksum import pseudo_v4, pseudo_v6, segment_ok
from cniscope.packets.digest import DIGEST_BYTES, digest_py
from cniscope.packets.ports import TunnelPorts
from cniscope.packets.schema import NAMES, LinkType, Tunnel

Row = dict[str, object]
Addresses = tuple[bytes, bytes]  # source and destination of the IP header, for the checksum's pseudo-header

# The columns a decoder fills (the rest come from the batch: input, frame, node, iface, ts ...).
DECODED: tuple[str, ...] = ("direction",) + NAMES[NAMES.index("truncated") : NAMES.index("info")] + ("error",)
# The innermost packet's columns: an envelope's own values move to outer_* and these restart.
PACKET: tuple[str, ...] = NAMES[NAMES.index("ip_version") : NAMES.index("payload_digest") + 1]



def _raw(value: int | bytes) -> bytes:
    """A field a header declares as bytes (`Ns`), typed as such."""
    if not isinstance(value, bytes):
        raise TypeError(f"a bytes field, not {type(value).__name__}")
    return value

class _Stop(Exception):
    """Decoding of this frame ends here; `reason` goes to the error column."""

    def __init__(self, reason: str, truncated: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated


def decode_frame(frame: bytes | memoryview, linktype: int, ports: TunnelPorts) -> Row:
    """Decode one frame (its captured bytes). Missing keys mean null."""
    decoder = _Decoder(frame, ports)
    try:
        decoder.link(linktype)
    except _Stop as stop:
        decoder.out["error"] = stop.reason
        decoder.out["truncated"] = stop.truncated
    return decoder.out


class _Decoder:
    def __init__(self, frame: bytes | memoryview, ports: TunnelPorts) -> None:
        self.buf = frame
        self.cap = len(frame)
        self.ports = ports
        self.out: Row = {"truncated": False, "tunnel": int(Tunnel.NONE)}

    # -- helpers -------------------------------------------------------------
    def need(self, header: H.Header, pos: int) -> dict[str, int | bytes]:
        self.need_bytes(pos, header.size, header.name)
        return header.unpack(self.buf, pos)

    def need_bytes(self, pos: int, size: int, what: str) -> None:
        if pos + size > self.cap:
            have = max(0, self.cap - pos)
            raise _Stop(f"truncated: {what} needs {size} bytes at offset {pos}, {have} captured", truncated=True)

    # -- link layer ----------------------------------------------------------
    def link(self, linktype: int, at: int = 0) -> None:
        """The link header at `at` (PKTAP nests another); a link type not in `LinkType` is left undecoded
        (the reader warned once for its interface)."""
        out = self.out
        if linktype == LinkType.ETHERNET:
            eth = self.need(H.ETHERNET, at)
            out["eth_dst"], out["eth_src"] = eth["dst"], eth["src"]
            ethertype, pos = self.skip_vlans(int(eth["type"]), at + 14, outer=True)
        elif linktype == LinkType.LINUX_SLL:
            sll = self.need(H.SLL, at)
            self.sll_common(sll)
            ethertype, pos = self.skip_vlans(int(sll["proto"]), at + 16, outer=True)
        elif linktype == LinkType.LINUX_SLL2:
            sll2 = self.need(H.SLL2, at)
            self.sll_common(sll2)
            ethertype, pos = self.skip_vlans(int(sll2["proto"]), at + 20, outer=True)
        elif linktype in (LinkType.RAW, LinkType.RAW_BSD, LinkType.RAW_OPENBSD):
            ethertype, pos = self.ip_ethertype(at), at
        elif linktype == LinkType.IPV4:
            ethertype, pos = H.ETH_IPV4, at
        elif linktype == LinkType.IPV6:
            ethertype, pos = H.ETH_IPV6, at
        elif linktype in (LinkType.NULL, LinkType.LOOP):
            family = int(self.need(H.LOOPBACK, at)["family"])
            if linktype == LinkType.NULL and family > 0xFFFF:  # written by a big-endian host: byte-swap
                family = int.from_bytes(family.to_bytes(4, "big"), "little")
            ethertype, pos = H.AF_ETHERTYPE.get(family, 0), at + 4
        elif linktype in (LinkType.PPP, LinkType.PPP_HDLC):
            self.need_bytes(at, 2, "PPP header")
            pos = at + 2 if self.buf[at] == 0xFF and self.buf[at + 1] == 0x03 else at
            ethertype, pos = self.ppp(pos)
        elif linktype == LinkType.PPP_ETHER:
            self.need_bytes(at, 6, "PPPoE header")
            ethertype, pos = self.ppp(at + 6)
        elif linktype == LinkType.C_HDLC:
            ethertype, pos = int(self.need(H.C_HDLC, at)["type"]), at + 4
        elif linktype == LinkType.NFLOG:
            ethertype, pos = self.nflog(at)
        elif linktype == LinkType.PKTAP:
            pktap = self.need(H.PKTAP, at)
            if int(pktap["length"]) < H.PKTAP.size:
                raise _Stop(f"PKTAP header length {int(pktap['length'])} at offset {at}", truncated=False)
            self.link(int(pktap["dlt"]), at + int(pktap["length"]))
            return
        else:
            return
        self.l3(ethertype, pos, depth=0)

    def ppp(self, pos: int) -> tuple[int, int]:
        """The PPP protocol field (1 or 2 bytes) -> ethertype (0: not IP), position after it."""
        self.need_bytes(pos, 1, "PPP protocol")
        if self.buf[pos] & 1:  # protocol field compression: one byte
            return H.PPP_ETHERTYPE.get(self.buf[pos], 0), pos + 1
        self.need_bytes(pos, 2, "PPP protocol")
        return H.PPP_ETHERTYPE.get(int.from_bytes(self.buf[pos : pos + 2], "big"), 0), pos + 2

    def nflog(self, at: int) -> tuple[int, int]:
        """NFLOG: family, version, resource id, then TLVs (length and type in host order, 4-byte aligned);
        the packet is the payload TLV (type 9), bare IP."""
        self.need_bytes(at, 4, "NFLOG header")
        family, pos = self.buf[at], at + 4
        while pos + 4 <= self.cap:
            length = int.from_bytes(self.buf[pos : pos + 2], "little")
            kind = int.from_bytes(self.buf[pos + 2 : pos + 4], "little") & 0x7FFF
            if length < 4:
                break
            if kind == 9:
                return H.AF_ETHERTYPE.get(family, 0), pos + 4
            pos += (length + 3) & ~3
        raise _Stop(f"NFLOG without a packet (payload TLV) at offset {at}", truncated=pos + 4 > self.cap)

    def sll_common(self, sll: dict[str, int | bytes]) -> None:
        if int(sll["pkttype"]) <= 4:
            self.out["direction"] = sll["pkttype"]
        if sll["halen"] == 6:
            self.out["eth_src"] = sll["addr"]

    def skip_vlans(self, ethertype: int, pos: int, outer: bool) -> tuple[int, int]:
        first = True
        while ethertype in (H.ETH_VLAN, H.ETH_QINQ):
            tag = self.need(H.VLAN, pos)
            if outer and first:
                self.out["vlan"] = int(tag["tci"]) & 0x0FFF
            first = False
            ethertype, pos = int(tag["type"]), pos + 4
        return ethertype, pos

    def ip_ethertype(self, pos: int) -> int:
        self.need_bytes(pos, 1, "IP version")
        version = self.buf[pos] >> 4
        if version == 4:
            return H.ETH_IPV4
        if version == 6:
            return H.ETH_IPV6
        raise _Stop(f"not an IP packet (version {version}) at offset {pos}", truncated=False)

    # -- network layer -------------------------------------------------------
    def l3(self, ethertype: int, pos: int, depth: int) -> None:
        self.out["ethertype"] = ethertype
        if ethertype == H.ETH_IPV4:
            self.ipv4(pos, depth)
        elif ethertype == H.ETH_IPV6:
            self.ipv6(pos, depth)
        elif ethertype == H.ETH_ARP:
            self.arp(pos)

    def ipv4(self, pos: int, depth: int) -> None:
        ip = self.need(H.IPV4, pos)
        vihl = int(ip["vihl"])
        if vihl >> 4 != 4:
            raise _Stop(f"IPv4 header with version {vihl >> 4} at offset {pos}", truncated=False)
        ihl = (vihl & 15) * 4
        total = int(ip["len"])
        frag = int(ip["frag"])
        out = self.out
        out.update(
            ip_version=4, src=ip["src"], dst=ip["dst"], ip_id=ip["id"], ttl=ip["ttl"], tos=ip["tos"],
            ip_len=total, df=bool(frag & 0x4000), mf=bool(frag & 0x2000), frag_offset=(frag & 0x1FFF) * 8,
            proto=ip["proto"],
        )
        if ihl < 20:
            raise _Stop(f"IPv4 header length {ihl} < 20 at offset {pos}", truncated=False)
        if total < ihl:
            raise _Stop(f"IPv4 total length {total} < header length {ihl} at offset {pos}", truncated=False)
        self.need_bytes(pos, ihl, "IPv4 options")
        if frag & 0x1FFF:
            return
        whole = None if frag & 0x2000 else (bytes(self.buf[pos + 12 : pos + 16]), bytes(self.buf[pos + 16 : pos + 20]))
        self.l4(int(ip["proto"]), pos + ihl, total - ihl, depth, v4=True, addresses=whole)

    def ipv6(self, pos: int, depth: int) -> None:
        ip = self.need(H.IPV6, pos)
        vtcfl = int(ip["vtcfl"])
        if vtcfl >> 28 != 6:
            raise _Stop(f"IPv6 header with version {vtcfl >> 28} at offset {pos}", truncated=False)
        plen = int(ip["plen"])
        out = self.out
        out.update(
            ip_version=6, src6=socket.inet_ntop(socket.AF_INET6, _raw(ip["src"])), dst6=socket.inet_ntop(socket.AF_INET6, _raw(ip["dst"])),
            ttl=ip["hlim"], tos=(vtcfl >> 20) & 0xFF, ip_len=(plen + 40) & 0xFFFF, mf=False, frag_offset=0,  # ip_len: 16 bits, as its column
        )
        nh, p, remaining, fragmented = int(ip["nh"]), pos + 40, plen, False
        checkable = True  # not the first of several fragments, no routing header (its last address is the pseudo-header's)
        while nh in H.IPV6_EXTENSIONS:
            checkable &= nh != 43
            if nh == 44:
                frag = self.need(H.IPV6_FRAG, p)
                offflags = int(frag["offflags"])
                out.update(ip_id=frag["id"], frag_offset=offflags & 0xFFF8, mf=bool(offflags & 1))
                fragmented = bool(offflags & 0xFFF8)
                checkable &= not offflags & 1
                nh, size = int(frag["nh"]), 8
            else:
                ext = self.need(H.IPV6_EXT, p)
                size = (int(ext["len"]) + 2) * 4 if nh == 51 else (int(ext["len"]) + 1) * 8
                nh = int(ext["nh"])
            p, remaining = p + size, remaining - size
            if remaining < 0:
                out["proto"] = nh
                raise _Stop(f"IPv6 extension headers run past the payload length {plen} at offset {pos}", truncated=False)
        out["proto"] = nh
        if fragmented:
            return
        self.l4(nh, p, remaining, depth, v4=False, addresses=(bytes(ip["src"]), bytes(ip["dst"])) if checkable else None)

    def arp(self, pos: int) -> None:
        arp = self.need(H.ARP, pos)
        self.out["arp_op"] = arp["op"]
        if arp["hlen"] == 6 and arp["plen"] == 4:
            self.out.update(arp_sha=arp["sha"], arp_spa=arp["spa"], arp_tpa=arp["tpa"])

    # -- transport layer -----------------------------------------------------
    def l4(self, proto: int, pos: int, length: int, depth: int, v4: bool, addresses: Addresses | None) -> None:
        """`length`: the L4 bytes as the IP header says (captured or not); `addresses`: None for a fragment.
        Envelopes (UDP tunnels, IP in IP) are recognised at the outermost IP header only, IPv4 or IPv6."""
        if proto == H.PROTO_TCP:
            self.tcp(pos, length, addresses)
        elif proto == H.PROTO_UDP:
            self.udp(pos, length, envelope=depth == 0, addresses=addresses)
        elif proto == H.PROTO_ICMP and v4:
            self.icmp(pos, length, v6=False, addresses=addresses)
        elif proto == H.PROTO_ICMPV6 and not v4:
            self.icmp(pos, length, v6=True, addresses=addresses)
        elif proto in H.IP_IN_IP and depth == 0:
            self.envelope(Tunnel.IPIP)
            self.l3(H.IP_IN_IP[proto], pos, depth=1)

    def payload(self, pos: int, length: int) -> None:
        if length < 0:
            raise _Stop(f"transport header longer than the IP payload ({length} bytes left) at offset {pos}", truncated=False)
        self.out["payload_len"] = length
        take = min(length, DIGEST_BYTES)
        if length and pos + take <= self.cap:
            self.out["payload_digest"] = digest_py(bytes(self.buf[pos : pos + take]), length)

    def checksum(self, proto: int, pos: int, length: int, addresses: Addresses | None, column: str = "l4_csum_bad") -> None:
        """`l4_csum_bad` (or an envelope's `outer_l4_csum_bad`) when the whole segment was captured (and is not a fragment)."""
        if addresses is None or pos + length > self.cap:
            return
        src, dst = addresses
        # ICMP over IPv4 sums its own bytes only (ICMPv6 has the pseudo-header)
        pseudo = b"" if proto == H.PROTO_ICMP else (pseudo_v4 if len(src) == 4 else pseudo_v6)(src, dst, proto, length)
        self.out[column] = not segment_ok(pseudo, bytes(self.buf[pos : pos + length]))

    def tcp(self, pos: int, length: int, addresses: Addresses | None) -> None:
        tcp = self.need(H.TCP, pos)
        flags = int(tcp["flags"])
        doff = (int(tcp["doff"]) >> 4) * 4
        self.out.update(
            sport=tcp["sport"], dport=tcp["dport"], tcp_flags=flags, seq=tcp["seq"],
            ack=tcp["ack"] if flags & 16 else None, win=tcp["win"], sack_ok=False,
        )
        if length >= H.TCP.size:
            self.checksum(H.PROTO_TCP, pos, length, addresses)
        if doff < 20:
            raise _Stop(f"TCP data offset {doff} < 20 at offset {pos}", truncated=False)
        self.payload(pos + doff, length - doff)
        self.tcp_options(pos + 20, pos + doff)

    def tcp_options(self, pos: int, end: int) -> None:
        out, buf = self.out, self.buf
        while pos < end:
            self.need_bytes(pos, 1, "TCP option")
            kind = buf[pos]
            if kind == 0:
                return
            if kind == 1:
                pos += 1
                continue
            self.need_bytes(pos, 2, "TCP option")
            size = buf[pos + 1]
            if size < 2 or pos + size > end:
                raise _Stop(f"bad TCP option {kind} length {size} at offset {pos}", truncated=False)
            self.need_bytes(pos, size, f"TCP option {kind}")
            if kind == 2 and size == 4:
                out["mss"] = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif kind == 3 and size == 3:
                out["wscale"] = buf[pos + 2]
            elif kind == 4 and size == 2:
                out["sack_ok"] = True
            elif kind == 8 and size == 10:
                out["tsval"] = int.from_bytes(buf[pos + 2 : pos + 6], "big")
                out["tsecr"] = int.from_bytes(buf[pos + 6 : pos + 10], "big")
            pos += size

    def udp(self, pos: int, length: int, envelope: bool, addresses: Addresses | None) -> None:
        udp = self.need(H.UDP, pos)
        sport, dport = int(udp["sport"]), int(udp["dport"])
        self.out.update(sport=sport, dport=dport)
        kind = self.ports.kind(dport) or self.ports.kind(sport)
        tunnel = kind is not Tunnel.NONE and envelope
        # a UDP length that disagrees with the IP header leaves the segment's extent in doubt; 0 over IPv4: no checksum
        none = udp["csum"] == 0 and addresses is not None and len(addresses[0]) == 4
        if length >= H.UDP.size and udp["len"] == length and not none:
            self.checksum(H.PROTO_UDP, pos, length, addresses, "outer_l4_csum_bad" if tunnel else "l4_csum_bad")
        if tunnel:
            self.envelope(kind)
            self.out.update(outer_sport=sport, outer_dport=dport)
            self.udp_tunnel(kind, pos + 8)
            return
        self.payload(pos + 8, length - 8)
        if 53 in (sport, dport) and length - 8 >= 4 and pos + 12 <= self.cap:
            dns = H.DNS.unpack(self.buf, pos + 8)
            self.out.update(dns_id=dns["id"], dns_qr=bool(int(dns["flags"]) & 0x8000))

    def icmp(self, pos: int, length: int, v6: bool, addresses: Addresses | None) -> None:
        icmp = self.need(H.ICMP, pos)
        kind, code = int(icmp["type"]), int(icmp["code"])
        out = self.out
        out.update(icmp_type=kind, icmp_code=code)
        if length >= H.ICMP.size:
            self.checksum(H.PROTO_ICMPV6 if v6 else H.PROTO_ICMP, pos, length, addresses)
        self.payload(pos + 8, length - 8)
        echo = (128, 129) if v6 else (0, 8)
        if kind in echo:
            out.update(icmp_id=icmp["id"], icmp_seq=icmp["seq"])
        if v6 and kind == 2:
            out["icmp_mtu"] = min(int(icmp["mtu6"]), 0xFFFF)
        elif not v6 and kind == 3 and code == 4:
            out["icmp_mtu"] = icmp["mtu4"]
        if kind in (H.ICMP6_ERRORS if v6 else H.ICMP4_ERRORS):
            self.quoted(pos + 8, v6)

    def quoted(self, pos: int, v6: bool) -> None:
        out = self.out
        if v6:
            ip = self.need(H.IPV6, pos)
            proto, l4 = int(ip["nh"]), pos + 40
        else:
            ip = self.need(H.IPV4, pos)
            out.update(quoted_src=ip["src"], quoted_dst=ip["dst"])
            proto, l4 = int(ip["proto"]), pos + (int(ip["vihl"]) & 15) * 4
        out["quoted_proto"] = proto
        if proto in (H.PROTO_TCP, H.PROTO_UDP):
            ports = self.need(H.PORTS, l4)
            out.update(quoted_sport=ports["sport"], quoted_dport=ports["dport"])

    # -- tunnels ---------------------------------------------------------------
    def envelope(self, kind: Tunnel) -> None:
        """The packet decoded so far is an envelope: keep its addresses in outer_*, restart the packet."""
        out = self.out
        out.update(
            tunnel=int(kind), outer_src=out.get("src"), outer_dst=out.get("dst"), outer_src6=out.get("src6"),
            outer_dst6=out.get("dst6"), outer_ttl=out.get("ttl"), outer_ip_id=out.get("ip_id"), outer_len=out.get("ip_len"),
        )
        for name in PACKET:
            out.pop(name, None)

    def udp_tunnel(self, kind: Tunnel, pos: int) -> None:
        if kind is Tunnel.VXLAN:
            vxlan = self.need(H.VXLAN, pos)
            self.out["vni"] = int(vxlan["vni_res"]) >> 8
            self.inner_ethernet(pos + 8)
        elif kind is Tunnel.GENEVE:
            geneve = self.need(H.GENEVE, pos)
            self.out["vni"] = int(geneve["vni_res"]) >> 8
            inner = pos + 8 + (int(geneve["verlen"]) & 0x3F) * 4
            if geneve["proto"] == H.ETH_TEB:
                self.inner_ethernet(inner)
            else:
                self.l3(int(geneve["proto"]), inner, depth=1)
        else:
            self.l3(self.ip_ethertype(pos), pos, depth=1)

    def inner_ethernet(self, pos: int) -> None:
        eth = self.need(H.ETHERNET, pos)
        self.out.update(inner_eth_dst=eth["dst"], inner_eth_src=eth["src"])
        ethertype, l3 = self.skip_vlans(int(eth["type"]), pos + 14, outer=False)
        self.l3(ethertype, l3, depth=1)
