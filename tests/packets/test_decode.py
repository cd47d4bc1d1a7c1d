"""decode_batch: what each header family puts in the table, tunnels, truncation, and C decoder == fallback."""

from __future__ import annotations

import mmap
import struct
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cniscope.models import TUNNEL_PORTS
from cniscope.packets import arrow, chunks
from cniscope.packets import decode as decode_module
from cniscope.packets.chunks import NOT_BUILT
from cniscope.packets.columns import NUMPY_TYPE
from cniscope.packets.decode import decode_batch, decode_batch_reference
from cniscope.packets.fallback import DECODED, PACKET
from cniscope.packets.schema import SCHEMA, Direction, LinkType, Tunnel, ip4_value, mac_value
from tests.frames import (
    arp,
    data_options,
    dns,
    ethernet,
    frame_batch,
    geneve,
    icmp,
    icmpv6,
    ipv4,
    ipv6,
    ipv6_ext,
    ipv6_fragment,
    sll,
    sll2,
    syn_options,
    tcp,
    udp,
    vxlan,
)
from tests.packets.decoding import decode
from tests.packets.synth import LINKTYPES, synth_frames

SEGMENT = tcp(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", sport=40000, dport=80, seq=1000, ack=2000, flags="P.", win=502,
              options=data_options(tsval=111, tsecr=222))
PACKET_V4 = ipv4(SEGMENT, src="10.244.1.2", dst="10.244.2.3", ttl=63, ip_id=4321, tos=0x10)


def one(frame: bytes, linktype: int = LinkType.ETHERNET) -> dict[str, object]:
    return decode([frame, frame], linktype).row(0, named=True)


def assert_packet(row: dict[str, object]) -> None:
    assert row["ip_version"] == 4 and row["proto"] == 6
    assert row["src"] == ip4_value("10.244.1.2") and row["dst"] == ip4_value("10.244.2.3")
    assert (row["ttl"], row["ip_id"], row["tos"], row["df"], row["mf"]) == (63, 4321, 0x10, True, False)
    assert (row["sport"], row["dport"], row["seq"], row["ack"], row["win"]) == (40000, 80, 1000, 2000, 502)
    assert row["tcp_flags"] == 0x18 and (row["tsval"], row["tsecr"]) == (111, 222)
    assert row["payload_len"] == 27 and row["payload_digest"] is not None
    assert row["error"] is None and row["truncated"] is False


def test_the_table_has_the_schema_columns_in_order() -> None:
    table = decode([ethernet(PACKET_V4)] * 3)
    assert table.schema == pl.Schema(SCHEMA)
    assert decode_batch(frame_batch([]), 2, TUNNEL_PORTS).schema == pl.Schema(SCHEMA)


@pytest.mark.parametrize(
    "linktype, frame",
    [
        (LinkType.ETHERNET, ethernet(PACKET_V4, src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")),
        (LinkType.LINUX_SLL, sll(PACKET_V4, pkttype=4, addr="02:00:00:00:00:0a")),
        (LinkType.LINUX_SLL2, sll2(PACKET_V4, pkttype=4, addr="02:00:00:00:00:0a")),
        (LinkType.RAW, PACKET_V4),
        (LinkType.IPV4, PACKET_V4),
        (LinkType.RAW_BSD, PACKET_V4),
        (LinkType.NULL, struct.pack("<I", 2) + PACKET_V4),  # macOS lo0, little-endian host
        (LinkType.NULL, struct.pack(">I", 2) + PACKET_V4),  # a big-endian host
        (LinkType.LOOP, struct.pack(">I", 2) + PACKET_V4),
        (LinkType.PPP, b"\xff\x03\x00\x21" + PACKET_V4),
        (LinkType.PPP, b"\x00\x21" + PACKET_V4),
        (LinkType.PPP_HDLC, b"\xff\x03\x00\x21" + PACKET_V4),
        (LinkType.PPP_ETHER, b"\x11\x00\x00\x01\x00\x40\x00\x21" + PACKET_V4),
        (LinkType.C_HDLC, b"\x0f\x00\x08\x00" + PACKET_V4),
        # NFLOG: AF_INET, version 0, group 5; a prefix TLV (type 10), then the payload TLV (type 9)
        (LinkType.NFLOG, b"\x02\x00\x00\x05" + struct.pack("<HH", 8, 10) + b"k8s\0"
         + struct.pack("<HH", 4 + len(PACKET_V4), 9) + PACKET_V4),
        # PKTAP (macOS -i pktap): a 108-byte header naming en0, then the Ethernet frame
        (LinkType.PKTAP, struct.pack("<II", 108, 1) + b"\0" * 16 + b"en0".ljust(24, b"\0") + b"\0" * 60
         + ethernet(PACKET_V4, src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")),
    ],
)
def test_every_link_type_reaches_the_same_packet(linktype: LinkType, frame: bytes) -> None:
    row = one(frame, linktype)
    assert_packet(row)
    assert row["linktype"] == linktype and row["caplen"] == row["wirelen"] == len(frame)
    assert row["ethertype"] == 0x0800
    if linktype in (LinkType.ETHERNET, LinkType.LINUX_SLL, LinkType.LINUX_SLL2):
        assert row["eth_src"] == mac_value("02:00:00:00:00:0a")
    if linktype == LinkType.ETHERNET:
        assert row["eth_dst"] == mac_value("02:00:00:00:00:0b") and row["direction"] is None
    if linktype in (LinkType.LINUX_SLL, LinkType.LINUX_SLL2):
        assert row["direction"] == Direction.OUT


def test_vlan_tags_and_qinq() -> None:
    tagged = one(ethernet(PACKET_V4, vlans=(42,)))
    assert tagged["vlan"] == 42
    assert_packet(tagged)
    qinq = one(ethernet(PACKET_V4, vlans=(7, 42), vlan_tpid=0x88A8))
    assert qinq["vlan"] == 7
    assert_packet(qinq)
    for linktype, frame in ((LinkType.LINUX_SLL, sll(PACKET_V4, vlan=300)), (LinkType.LINUX_SLL2, sll2(PACKET_V4, vlan=300))):
        cooked = one(frame, linktype)  # libpcap puts the tag back after the cooked header
        assert (cooked["vlan"], cooked["ethertype"]) == (300, 0x0800)
        assert_packet(cooked)


def test_ipv6_with_extension_headers_and_fragment_id() -> None:
    plain = one(ipv6(SEGMENT, src="fd00::1", dst="fd00::2", next_header=6, hop_limit=9), LinkType.IPV6)
    assert (plain["ip_version"], plain["src6"], plain["dst6"], plain["ttl"], plain["proto"]) == (6, "fd00::1", "fd00::2", 9, 6)
    assert plain["src"] is None and plain["sport"] == 40000 and plain["ip_len"] == 40 + len(SEGMENT)
    chained = ipv6_ext(44, b"\x01\x04\0\0\0\0") + ipv6_fragment(6, ident=0xDEADBEEF) + SEGMENT
    row = one(ethernet(ipv6(chained, next_header=0), ethertype=0x86DD))
    assert (row["proto"], row["ip_id"], row["mf"], row["frag_offset"], row["sport"]) == (6, 0xDEADBEEF, False, 0, 40000)
    later = one(ipv6(ipv6_fragment(17, ident=5, offset=1480, more=True) + b"x" * 16, next_header=44), LinkType.IPV6)
    assert (later["proto"], later["frag_offset"], later["mf"], later["sport"], later["payload_len"]) == (17, 1480, True, None, None)


def test_ipv4_options_and_fragments() -> None:
    row = one(ipv4(SEGMENT, src="10.244.1.2", dst="10.244.2.3", ttl=63, ip_id=4321, tos=0x10, options=b"\x94\x04\0\0"), LinkType.RAW)
    assert_packet(row)
    later = one(ipv4(b"y" * 40, proto=17, df=False, mf=True, frag_offset=1480), LinkType.RAW)
    assert (later["frag_offset"], later["mf"], later["proto"], later["sport"], later["payload_len"]) == (1480, True, 17, None, None)


def test_tcp_options_in_the_syn_layout_and_an_odd_one() -> None:
    syn = one(ethernet(ipv4(tcp(flags="S", options=syn_options(mss=1410, wscale=9, tsval=77, tsecr=0)))))
    assert (syn["mss"], syn["wscale"], syn["sack_ok"], syn["tsval"], syn["tsecr"], syn["ack"]) == (1410, 9, True, 77, 0, None)
    odd = b"\x08\x0a" + (5).to_bytes(4, "big") + (6).to_bytes(4, "big") + b"\x01\x02\x04\x05\xb4"
    row = one(ethernet(ipv4(tcp(flags="S", options=odd))))
    assert (row["mss"], row["wscale"], row["sack_ok"], row["tsval"], row["tsecr"]) == (1460, None, False, 5, 6)
    bare = one(ethernet(ipv4(tcp(flags="R"))))
    assert (bare["mss"], bare["tsval"], bare["sack_ok"], bare["tcp_flags"]) == (None, None, False, 4)


def test_icmp_echo_and_errors_quote_the_packet() -> None:
    echo = one(ethernet(ipv4(icmp(8, 0, ident=7, seq=9, payload=b"abcdefgh"), proto=1)))
    assert (echo["icmp_type"], echo["icmp_id"], echo["icmp_seq"], echo["payload_len"], echo["quoted_src"]) == (8, 7, 9, 8, None)
    quoted = ipv4(udp(b"", 4444, 8472), src="192.168.0.1", dst="192.168.0.2", proto=17)[:28]
    error = one(ethernet(ipv4(icmp(3, 4, payload=quoted, mtu=1450), proto=1)))
    assert (error["icmp_type"], error["icmp_code"], error["icmp_mtu"]) == (3, 4, 1450)
    assert (error["quoted_src"], error["quoted_dst"], error["quoted_proto"]) == (ip4_value("192.168.0.1"), ip4_value("192.168.0.2"), 17)
    assert (error["quoted_sport"], error["quoted_dport"]) == (4444, 8472)
    too_big = one(ipv6(icmpv6(2, 0, payload=ipv6(tcp(), next_header=6)[:48], mtu=1280), next_header=58), LinkType.IPV6)
    assert (too_big["icmp_type"], too_big["icmp_mtu"], too_big["quoted_proto"], too_big["quoted_dport"]) == (2, 1280, 6, 80)
    pong = one(ipv6(icmpv6(129, 0, ident=3, seq=4), next_header=58), LinkType.IPV6)
    assert (pong["icmp_type"], pong["icmp_id"], pong["icmp_seq"]) == (129, 3, 4)


def test_arp_and_dns() -> None:
    row = one(ethernet(arp(2, sha="02:00:00:00:00:07", spa="10.0.0.7", tpa="10.0.0.1"), ethertype=0x0806))
    assert (row["arp_op"], row["arp_sha"], row["arp_spa"], row["arp_tpa"]) == (2, mac_value("02:00:00:00:00:07"), ip4_value("10.0.0.7"), ip4_value("10.0.0.1"))
    assert row["ip_version"] is None and row["ethertype"] == 0x0806
    answer = one(ethernet(ipv4(udp(dns(0xBEEF, response=True), 53, 40000), proto=17)))
    query = one(ethernet(ipv4(udp(dns(0xBEEF), 40000, 53), proto=17)))
    assert (answer["dns_id"], answer["dns_qr"], query["dns_id"], query["dns_qr"]) == (0xBEEF, True, 0xBEEF, False)


INNER = ethernet(PACKET_V4, src="0a:00:00:00:00:01", dst="0a:00:00:00:00:02")
OUTER = dict(src="192.168.0.11", dst="192.168.0.12", ttl=64, ip_id=99, df=False)
ENVELOPES = {
    "vxlan-8472": (ipv4(udp(vxlan(INNER, vni=1), 51000, 8472), proto=17, **OUTER), Tunnel.VXLAN, 1, 8472),
    "vxlan-4789": (ipv4(udp(vxlan(INNER, vni=4096), 51000, 4789), proto=17, **OUTER), Tunnel.VXLAN, 4096, 4789),
    "geneve": (ipv4(udp(geneve(INNER, vni=77), 51000, 6081), proto=17, **OUTER), Tunnel.GENEVE, 77, 6081),
    "geneve-options": (ipv4(udp(geneve(INNER, vni=78, options=b"\x01\x02\x03\x02" + b"\0" * 8), 51000, 6081), proto=17, **OUTER), Tunnel.GENEVE, 78, 6081),
    "ipip": (ipv4(PACKET_V4, proto=4, **OUTER), Tunnel.IPIP, None, None),
    "flannel-udp": (ipv4(udp(PACKET_V4, 8285, 8285), proto=17, **OUTER), Tunnel.FLANNEL_UDP, None, 8285),
}


@pytest.mark.parametrize("name", ENVELOPES)
def test_tunnels_keep_the_envelope_apart_and_the_packet_unchanged(name: str) -> None:
    frame, kind, vni, dport = ENVELOPES[name]
    row = one(sll2(frame), LinkType.LINUX_SLL2)
    bare = one(sll2(PACKET_V4), LinkType.LINUX_SLL2)
    assert_packet(row)
    assert {c: row[c] for c in PACKET} == {c: bare[c] for c in PACKET}, "same packet, same packet columns"
    assert (row["tunnel"], row["vni"], row["outer_dport"]) == (kind, vni, dport)
    assert (row["outer_src"], row["outer_dst"], row["outer_ttl"], row["outer_ip_id"]) == (ip4_value("192.168.0.11"), ip4_value("192.168.0.12"), 64, 99)
    assert row["outer_len"] == len(frame)
    if kind in (Tunnel.VXLAN, Tunnel.GENEVE):
        assert (row["inner_eth_src"], row["inner_eth_dst"]) == (mac_value("0a:00:00:00:00:01"), mac_value("0a:00:00:00:00:02"))
    else:
        assert row["inner_eth_src"] is None


OUTER6 = dict(src="fd00:ff::11", dst="fd00:ff::12", hop_limit=62)
ENVELOPES6 = {
    "vxlan": (ipv6(udp(vxlan(INNER, vni=9), 51000, 4789), next_header=17, **OUTER6), Tunnel.VXLAN, 9),
    "geneve": (ipv6(udp(geneve(INNER, vni=10), 51000, 6081), next_header=17, **OUTER6), Tunnel.GENEVE, 10),
    "ipip": (ipv6(PACKET_V4, next_header=4, **OUTER6), Tunnel.IPIP, None),
}


@pytest.mark.parametrize("name", ENVELOPES6)
def test_tunnels_over_ipv6_keep_the_envelope_in_the_ipv6_outer_columns(name: str) -> None:
    frame, kind, vni = ENVELOPES6[name]
    row = one(ethernet(frame, ethertype=0x86DD), LinkType.ETHERNET)
    assert_packet(row)
    assert (row["tunnel"], row["vni"], row["outer_src"], row["outer_dst"]) == (kind, vni, None, None)
    assert (row["outer_src6"], row["outer_dst6"], row["outer_ttl"], row["outer_len"]) == ("fd00:ff::11", "fd00:ff::12", 62, len(frame))
    assert row["outer_l4_csum_bad"] is (None if kind == Tunnel.IPIP else False)  # over IPv6 the UDP checksum is mandatory


def test_ipv6_in_ipv4_is_ip_in_ip() -> None:
    inner = ipv6(tcp(b"x", seq=5, flags=0x18, ack=9), next_header=6)
    row = one(ethernet(ipv4(inner, proto=41, **OUTER)))
    assert (row["tunnel"], row["outer_src"], row["ip_version"], row["src6"], row["seq"]) == (
        Tunnel.IPIP, ip4_value("192.168.0.11"), 6, "fd00::1", 5)


@pytest.mark.parametrize(("how", "verdict"), [("good", False), ("bad", True), ("none", None)])
def test_the_envelope_udp_checksum_has_its_own_column(how: str, verdict: bool | None) -> None:
    segment = udp(vxlan(INNER, vni=3), 51000, 8472)
    if how != "none":  # 0 over IPv4: no checksum (Linux's VXLAN default)
        pseudo = bytes([192, 168, 0, 11, 192, 168, 0, 12, 0, 17]) + len(segment).to_bytes(2, "big")
        total = sum(int.from_bytes((pseudo + segment + b"\0")[i : i + 2], "big") for i in range(0, len(pseudo + segment), 2))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        value = (~total & 0xFFFF) ^ (1 if how == "bad" else 0)
        segment = segment[:6] + value.to_bytes(2, "big") + segment[8:]
    row = one(ethernet(ipv4(segment, proto=17, l4_checksum="as-given", **OUTER)))
    assert (row["tunnel"], row["outer_l4_csum_bad"]) == (Tunnel.VXLAN, verdict)
    assert row["l4_csum_bad"] is False  # the packet's own checksum is judged apart


def test_the_port_table_is_explicit_and_extensible() -> None:
    frame = sll2(ipv4(udp(vxlan(INNER, vni=5), 51000, 6080), proto=17, **OUTER))
    batch = frame_batch([frame, frame], LinkType.LINUX_SLL2)
    plain = decode_batch(batch, 0, TUNNEL_PORTS).row(0, named=True)
    assert (plain["tunnel"], plain["dport"], plain["payload_len"]) == (Tunnel.NONE, 6080, len(INNER) + 8)
    ngfw = TUNNEL_PORTS.with_port(6080, Tunnel.VXLAN)
    row = decode_batch(batch, 0, ngfw).row(0, named=True)
    assert (row["tunnel"], row["vni"], row["outer_dport"]) == (Tunnel.VXLAN, 5, 6080)
    assert decode_batch_reference(batch, 0, ngfw).row(0, named=True) == row
    assert_packet(row)
    reply = sll2(ipv4(udp(vxlan(INNER, vni=5), 6080, 20000), proto=17, **OUTER))  # the NGFW answers from its port
    back = decode_batch(frame_batch([reply, reply], LinkType.LINUX_SLL2), 0, ngfw).row(0, named=True)
    assert (back["tunnel"], back["outer_sport"], back["outer_dport"]) == (Tunnel.VXLAN, 6080, 20000)
    without = TUNNEL_PORTS.without_port(8472)
    vx = frame_batch([sll2(ENVELOPES["vxlan-8472"][0])] * 2, LinkType.LINUX_SLL2)
    assert decode_batch(vx, 0, without)["tunnel"].to_list() == [0, 0]
    with pytest.raises(ValueError):
        TUNNEL_PORTS.with_port(4, Tunnel.IPIP)


def test_batch_metadata_direction_names_and_frame_numbers() -> None:
    frames = [sll2(PACKET_V4, pkttype=0), sll2(PACKET_V4, pkttype=0), ethernet(PACKET_V4)]
    table = decode(frames, [276, 276, 1], first_frame=100, iface_names=["eth0", "any"], ifaces=[1, 0, -1],
                   directions=[4, -1, -1], step_ns=5)
    assert table["frame"].to_list() == [100, 101, 102]
    assert table["iface"].to_list() == ["any", "eth0", None]
    assert table["direction"].to_list() == [4, 0, None]  # the reader's direction wins over SLL2's packet type
    assert table["ts"].diff().to_list()[1:] == [5, 5]
    assert table["input"].to_list() == [0, 0, 0] and table["node"].null_count() == 3


FRAMES_TO_CUT = [sll2(ENVELOPES["vxlan-8472"][0]), ethernet(ipv6(ipv6_fragment(6, 1) + SEGMENT, next_header=44), ethertype=0x86DD),
                 sll(ipv4(icmp(3, 4, payload=PACKET_V4[:28], mtu=1400), proto=1)), ethernet(arp(), ethertype=0x0806)]
LINKS_TO_CUT = [LinkType.LINUX_SLL2, LinkType.ETHERNET, LinkType.LINUX_SLL, LinkType.ETHERNET]
# bytes the decoder reads when not all of them are headers below the payload: the ICMP error's quoted IPv4 header + ports
HEADERS_READ = {2: 16 + 20 + 8 + 20 + 4}


@pytest.mark.parametrize("which", range(len(FRAMES_TO_CUT)))
def test_truncated_frames_keep_what_was_captured(which: int) -> None:
    frame, linktype = FRAMES_TO_CUT[which], LINKS_TO_CUT[which]
    full = one(frame, linktype)
    headers = HEADERS_READ.get(which, len(frame) - (full["payload_len"] or 0))
    for snap in range(len(frame) + 1):
        row = decode([frame[:snap], frame], linktype).row(0, named=True)
        assert row["caplen"] == snap and row["wirelen"] == snap  # frame_batch cuts before, as a reader sees a short frame
        cut = snap < headers
        assert row["truncated"] is cut, snap
        assert (row["error"] is not None) is cut, snap
        if cut:
            assert row["error"].startswith("truncated:")
        # whatever was decoded agrees with the whole frame; cut before its UDP port, an envelope is not yet known
        # as one and shows as the packet
        unknown_envelope = row["tunnel"] != full["tunnel"]
        for name, value in row.items():
            if unknown_envelope and (name in PACKET or name == "tunnel"):
                continue
            if value is not None and name not in ("caplen", "wirelen", "truncated", "error", "payload_digest"):
                assert value == full[name], (snap, name)


def test_the_payload_digest() -> None:
    payload = bytes(range(40))
    rows = decode([ethernet(ipv4(tcp(payload, flags="P.", options=data_options()))),
                   sll2(ipv4(udp(vxlan(ethernet(ipv4(tcp(payload, seq=9, flags="P."))), 1), 1, 8472), proto=17)),
                   ethernet(ipv4(tcp(payload[:-1] + b"x", flags="P."))),
                   ethernet(ipv4(tcp(payload[:16] + b"?" * 24, flags="P."))),
                   ethernet(ipv4(tcp(b"", flags="S"))), ethernet(PACKET_V4)], [1, 276, 1, 1, 1, 1])
    digests = rows["payload_digest"].to_list()
    assert digests[0] == digests[1] == digests[2] == digests[3]  # same length and first 16 bytes, whatever the headers
    assert digests[4] is None and digests[0] != digests[5]
    cut = decode([ethernet(ipv4(tcp(payload, flags="P.")))[: 54 + 16], ethernet(PACKET_V4)])["payload_digest"][0]
    assert cut == digests[0]  # 16 captured payload bytes are enough: the digest survives a short snap length
    short = decode([ethernet(ipv4(tcp(payload, flags="P.")))[: 54 + 15], ethernet(PACKET_V4)])["payload_digest"][0]
    assert short is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([int(lt) for lt in LINKTYPES] + [147]), st.binary(max_size=160)), min_size=1, max_size=12))
def test_garbage_never_raises_and_both_paths_agree(frames: list[tuple[int, bytes]]) -> None:
    table = decode([f for _, f in frames], [lt for lt, _ in frames])
    assert table.height == len(frames)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6))
def test_damaged_real_frames_agree_on_both_paths(seed: int, flips: list[tuple[int, int]]) -> None:
    linktype, frame = synth_frames(1, seed)[0]
    data = bytearray(frame)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    decode([bytes(data), frame], [int(linktype)] * 2)


def test_without_the_c_decoder_every_frame_decodes_through_the_fallback_and_it_says_so(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    frames = synth_frames(40, seed=5)
    batch = frame_batch([f for _, f in frames], [int(lt) for lt, _ in frames])
    fast = decode_batch(batch, 0, TUNNEL_PORTS)
    monkeypatch.setattr(chunks, "_C", None)
    monkeypatch.setattr(chunks, "_said", [])
    assert decode_batch(batch, 0, TUNNEL_PORTS).equals(fast, null_equal=True)
    assert decode_batch(batch, 0, TUNNEL_PORTS).equals(fast, null_equal=True)
    assert capsys.readouterr().err.count(NOT_BUILT) == 1  # said once, not once a batch


def test_chunks_join_seamlessly(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = synth_frames(300, seed=11)
    batch = frame_batch([f for _, f in frames], [int(lt) for lt, _ in frames], first_frame=1000)
    whole = decode_batch(batch, 3, TUNNEL_PORTS)
    monkeypatch.setattr(chunks, "CHUNK", 7)
    chunked = decode_batch(batch, 3, TUNNEL_PORTS)
    assert chunked.equals(whole, null_equal=True)
    assert chunked["frame"].to_list() == list(range(1000, 1300)) and chunked["input"].unique().to_list() == [3]


def test_a_chunk_lets_go_of_the_arrow_keys_behind_a_text_column_with_nulls() -> None:
    """A chunk's text column null in some rows keeps its values and chunks, and no longer keeps alive the keys its
    codes were made from (the decoders' 32-bit keys: 4 B a row of IPv6 address columns, null in most rows); a column
    no row has is a typed null."""
    import weakref

    texts = ["fe80::1", "fe80::2", "::1"]

    def codes(start: int) -> np.ndarray:
        return np.array(([-1, 0, 1, -1, 2] * 100)[start:] + [-1] * start, dtype=np.int32)

    def six(keys: np.ndarray) -> arrow.Array:
        return arrow.dictionary(keys, texts)

    keys = codes(0)
    plain = arrow.frame({"src6": six(keys)})
    kept = weakref.ref(keys)
    del keys
    assert kept() is not None and plain.height == 500  # as converted from Arrow: the keys live on behind the validity
    made = [codes(start) for start in range(3)]
    tables = [decode_module._table({"src6": six(k), "ts": arrow.Array(b"l", 500, 0, (None, np.arange(500) + start))},
                                   2) for start, k in enumerate(made)]
    for start, (chunk, k) in enumerate(zip(tables, made)):
        assert chunk.schema == pl.Schema(SCHEMA) and chunk["ts"].to_list() == list(range(start, start + 500))
        assert chunk["src6"].to_list() == [texts[c] if c >= 0 else None for c in k.tolist()]
        assert chunk["vlan"].null_count() == 500 and chunk["input"].to_list() == [2] * 500
    whole = pl.concat(tables, rechunk=False)
    assert [c.len() for c in whole["src6"].get_chunks()] == [500, 500, 500]
    refs = [weakref.ref(k) for k in made]
    del made, k, tables, chunk
    assert all(r() is None for r in refs)
    assert whole["src6"].null_count() == sum(c.count(-1) for c in [codes(s).tolist() for s in range(3)])


def test_a_whole_column_is_kept_as_given_or_as_the_array_it_views_whole_and_a_part_is_copied() -> None:
    from cniscope.packets.columns import ALL, Columns

    units = np.arange(8, dtype=np.uint64)  # pcapng's times: its timestamp units seen as int64
    longer = np.arange(16, dtype=np.uint32)
    cols = Columns(8)
    cols.put("ts", ALL, units.view(np.int64))
    cols.put("caplen", ALL, longer[:8])
    cols.put("wirelen", ALL, longer[8:].copy())
    assert np.shares_memory(cols.values["ts"], units) and not np.shares_memory(cols.values["caplen"], longer)
    assert cols.values["ts"].tolist() == list(range(8)) and cols.values["caplen"].tolist() == list(range(8))
    again = Columns(8)  # one array is never two columns
    again.put("caplen", ALL, cols.values["wirelen"])
    again.put("wirelen", ALL, cols.values["wirelen"])
    assert not np.shares_memory(again.values["caplen"], again.values["wirelen"])


def test_put_rows_sets_what_putting_each_field_sets() -> None:
    from cniscope.packets.columns import Columns

    found = [{"sport": 80, "dport": 8080, "mss": None, "error": "cut"}, {"sport": 443, "truncated": True},
             {"sport": 81, "dport": 9090, "mss": 1400, "error": None}, {"mss": None}]
    rows = [5, 1, 3, 0]
    batched, one_by_one = Columns(6), Columns(6)
    batched.put_rows(rows, found)
    for row, fields in zip(rows, found):
        for name, value in fields.items():
            if value is not None:
                one_by_one.put(name, row, value)
    made = arrow.frame(batched.arrays())
    assert made.columns == [*one_by_one.arrays()] and set(made.columns) == {"sport", "dport", "mss", "error", "truncated"}
    assert made.equals(arrow.frame(one_by_one.arrays()), null_equal=True)
    assert made["mss"].to_list() == [None, None, None, 1400, None, None]
    assert made["error"].dtype == pl.Categorical and made["error"].to_list() == [None, None, None, None, None, "cut"]
    with pytest.raises(TypeError, match="mss: a float"):
        Columns(2).put_rows([0], [{"mss": 1.5}])


@pytest.mark.parametrize("wrap", ["plain", "vxlan", "ipv6"])
def test_options_the_snap_length_cut_are_walked_as_far_as_they_were_captured(wrap: str) -> None:
    """A SYN's options cut at every byte (a VXLAN SYN at snaplen 128 is one): the options captured whole are kept
    and the error says where the cut one was, as the fallback does."""
    # a NOP pair and an option no column holds before Linux's SYN layout
    extra = b"" if wrap == "ipv6" else b"\x01\x01\x05\x06abcd"
    options = extra + syn_options()
    segment = tcp(flags="S", options=options)
    frame = {"plain": sll2(ipv4(segment)), "ipv6": sll2(ipv6(segment), proto=0x86DD),
             "vxlan": sll2(ipv4(udp(vxlan(ethernet(ipv4(segment))), 1, 8472), proto=17))}[wrap]
    whole = len(frame)
    first_option = whole - len(options) - 20 + 20  # where the options start
    seen = set()
    for snap in range(first_option, whole):
        row = decode([frame[:snap], frame], LinkType.LINUX_SLL2).row(0, named=True)  # == the fallback's row
        assert row["truncated"] is True and row["error"].startswith("truncated: TCP option"), snap
        seen.add(row["error"].split(" needs")[0])
        assert (row["mss"] is not None) is (snap >= first_option + len(extra) + 4), snap
    assert seen == {"truncated: TCP option", "truncated: TCP option 2", "truncated: TCP option 8",
                    "truncated: TCP option 3"} | ({"truncated: TCP option 5"} if extra else set())


# the link types the fallback reads besides the common ones, each framing the same packet (and the PKTAP header
# nesting an Ethernet frame)
RARE_LINKS = [
    (LinkType.PPP, b"\xff\x03\x00\x21" + PACKET_V4), (LinkType.PPP, b"\x21" + PACKET_V4),
    (LinkType.PPP_HDLC, b"\xff\x03\x00\x57" + ipv6(SEGMENT)), (LinkType.PPP_ETHER, b"\x11\x00\x00\x01\x00\x40\x00\x21" + PACKET_V4),
    (LinkType.C_HDLC, b"\x0f\x00\x08\x00" + PACKET_V4),
    (LinkType.NFLOG, b"\x0a\x00\x00\x05" + struct.pack("<HH", 8, 10) + b"k8s\0" + struct.pack("<HH", 44 + len(SEGMENT), 9)
     + ipv6(SEGMENT)),
    (LinkType.PKTAP, struct.pack("<II", 108, 1) + b"\0" * 100 + ethernet(PACKET_V4)),
    (LinkType.NULL, struct.pack("<I", 30) + ipv6(SEGMENT)), (LinkType.LOOP, struct.pack(">I", 24) + ipv6(SEGMENT)),
]


def test_every_frame_of_the_mix_cut_at_every_byte_decodes_as_the_fallback_decodes_it() -> None:
    """Each header of every family, link type and envelope cut at each of its bytes: the C decoder stops where the
    fallback stops, keeps what it keeps, and says the same error."""
    mix = synth_frames(120, seed=23) + [(lt, frame) for lt, frame in RARE_LINKS]
    cut = [(int(lt), frame[:snap]) for lt, frame in mix for snap in range(min(len(frame), 200) + 1)]
    table = decode([f for _, f in cut], [lt for lt, _ in cut])
    assert table["truncated"].sum() > len(cut) // 2 and table["error"].n_unique() > 30  # the cuts land in many headers


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.lists(st.tuples(st.sampled_from([2, 4, 6, 12, 16, 20, 24, 26, 32, 34, 38, 42, 46, 54, 58, 62]),
                                                  st.integers(0, 0xFFFF)), min_size=1, max_size=4))
@example(seed=40989, lies=[(54, 1024)])  # an IPv6 envelope with a fragment header: its 32-bit id is the envelope's ip id
def test_lying_lengths_decode_as_the_fallback_decodes_them(seed: int, lies: list[tuple[int, int]]) -> None:
    """16-bit values written where the link, IP, UDP, TCP, tunnel and extension headers keep their lengths, types and
    offsets (at the usual offsets of those fields behind each link header), in real frames of the mix."""
    frames = []
    for linktype, frame in synth_frames(6, seed):
        data = bytearray(frame)
        for pos, value in lies:
            data[pos : pos + 2] = value.to_bytes(2, "big")[: max(0, len(data) - pos)]
        frames.append((int(linktype), bytes(data[: len(frame)])))
    decode([f for _, f in frames], [lt for lt, _ in frames])


@pytest.mark.parametrize("short", [1, 13, 33, 60])
def test_frames_running_past_the_end_of_the_buffer_decode_what_the_buffer_holds(short: int) -> None:
    """A reader may hand over a frame whose captured length runs past the buffer (a file cut short): the C decoder
    reads none of the bytes beyond it, and decodes what is there as the fallback does (from the bytes sliced)."""
    frame = sll2(ENVELOPES["vxlan-8472"][0])
    batch = frame_batch([frame, frame], LinkType.LINUX_SLL2)
    batch.data = np.frombuffer(batch.data.tobytes()[:-short], dtype=np.uint8)
    batch.caplen = np.array([len(frame), len(frame) + 1000 * short], dtype=np.uint32)
    fast = decode_batch(batch, 0, TUNNEL_PORTS)
    assert fast.equals(decode_batch_reference(batch, 0, TUNNEL_PORTS), null_equal=True)
    row = fast.row(1, named=True)
    assert row["truncated"] is (short > 27)  # the GET request is the last 27 bytes: a cut into the headers, above it
    assert (row["payload_digest"] is None) is (short > 27 - 16) and row["tunnel"] == Tunnel.VXLAN


def test_interfaces_a_pcap_does_not_name_are_named_by_the_index_c_reads() -> None:
    """LINUX_SLL2 frames of a file without interface names: named after the index in their header (read by C, or
    gathered where C was not built), the named ones and those cut before the index left as they are."""
    frames = [sll2(PACKET_V4, ifindex=i) for i in (7, 3, 7, 1 << 31)] + [sll2(PACKET_V4)[:7], sll2(PACKET_V4, ifindex=3)]
    table = decode(frames, LinkType.LINUX_SLL2, iface_names=["eth0"], ifaces=[-1, -1, -1, -1, -1, 0])
    assert table["iface"].to_list() == ["ifindex 7", "ifindex 3", "ifindex 7", f"ifindex {1 << 31}", None, "eth0"]
    whole = decode(frames[:2], LinkType.LINUX_SLL2)  # every frame unnamed
    assert whole["iface"].to_list() == ["ifindex 7", "ifindex 3"]


@pytest.mark.parametrize("large", [False, True])
def test_unnamed_frames_without_an_index_stay_unnamed(large: bool) -> None:
    """The index C reads as -1 (a frame past the buffer's end) names no interface, whether the indexes are counted
    (small) or sorted (one above 2^20), for every frame unnamed and for some."""
    frames = [sll2(PACKET_V4)] * 4
    big = 1 << 31 if large else 9
    read = np.array([7, -1, big, 7], dtype=np.int64)
    for ifaces, names, want in (([-1] * 4, [], [0, -1, 1, 0]), ([-1, -1, -1, 0], ["eth0"], [1, -1, 2, 0])):
        batch = frame_batch(frames, LinkType.LINUX_SLL2, iface_names=names, ifaces=ifaces)
        unnamed = chunks._unnamed(batch, 0, 4)
        codes, named = chunks._sll2_ifindex(batch, 0, 4, unnamed, read.copy())
        assert codes.dtype == np.int32 and codes.tolist() == want
        assert named == [*names, "ifindex 7", f"ifindex {big}"]


def test_a_frame_starting_past_the_end_of_the_buffer_decodes_as_nothing_captured() -> None:
    batch = frame_batch([PACKET_V4, PACKET_V4], LinkType.RAW)
    batch.offset = np.array([0, len(batch.data) + 5], dtype=np.int64)
    fast = decode_batch(batch, 0, TUNNEL_PORTS)
    assert fast.equals(decode_batch_reference(batch, 0, TUNNEL_PORTS), null_equal=True)
    assert fast["error"].to_list()[1] == "truncated: IP version needs 1 bytes at offset 0, 0 captured"


def _arrays(names: tuple[str, ...], n: int, garbage: int = 0) -> list[np.ndarray]:
    """The value arrays `_decode_c` gives the C decoder (IPv6 addresses as int64 buffer positions), every byte `garbage`."""
    return [np.full(n * np.dtype(t).itemsize, garbage, dtype=np.uint8).view(t)
            for t in (np.int64 if name in chunks._IPV6 else NUMPY_TYPE[name] for name in names)]


def test_the_c_decoder_fills_the_decoded_columns_and_refuses_arrays_of_the_wrong_shape(c_decoder: ModuleType) -> None:
    names = c_decoder.COLUMNS
    ok = dict(data=np.zeros(100, dtype=np.uint8), offset=np.zeros(2, dtype=np.int64), caplen=np.zeros(2, dtype=np.uint32),
              linktype=np.full(2, 147, dtype=np.uint16), kinds=np.zeros(65536, dtype=np.uint8),
              values=_arrays(names, 2), valid=np.zeros((len(names), 1), dtype=np.uint64),
              counts=np.zeros(len(names), dtype=np.int64))
    assert c_decoder.decode(*ok.values()) == []
    for name, wrong in [("caplen", np.zeros(2, dtype=np.uint16)), ("kinds", np.zeros(100, dtype=np.uint8)),
                        ("values", ok["values"][:-1]), ("valid", np.zeros((len(names), 2), dtype=np.uint64)),
                        ("values", [np.zeros(2, dtype=np.uint8).repeat(3) for _ in names]),
                        ("values", [np.zeros(2, dtype=np.uint64) for _ in names]),  # each column's own width, or none
                        ("counts", np.zeros(len(names), dtype=np.int8))]:
        with pytest.raises(ValueError):
            c_decoder.decode(*{**ok, name: wrong}.values())
    # every column the fallback decodes but the names tcpdump prints (text only) and the error (texts made here); the
    # packet's columns in one run, as the envelope clears them
    text_only = {"outer_src_name", "outer_dst_name", "src_name", "dst_name"}
    assert names == tuple(c for c in DECODED if c not in text_only | {"error"})
    assert names[names.index("ip_version") : names.index("payload_digest") + 1] == tuple(c for c in PACKET if c not in text_only)


def test_the_values_under_nulls_are_zeros(c_decoder: ModuleType) -> None:
    """The C decoder's arrays are not zeroed before it writes them: every row of a column it keeps must be written,
    0 under its nulls, so that equal tables are equal byte for byte (what nothing reads is not left to chance); so
    must every validity word of those columns, and its counts are the rows with a value."""
    # blocks of 64 rows no row of which has some columns (ARP's, TCP's), then a mix
    mix = [(LinkType.ETHERNET, ethernet(PACKET_V4))] * 130 + [(LinkType.ETHERNET, ethernet(arp(), ethertype=0x0806))] * 70
    mix += synth_frames(300, seed=31)
    batch = frame_batch([f for _, f in mix], [int(lt) for lt, _ in mix])
    names, n = c_decoder.COLUMNS, len(mix)
    values = _arrays(names, n, garbage=0xA5)  # as memory handed back and taken again
    valid = np.full((len(names), -(-n // 64)), 0xA5A5A5A5A5A5A5A5, dtype=np.uint64)
    counts = np.full(len(names), 7, dtype=np.int64)
    c_decoder.decode(batch.data, batch.offset, batch.caplen, batch.linktype, chunks.port_kinds(TUNNEL_PORTS), values,
                     valid, counts)
    partly = [c for c in range(len(names)) if 0 < counts[c] < n]
    assert len(partly) > 30 and 0 in counts.tolist() and n in counts.tolist()
    for c in range(len(names)):
        ok = np.unpackbits(valid[c].view(np.uint8), count=n, bitorder="little").view(np.bool_)
        assert int(np.count_nonzero(ok)) == counts[c] and valid[c][-1] >> (n % 64) == 0, names[c]
        assert not counts[c] or not values[c][~ok].any(), names[c]  # a column no row has: dropped unread


def test_zeroed_arrays_keep_the_blocks_without_a_value_unwritten(c_decoder: ModuleType) -> None:
    """Given zeros (`zeroed`), the C decoder writes a column's block of 64 rows only where some row of it has a value,
    zeros under its nulls there: a rare column's other blocks (their pages) are never touched."""
    mix = [(LinkType.ETHERNET, ethernet(PACKET_V4))] * 130 + [(LinkType.ETHERNET, ethernet(arp(), ethertype=0x0806))] * 70
    mix += synth_frames(300, seed=31)
    batch = frame_batch([f for _, f in mix], [int(lt) for lt, _ in mix])
    names, n = c_decoder.COLUMNS, len(mix)
    values = _arrays(names, n, garbage=0xA5)  # what a block left unwritten would still hold
    valid = np.zeros((len(names), -(-n // 64)), dtype=np.uint64)
    counts = np.zeros(len(names), dtype=np.int64)
    c_decoder.decode(batch.data, batch.offset, batch.caplen, batch.linktype, chunks.port_kinds(TUNNEL_PORTS), values,
                     valid, counts, None, True)
    unwritten = 0
    for c in (c for c in range(len(names)) if 0 < counts[c] < n):
        ok = np.unpackbits(valid[c].view(np.uint8), count=n, bitorder="little").view(np.bool_)
        for k in range(valid.shape[1]):
            rows = slice(64 * k, min(64 * (k + 1), n))
            written = values[c][rows].view(np.uint8)
            if valid[c][k]:
                assert not values[c][rows][~ok[rows]].any(), names[c]
            else:
                assert (written == 0xA5).all(), names[c]
                unwritten += 1
    assert unwritten >= 2 * 4  # ARP's 4 columns have no value in the first two blocks


def test_working_arrays_taken_again_leave_nothing_behind() -> None:
    """Batches decoded with one `Scratch` (its working arrays taken again, shorter, holding the last batch's values)
    equal the fallback's rows."""
    scratch = chunks.Scratch()
    for count, seed, linktype in ((500, 3, None), (200, 4, LinkType.LINUX_SLL2), (130, 5, None)):
        mix = synth_frames(count, seed=seed)
        if linktype is not None:  # interfaces a pcap does not name: the indexes C reads, a working array
            mix = [(linktype, sll2(ipv6(udp(b"x" * seed, sport=53, dport=99), src="fe80::1")))] * count
        batch = frame_batch([f for _, f in mix], [int(lt) for lt, _ in mix])
        fast = decode_batch(batch, 0, TUNNEL_PORTS, scratch=scratch)
        assert fast.equals(decode_batch_reference(batch, 0, TUNNEL_PORTS), null_equal=True)
    with scratch.held() as arrays:
        assert arrays["valid"].shape[0] >= 500 // 64 and arrays["src6"].shape[0] == 500


def test_kept_and_streamed_batches_are_the_same_rows(c_decoder: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch the caller keeps (`kept`: its large columns zeros in pages of their own) and one it streams (columns
    from the heap as it has them, whose pages the next batch takes again) are the same rows, and only the kept one's
    columns are mapped."""
    mapped: list[int] = []
    zeroed, empty = chunks._zeroed, np.empty

    def counted(n: int, dtype: type[np.generic]) -> np.ndarray:
        out = zeroed(n, dtype)
        if isinstance(getattr(out.base, "obj", None), mmap.mmap):  # np.frombuffer: a view of the mapping
            mapped.append(n)
        return out

    def used(*args: Any, **kwargs: Any) -> np.ndarray:  # memory the heap takes again holds what was there
        out = empty(*args, **kwargs)
        out.view(np.uint8).fill(0xA5)
        return out

    monkeypatch.setattr(chunks, "_zeroed", counted)
    monkeypatch.setattr(chunks, "ZEROED_MAPPED", 64)  # this small batch's columns count as large
    mix = synth_frames(400, seed=11)
    batch = frame_batch([f for _, f in mix], [int(lt) for lt, _ in mix])
    with monkeypatch.context() as patched:
        patched.setattr(np, "empty", used)
        streamed = decode_batch(batch, 0, TUNNEL_PORTS)
    assert mapped == []
    for column in streamed.select(pl.selectors.integer()).iter_columns():  # zeros under the nulls, not what was there
        if column.null_count() and column.n_unique() > 1:
            array = column.rechunk().to_arrow()
            values = np.frombuffer(array.buffers()[1], dtype=array.type.to_pandas_dtype())[array.offset:][:len(column)]
            assert not values[column.is_null().to_numpy()].any(), column.name
    kept = decode_batch(batch, 0, TUNNEL_PORTS, kept=True)
    assert len(mapped) > 20
    assert kept.equals(streamed, null_equal=True)
    assert kept.equals(decode_batch_reference(batch, 0, TUNNEL_PORTS), null_equal=True)


def test_a_kept_batch_past_its_first_pages_taken_ahead_is_the_same_rows(c_decoder: ModuleType) -> None:
    """A kept batch longer than the rows whose pages a column takes ahead at once (`POPULATE` in C: 8192) is the
    streamed one's rows, where a column every row had stops having values (its pages taken, then left unwritten)
    and where one starts."""
    mix = synth_frames(300, seed=12)
    plain = [(lt, f) for lt, f in mix if lt == LinkType.ETHERNET][:1]
    frames = plain * 9000 + mix * 40 + plain * 9000
    batch = frame_batch([f for _, f in frames], [int(lt) for lt, _ in frames])
    kept, streamed = decode_batch(batch, 0, TUNNEL_PORTS, kept=True), decode_batch(batch, 0, TUNNEL_PORTS)
    assert kept.height == len(frames) > 3 * 8192
    assert kept.equals(streamed, null_equal=True)
    assert kept[8192 * 3:].equals(decode_batch_reference(batch, 0, TUNNEL_PORTS)[8192 * 3:], null_equal=True)


# what `analyze` drops right after reading (cniscope.analyze.UNREAD): the decoders leave it null, unbuilt
UNREAD = ("frame", "line", "truncated", "outer_ttl", "outer_ip_id", "tos", "df", "wscale", "sack_ok", "quoted_proto", "info",
          "error")


@pytest.mark.parametrize("path", ["c", "fallback"])
def test_unread_columns_are_left_null_and_the_others_are_the_same(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cniscope.analyze import UNREAD as unread

    assert set(unread) == set(UNREAD)
    mix = synth_frames(300, seed=7) + [(lt, f[: len(f) // 2]) for lt, f in zip(LINKS_TO_CUT, FRAMES_TO_CUT)]
    batch = frame_batch([f for _, f in mix], [int(lt) for lt, _ in mix], first_frame=10)
    if path == "fallback":
        monkeypatch.setattr(chunks, "_C", None)
        monkeypatch.setattr(chunks, "_said", [True])
    whole = decode_batch(batch, 1, TUNNEL_PORTS)
    lean = decode_batch(batch, 1, TUNNEL_PORTS, unread=UNREAD)
    for name in ("frame", "truncated", "outer_ttl", "outer_ip_id", "tos", "df", "wscale", "sack_ok", "error"):
        assert whole[name].null_count() < whole.height, name  # there to leave out
    assert lean.schema == whole.schema
    assert [lean[name].null_count() for name in UNREAD] == [lean.height] * len(UNREAD)
    assert lean.drop(UNREAD).equals(whole.drop(UNREAD), null_equal=True)


def test_the_c_decoder_leaves_a_column_given_an_empty_array_unwritten(c_decoder: ModuleType) -> None:
    mix = synth_frames(200, seed=13)
    batch = frame_batch([f for _, f in mix], [int(lt) for lt, _ in mix])
    names, n = c_decoder.COLUMNS, len(mix)
    left = {names.index(name) for name in ("tos", "wscale", "src", "payload_digest")}

    def run(empty: set[int]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        values = [np.zeros(0, dtype=a.dtype) if c in empty else a for c, a in enumerate(_arrays(names, n))]
        valid = np.zeros((len(names), -(-n // 64)), dtype=np.uint64)
        counts = np.zeros(len(names), dtype=np.int64)
        c_decoder.decode(batch.data, batch.offset, batch.caplen, batch.linktype, chunks.port_kinds(TUNNEL_PORTS),
                         values, valid, counts)
        return values, valid, counts

    values, valid, counts = run(set())
    kept_values, kept_valid, kept_counts = run(left)
    for c in range(len(names)):
        if c in left:
            assert counts[c] and not kept_counts[c] and not kept_valid[c].any(), names[c]
        else:
            assert kept_counts[c] == counts[c] and (kept_valid[c] == valid[c]).all(), names[c]
            assert (kept_values[c] == values[c]).all(), names[c]


def test_the_c_decoder_makes_ipv6_columns_as_python_would(c_decoder: ModuleType) -> None:
    """`ipv6_column`: the addresses of the rows the bitmap sets (none past the last row) as codes into their distinct
    texts in text order (socket.inet_ntop's), the other rows' codes untouched; a position outside the buffer refused."""
    import random
    import socket

    r = random.Random(5)
    pool = [bytes(16), bytes(15) + b"\1", bytes([0x20, 1, 0xd, 0xb8] + [0] * 11 + [1])] + [r.randbytes(16) for _ in range(40)]
    n = 1000
    data = np.frombuffer(b"".join(r.choice(pool) for _ in range(n)) + b"\xee" * 5, dtype=np.uint8)
    position = np.arange(n, dtype=np.int64) * 16
    valid = np.array([r.getrandbits(64) for _ in range(-(-n // 64))], dtype=np.uint64)  # bits past row 999 set too
    codes = np.full(n, 7, dtype=np.int32)
    offsets, texts = c_decoder.ipv6_column(data, position, valid, codes)
    rows = [row for row in range(n) if int(valid[row // 64]) >> (row % 64) & 1]
    want = sorted({socket.inet_ntop(socket.AF_INET6, data[16 * row : 16 * row + 16].tobytes()) for row in rows})
    dictionary = arrow.Array(b"u", len(want), 0, (None, np.frombuffer(offsets, dtype=np.int32), np.frombuffer(texts, np.uint8)))
    assert arrow.texts(dictionary) == want
    assert [want[c] for c in codes[rows]] == [socket.inet_ntop(socket.AF_INET6, data[16 * row : 16 * row + 16].tobytes())
                                             for row in rows]
    assert set(codes[np.setdiff1d(np.arange(n), rows)].tolist()) == {7}
    for wrong in (n * 16 - 15, -1):
        at = position.copy()
        at[rows[-1]] = wrong
        with pytest.raises(ValueError):
            c_decoder.ipv6_column(data[: n * 16], at, valid, codes)
    with pytest.raises(ValueError):
        c_decoder.ipv6_column(data, position, valid[:-1], codes)
    offsets, texts = c_decoder.ipv6_column(data, position, np.zeros_like(valid), codes)
    assert np.frombuffer(offsets, dtype=np.int32).tolist() == [0] and texts == b""
