"""unanswered, retransmission and reset on synthetic captures."""

from __future__ import annotations

import polars as pl

from cniscope.findings import requests
from cniscope.packets.schema import address_text, ip4_value
from cniscope.results import FindingKind, Severity
from tests.findings.two_nodes import (
    CLIENT,
    INTO_N1,
    INTO_N3,
    N1,
    OUT_OF_N1,
    OUT_OF_N3,
    V1,
    WEB,
    conversation,
)
from tests.findings.wire import (
    ACK,
    IN,
    OUT,
    PSH,
    RST,
    SYN,
    Wire,
    alarms,
    arp,
    icmp,
    of_kind,
    tcp,
    udp_dns,
)

DNS = "10.244.3.53"


def test_dns_queries_without_answer_count_retries_and_point_at_the_last_sighting() -> None:
    wire = Wire()
    conversation(wire, 0)
    for i in range(3):  # the same query id re-sent
        wire.path(udp_dns(CLIENT, 5353, DNS, 4242, answer=False, ip_id=50 + i), OUT_OF_N1 + INTO_N3[:2], 1_000_000 + i * 1_000_000)
    conversation(wire, 5_000_000, sport=40002)
    found = of_kind(wire.analyze(), FindingKind.UNANSWERED)
    assert len(found) == 1
    f = found[0]
    assert f.severity is Severity.ERROR
    assert (f.evidence.packets, f.evidence.retries) == (3, 2)  # one query id, re-sent twice
    assert (f.node, f.iface) == ("node3", "kube-bridge")


def test_answered_dns_and_echo_are_not_reported() -> None:
    wire = Wire()
    wire.path(udp_dns(CLIENT, 5353, DNS, 7, answer=False), OUT_OF_N1 + INTO_N3, 0)
    wire.path(udp_dns(DNS, 5353, CLIENT, 7, answer=True), OUT_OF_N3 + INTO_N1, 300)
    wire.path(icmp(CLIENT, WEB, 8, seq=1), OUT_OF_N1 + INTO_N3, 1000)
    wire.path(icmp(WEB, CLIENT, 0, seq=1), OUT_OF_N3 + INTO_N1, 1300)
    conversation(wire, 1_000_000)
    assert of_kind(wire.analyze(), FindingKind.UNANSWERED) == []


def test_only_the_queries_no_answer_matches_are_reported_with_how_many_were_sent() -> None:
    """Answers match queries by id, and only from the other end: the answer to id 1 leaves ids 2 and 3 (re-sent) missing."""
    wire = Wire()
    conversation(wire, 0)
    for n, dns_id in enumerate((1, 2, 3, 3)):
        wire.path(udp_dns(CLIENT, 5353, DNS, dns_id, answer=False, ip_id=60 + n), OUT_OF_N1 + INTO_N3, 1_000_000 + n * 1_000_000)
    wire.path(udp_dns(DNS, 5353, CLIENT, 1, answer=True), OUT_OF_N3 + INTO_N1, 1_500_000)
    conversation(wire, 9_000_000, sport=40002)
    found = of_kind(wire.analyze(), FindingKind.UNANSWERED)
    assert len(found) == 1
    f = found[0]
    assert (f.evidence.packets, f.evidence.sent, f.evidence.retries) == (3, 4, 1)
    assert f.title.endswith("no reply (3 of 4 sent)")


def test_a_one_way_capture_reports_missing_replies_only_as_a_warning() -> None:
    wire = Wire()
    for seq in range(1, 6):  # `tcpdump -i eth0 dst WEB`: only requests, a second apart
        wire.see(icmp(CLIENT, WEB, 8, seq=seq, ip_id=seq), N1, "eth0", OUT, seq * 1_000_000)
    found = of_kind(wire.analyze(), FindingKind.UNANSWERED)
    assert len(found) == 1
    assert found[0].severity is Severity.WARNING and found[0].evidence.notes == ("one_way",)
    assert found[0].evidence.packets == found[0].evidence.sent == 5  # as its conversation counts them, the last one too


def test_unanswered_arp() -> None:
    wire = Wire()
    for i in range(3):
        wire.see(arp(1, "10.244.1.11", "10.244.1.1"), N1, V1, IN, i * 1_000_000)
    wire.see(arp(1, "10.244.1.11", "10.244.1.12"), N1, V1, IN, 3_500_000)
    wire.see(arp(2, "10.244.1.12", "10.244.1.11"), N1, V1, OUT, 3_500_100)
    conversation(wire, 4_000_000)
    found = of_kind(wire.analyze(), FindingKind.UNANSWERED)
    assert [(f.key, f.evidence.addresses, f.evidence.packets, f.evidence.retries) for f in found] == [
        ("unanswered.arp", ("10.244.1.1", "10.244.1.11"), 3, 2)]


def test_on_one_interface_an_arp_request_for_an_address_that_sent_ip_packets_is_no_finding() -> None:
    """A bridge port floods the request but not the reply to another port: an address seen sending IP is alive."""
    wire = Wire()
    for i in range(2):
        wire.see(arp(1, "10.244.1.11", "10.244.1.1"), N1, V1, IN, i * 1_000_000)  # 10.244.1.1 sends IP below
        wire.see(arp(1, "10.244.1.11", "10.244.1.7"), N1, V1, IN, i * 1_000_000 + 500)  # 10.244.1.7 never does
    wire.see(icmp("10.244.1.1", CLIENT, 8, seq=1), N1, V1, OUT, 2_000_000)
    conversation(wire, 4_000_000)
    for row in wire.rows:
        row["linktype"] = 1  # Ethernet: a capture on one interface, not -i any
    found = of_kind(wire.analyze(), FindingKind.UNANSWERED)
    assert [(f.key, f.evidence.addresses) for f in found if f.key == "unanswered.arp"] == [
        ("unanswered.arp", ("10.244.1.7", "10.244.1.11"))]


def test_copies_on_several_interfaces_are_not_retransmissions_but_a_resend_is() -> None:
    wire = Wire()
    conversation(wire, 0)
    # the request's data segment is lost once after node1 and re-sent 200 ms later (new IP id)
    sport = 40000
    c, s = 1000 * sport + 81, 7000 * sport + 14  # where conversation() left both sides
    wire.path(tcp(CLIENT, sport, WEB, 80, PSH | ACK, c, s, ip_id=40, length=100), OUT_OF_N1, 1_000_000)
    wire.path(tcp(CLIENT, sport, WEB, 80, PSH | ACK, c, s, ip_id=41, length=100), OUT_OF_N1 + INTO_N3, 1_200_000)
    wire.path(tcp(WEB, 80, CLIENT, sport, ACK, s, c + 100, ip_id=42), OUT_OF_N3 + INTO_N1, 1_200_500)
    report = wire.analyze()
    found = of_kind(report, FindingKind.RETRANSMISSION)
    assert len(found) == 1
    assert found[0].evidence.packets == 1 and found[0].evidence.gaps_ms == (200,)
    assert found[0].evidence.interfaces == ("node1 eth0 Out",)  # where the original was last seen


def test_reset_by_the_server_is_a_refusal() -> None:
    wire = Wire()
    wire.path(tcp(CLIENT, 40000, WEB, 81, SYN, 100, ip_id=1), OUT_OF_N1 + INTO_N3, 0)
    wire.path(tcp(WEB, 81, CLIENT, 40000, RST | ACK, 0, 101, ip_id=0), OUT_OF_N3 + INTO_N1, 300)
    conversation(wire, 1_000_000)
    resets = of_kind(wire.analyze(), FindingKind.RESET)
    assert len(resets) == 1
    r = resets[0]
    assert r.evidence.addresses == ("10.244.3.10", CLIENT)  # sent by the server
    assert r.severity is Severity.WARNING and r.key == "reset.refused"
    assert (r.node, r.iface) == ("node3", "veth9f8e7d6c")


def test_the_seed_shape_three_copies_per_packet_raises_nothing() -> None:
    wire = Wire()
    node3 = [("node3", "eth0", IN), ("node3", "kube-bridge", OUT), ("node3", "veth9f8e7d6c", OUT)]
    back = [("node3", "veth9f8e7d6c", IN), ("node3", "kube-bridge", IN), ("node3", "eth0", OUT)]
    c = "192.168.200.21"
    wire.path(tcp(c, 56888, WEB, 80, SYN, 1, ip_id=1), node3, 0, step_us=100)
    wire.path(tcp(WEB, 80, c, 56888, SYN | ACK, 9, 2, ip_id=0), back, 400)
    wire.path(tcp(c, 56888, WEB, 80, ACK, 2, 10, ip_id=2), node3, 800)
    wire.path(tcp(c, 56888, WEB, 80, PSH | ACK, 2, 10, ip_id=3, length=77), node3, 900)
    wire.path(tcp(WEB, 80, c, 56888, ACK, 10, 79, ip_id=1), back, 1000)
    report = wire.analyze()
    assert alarms(report) == []
    assert of_kind(report, FindingKind.RETRANSMISSION) == []


def test_icmp_errors_quoting_an_unanswered_conversation_are_named_in_each_finding() -> None:
    from cniscope.packets.schema import ip4_value

    wire = Wire()
    conversation(wire, 0)
    other = "10.244.3.54"
    for n, (server, sport) in enumerate(((DNS, 5353), (other, 5354))):  # two unanswered conversations
        wire.path(udp_dns(CLIENT, sport, server, 4242, answer=False, ip_id=50 + n), OUT_OF_N1 + INTO_N3[:2], 1_000_000 + n * 1_000)
    quoted = dict(quoted_src=ip4_value(CLIENT), quoted_sport=5353, quoted_dst=ip4_value(DNS), quoted_dport=53, quoted_proto=17)
    wire.path(icmp(DNS, CLIENT, 3, icmp_code=3, ip_id=90, **quoted), OUT_OF_N3 + INTO_N1, 1_100_000)
    conversation(wire, 5_000_000, sport=40002)
    found = sorted(of_kind(wire.analyze(), FindingKind.UNANSWERED), key=lambda f: f.title)
    assert len(found) == 2
    said = [f.explanation for f in found if f"to {DNS}:53" in f.title]
    assert len(said) == 1 and f"ICMP errors quote this conversation: port unreachable from {DNS}." in said[0]
    assert not [f for f in found if "ICMP errors" in f.explanation and f"to {DNS}:53" not in f.title]


def test_a_senders_address_key_is_equal_where_its_text_is() -> None:
    """`requests._address_keys`: rows whose source address `Facts.addr` writes alike get one number, others differ:
    IPv4 addresses, IPv6 text (empty: none), names, a name that is an IPv4 address's text, none at all."""
    v4 = ip4_value("10.0.0.1")
    src = [v4, v4, None, None, None, None, None, None, None, ip4_value("10.0.0.2")]
    src6 = ["", None, "fd00::1", "fd00::1", "", None, None, None, "", None]
    names = [None, "x", None, "y", "10.0.0.1", "010.0.0.1", "web", None, None, "web"]
    frame = pl.DataFrame({"src": pl.Series(src, dtype=pl.UInt32), "src6": pl.Series(src6, dtype=pl.Categorical()),
                          "src_name": pl.Series(names, dtype=pl.Categorical())})
    texts = [address_text(row, "src") or None for row in frame.with_columns(pl.col("src6").replace("", None)).iter_rows(named=True)]
    keys = requests._address_keys(frame).to_list()
    assert texts[4] == texts[0] and texts[7] is None and texts[8] is None
    assert all((texts[a] == texts[b]) == (keys[a] == keys[b]) for a in range(len(src)) for b in range(len(src)))
    assert [k is None for k in keys] == [t is None for t in texts]
