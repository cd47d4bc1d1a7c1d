"""tcpdump's relative TCP numbering undone: two captures that started at different points of one connection
give one packet the same numbers."""

from __future__ import annotations

import polars as pl

from cniscope.models import TUNNEL_PORTS
from cniscope.sources import InputInfo
from cniscope.sources.text.reader import iter_tables

# A BGP session already up when both captures started: node2's capture starts one packet later than node1's.
KEEPALIVE = ("08:00:00.000100 IP 192.168.0.12.38949 > 192.168.0.11.179: Flags [P.], seq 110996617:110996636, "
             "ack 3450413445, win 502, options [nop,nop,TS val 1 ecr 2], length 19: BGP")
ACK_OF_IT = ("08:00:00.000200 IP 192.168.0.11.179 > 192.168.0.12.38949: Flags [.], ack {ack}, win 509, "
             "options [nop,nop,TS val 3 ecr 1], length 0")
NEXT = ("08:00:30.000100 IP 192.168.0.12.38949 > 192.168.0.11.179: Flags [P.], seq {seq}, "
        "ack {ack}, win 502, options [nop,nop,TS val 30001 ecr 3], length 19: BGP")


def numbers(lines: list[str]) -> list[tuple[int | None, int | None]]:
    table = pl.concat(list(iter_tables(lines, InputInfo(index=0, name="t.txt"), ports=TUNNEL_PORTS)))
    return list(zip(table["seq"].to_list(), table["ack"].to_list(), strict=True))


def test_captures_started_at_different_packets_agree_on_the_numbers_tcpdump_showed():
    """As tcpdump prints the same three packets on node1 (from the keepalive) and two on node2 (from its ACK)."""
    node1 = [KEEPALIVE, ACK_OF_IT.format(ack=19), NEXT.format(seq="19:38", ack=1)]
    node2 = [ACK_OF_IT.format(ack=110996636), NEXT.format(seq="1:20", ack=0)]
    assert numbers(node1) == [(110996617, 3450413445), (None, 110996636), (110996636, 3450413445)]
    # node2's tcpdump took 192.168.0.12's base from the ACK's ack (110996636 - 1): that seq comes back; it took
    # 192.168.0.11's base from the ACK's own seq, which it never printed: that ack cannot be known (null, not 0)
    assert numbers(node2) == [(None, 110996636), (110996636, None)]


def test_absolute_numbers_printed_with_S_are_kept():
    lines = [KEEPALIVE, ACK_OF_IT.format(ack=110996636), NEXT.format(seq="110996636:110996655", ack=3450413445)]
    assert numbers(lines) == [(110996617, 3450413445), (None, 110996636), (110996636, 3450413445)]


def test_a_base_from_an_unprinted_seq_leaves_that_direction_unknown():
    """A bare ACK first: tcpdump took 192.168.0.11's first seq from it without printing it: null, not guessed."""
    lines = [ACK_OF_IT.format(ack=110996636),
             "08:00:00.000300 IP 192.168.0.11.179 > 192.168.0.12.38949: Flags [P.], seq 1:20, ack 1, win 509, length 19: BGP"]
    assert numbers(lines) == [(None, 110996636), (None, 110996636)]  # seq of an unknown base: null; ack made absolute


def test_a_banner_starts_a_new_tcpdump_run_and_new_bases():
    lines = [KEEPALIVE, "listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes",
             NEXT.format(seq="110996636:110996655", ack=3450413445)]  # a new run's first packet: printed as is
    assert numbers(lines)[1] == (110996636, 3450413445)
