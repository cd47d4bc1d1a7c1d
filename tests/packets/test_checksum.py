"""TCP/UDP/ICMP checksum verification: `l4_csum_bad` of the C decoder and the fallback, and against the plain definition."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cniscope.packets.schema import LinkType
from tests.frames import (
    data_options,
    dns,
    ethernet,
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
    """`l4_csum_bad` of each frame, the C decoder held to the fallback's rows (see tests.packets.decoding)."""
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


def test_segments_of_every_length_and_parity_are_judged() -> None:
    frames = [sll2(ipv4(tcp(bytes(range(n)), flags="P.", options=data_options()), l4_checksum=("good", "bad")[n % 2], **V4))
              for n in range(60)]
    assert verdicts(frames, LinkType.LINUX_SLL2) == [n % 2 == 1 for n in range(60)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 0xFFFF), st.booleans(), st.binary(max_size=7), st.integers(0, 7))
def test_any_segment_with_any_checksum_is_judged_as_the_definition(payload: bytes, csum: int, v6: bool, trailer: bytes,
                                                                    shift: int) -> None:
    """Random payloads of every length and parity, any checksum field, bytes after the IP payload, and the frame at
    any alignment in the buffer: the C decoder's verdict is the definition's (and the fallback's: `decode`)."""
    segment = udp(payload, 40000, 9999)
    segment = segment[:6] + csum.to_bytes(2, "big") + segment[8:]
    packet = ipv6(segment, next_header=17, l4_checksum="as-given") if v6 else ipv4(segment, proto=17, l4_checksum="as-given", **V4)
    frame = ethernet(packet, ethertype=0x86DD if v6 else 0x0800) + trailer
    verdict = decode([bytes(14 + shift), frame, frame])["l4_csum_bad"][1]
    addresses = packet[8:40] if v6 else packet[12:20]
    pseudo = addresses + (len(segment).to_bytes(4, "big") + bytes((0, 0, 0, 17)) if v6 else bytes((0, 17)) + len(segment).to_bytes(2, "big"))
    whole = pseudo + segment + b"\0" * (len(segment) % 2)
    expected = None if csum == 0 and not v6 else int.from_bytes(whole, "big") % 0xFFFF != 0
    assert verdict is expected
