"""TCP/UDP checksum verification: `l4_csum_bad` on both decode paths, and the chunk summing against the plain definition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cniscope.models import TUNNEL_PORTS
from cniscope.packets.checksum import segment_sums
from cniscope.packets.decode import slow_rows
from cniscope.packets.schema import LinkType
from tests.frames import (
    data_options,
    dns,
    ethernet,
    frame_batch,
    icmp,
    ipv4,
    ipv6,
    ipv6_ext,
    ipv6_fragment,
    sll2,
    syn_options,
    tcp,
    udp,
    vxlan,
)
from tests.packets.decoding import decode

V4 = dict(src="10.244.1.2", dst="10.244.2.3")


def verdicts(frames: list[bytes], linktype: int = LinkType.ETHERNET, snaplen: int = 262144) -> list[bool | None]:
    """`l4_csum_bad` of each frame, the vector path held to the fallback's rows (see test_decode.decode)."""
    return decode(frames, linktype, snaplen=snaplen)["l4_csum_bad"].to_list()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 16, 17, 1400, 1401])
def test_good_and_bad_tcp_and_udp_over_ipv4_and_ipv6(size: int) -> None:
    payload = bytes(range(256)) * 6
    seg_tcp = tcp(payload[:size], flags="P.", options=data_options())
    seg_udp = udp(payload[:size], 40000, 9999)
    frames, expect = [], []
    for how, bad in (("good", False), ("bad", True)):
        frames += [ethernet(ipv4(seg_tcp, l4_checksum=how, **V4)), ethernet(ipv4(seg_udp, proto=17, l4_checksum=how, **V4)),
                   ethernet(ipv6(seg_tcp, l4_checksum=how), ethertype=0x86DD),
                   ethernet(ipv6(seg_udp, next_header=17, l4_checksum=how), ethertype=0x86DD)]
        expect += [bad] * 4
    # odd frame lengths put the next frames' segments at odd buffer offsets: the grid sum's other half
    frames.append(ethernet(ipv4(udp(b"x", 1, 2), proto=17)))
    expect.append(False)
    assert verdicts(frames + frames) == expect + expect


def test_what_is_not_judged() -> None:
    whole = tcp(b"y" * 100, flags="P.")
    frames = {
        "udp checksum 0 over IPv4: none": (ethernet(ipv4(udp(b"dns?", 40000, 53), proto=17, l4_checksum="as-given")), None),
        "udp checksum 0 over IPv6: not allowed":
            (ethernet(ipv6(udp(b"q", 1, 2), next_header=17, l4_checksum="as-given"), ethertype=0x86DD), True),
        "cut by the snap length": (ethernet(ipv4(whole))[:90], None),
        "first of several fragments": (ethernet(ipv4(udp(b"z" * 64, 1, 2)[:32], proto=17, mf=True)), None),
        "a later fragment": (ethernet(ipv4(b"z" * 32, proto=6, frag_offset=64)), None),
        "ICMP is judged too (no pseudo-header)": (ethernet(ipv4(icmp(8, 0, 1, 1, b"ping"), proto=1)), False),
        "a wrong ICMP checksum": (ethernet(ipv4(icmp(8, 0, 1, 1, b"ping")[:2] + b"\0\0" + icmp(8, 0, 1, 1, b"ping")[4:],
                                                proto=1)), True),
        "UDP length shorter than the IP payload": (ethernet(ipv4(udp(b"abcd", 1, 2)[:4] + b"\0\x09\0\0abcd", proto=17)), None),
        "IPv6 atomic fragment": (ethernet(ipv6(ipv6_fragment(6, 9) + whole, next_header=44), ethertype=0x86DD), False),
        "IPv6 first of several fragments":
            (ethernet(ipv6(ipv6_fragment(6, 9, more=True) + whole, next_header=44), ethertype=0x86DD), None),
        "IPv6 options headers": (ethernet(ipv6(ipv6_ext(60) + ipv6_ext(6) + whole, next_header=0), ethertype=0x86DD), False),
        "IPv4 options": (ethernet(ipv4(whole, options=b"\x94\x04\0\0", l4_checksum="bad")), True),
    }
    got = verdicts([f for f, _ in frames.values()] + [ethernet(ipv4(whole))])[:-1]
    assert dict(zip(frames, got, strict=True)) == {name: want for name, (_, want) in frames.items()}


def test_a_tunnelled_packet_is_judged_by_its_inner_segment() -> None:
    def envelope(inner_how: str, outer_how: str) -> bytes:
        inner = ethernet(ipv4(tcp(b"GET /", flags="P.", options=syn_options()), l4_checksum=inner_how, **V4))
        outer = dict(src="192.168.0.1", dst="192.168.0.2", l4_checksum=outer_how)
        return sll2(ipv4(udp(vxlan(inner, 1), 51000, 8472), proto=17, **outer))

    frames = [envelope("good", "bad"), envelope("bad", "good"), envelope("good", "as-given"), envelope("bad", "as-given"),
              sll2(ipv4(udp(dns(), 40000, 53), proto=17))]
    assert verdicts(frames, LinkType.LINUX_SLL2) == [False, True, False, True, False]
    assert verdicts(frames, LinkType.LINUX_SLL2, snaplen=100) == [None, None, None, None, False]  # inner segment cut


def test_ordinary_traffic_is_judged_on_the_vector_path() -> None:
    frames = [sll2(ipv4(tcp(bytes(n), flags="P.", options=data_options()), l4_checksum=("good", "bad")[n % 2], **V4))
              for n in range(60)]
    batch = frame_batch(frames + frames[:1], LinkType.LINUX_SLL2)
    assert not slow_rows(batch, TUNNEL_PORTS)[:-1].any()
    assert verdicts(frames, LinkType.LINUX_SLL2) == [n % 2 == 1 for n in range(60)]


def _plain_sum(segment: bytes) -> int:
    return int.from_bytes(segment + b"\0" * (len(segment) % 2), "big") % 0xFFFF


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.lists(st.tuples(st.integers(8, 40), st.integers(1, 60)), max_size=12),
       st.lists(st.tuples(st.integers(0, 299), st.integers(1, 30)), max_size=2), st.sampled_from([0.0, 0.25, 2.0]))
def test_segment_sums_equal_the_definition(buf: bytes, layout: list[tuple[int, int]], strays: list[tuple[int, int]],
                                           gather_below: float) -> None:
    """Segments laid out in order with gaps, plus a few anywhere (overlaps, past the end): each summed right or declined;
    summed over the buffer (gather_below 0), gathered back to back first (2), or as the density says."""
    starts, lengths, pos = [], [], 0
    for gap, size in layout:
        pos += gap
        starts.append(pos)
        lengths.append(size)
        pos += size
    for start, size in strays:
        starts.append(start)
        lengths.append(size)
    data = np.frombuffer(buf, dtype=np.uint8)
    sums, done = segment_sums(data, np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64),
                              gather_below=gather_below)
    for i, (start, size) in enumerate(zip(starts, lengths, strict=True)):
        if done[i]:
            assert start + size <= len(buf) and sums[i] == _plain_sum(buf[start : start + size]), i
        elif start + size + 7 < (len(buf) & ~7) and not strays:
            raise AssertionError(f"segment {i} inside the buffer, among ordered ones, was declined")
