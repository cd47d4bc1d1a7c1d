"""Text that no tcpdump printed: addresses no IP stack has, control characters, lines of any length."""

from __future__ import annotations

import re

import pytest

from cniscope.models import TUNNEL_PORTS
from cniscope.sources import InputInfo
from cniscope.sources.text import grammar
from cniscope.sources.text.grammar import Packet, endpoint
from cniscope.sources.text.reader import iter_tables

GOOD = "12:00:00.000001 IP 10.0.0.1.1 > 10.0.0.2.2: UDP, length 1\n"


def read_text(text: str) -> tuple[list[dict], InputInfo]:
    info = InputInfo(index=0, name="t.txt")
    rows = [row for table in iter_tables(text.splitlines(keepends=True), info, ports=TUNNEL_PORTS) for row in table.iter_rows(named=True)]
    return rows, info


@pytest.mark.parametrize("pair", ["192.16:.200.21.80 > 10.0.0.2.2", "10.0.0.1.80 > 10.0.0.300.2",
                                  "fd00::1.80 > fd00::zz.2", "fd00:::1.80 > fd00::2.2"])
def test_an_address_no_ip_stack_prints_is_warned_for_its_line(pair: str) -> None:
    rows, info = read_text(f"12:00:00.000000 IP {pair}: Flags [S], seq 1, win 100, length 0\n" + GOOD)
    assert [(r["sport"], r["dport"]) for r in rows] == [(1, 2)]  # the good line only
    (warning,) = info.warnings
    assert warning.where == "line 1" and warning.message == f"not an IP address, skipped: {pair!r}"
    assert info.damaged


@pytest.mark.parametrize(("token", "read"), [
    ("10.0.0.1.80", (0x0A000001, None, 80, None, None)),
    ("10.0.0.1", (0x0A000001, None, None, None, None)),
    ("010.0.0.001.0080", (0x0A000001, None, 80, None, None)),
    ("10.0.0.\u0661.53", (0x0A000001, None, 53, None, None)),  # digits of another script, as int() reads them
    ("10.0.0.1.http", (0x0A000001, None, 80, None, None)),
    ("10.0.0.1.65536", (0x0A000001, None, None, None, "65536")),  # no port: kept as printed
    ("10.0.0.1234.5", (None, None, 5, "10.0.0.1234", None)),  # four digits: a host name
    ("1..2.3", (None, None, 3, "1..2", None)),
    ("1.2.3.4.5.6", (None, None, 6, "1.2.3.4.5", None)),
    ("1.2.3.4.", (None, None, None, "1.2.3.4.", None)),
])
def test_an_ipv4_end_is_read_whatever_its_form(token: str, read: tuple[object, ...]) -> None:
    """The common `10.0.0.1.80` is read without the regex (grammar.endpoint): the same as with it."""
    assert endpoint.__wrapped__(token) == read


def test_an_octet_above_255_is_no_address() -> None:
    for token in ("10.0.0.256.80", "10.0.0.256", "999.0.0.1.80"):
        with pytest.raises(ValueError, match="an octet above 255"):
            endpoint.__wrapped__(token)


@pytest.mark.parametrize("pair", ["10.0.0.1.80 > 10.0.0.2.8080: ", "010.0.0.001.00080 > 10.0.0.2.0:   ",
                                  "10.0.0.\u0661.53 > 10.0.0.2.53:", "10.0.0.1.65536 > 10.0.0.2.53: ",
                                  "10.0.0.1.99999 > 10.0.0.2.53: ", "10.0.0.256.1 > 10.0.0.2.53: ", "10.0.0.1.http > 10.0.0.2.53: ", "10.0.0.1.5 > 10.0.0.2.6:"])
def test_the_common_pair_is_read_as_any_pair(pair: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_l3_line reads `10.0.0.1.80 > 10.0.0.2.8080: ` in one match (PAIR4_RE): the layer is parse_pair's."""
    packets = [Packet(line=1, ts=None, iface=None, direction=None, linktype=None, layers=[{}]) for _ in range(2)]
    grammar.parse_l3_line(pair + "UDP, length 1", packets[0])
    monkeypatch.setattr(grammar, "PAIR4_RE", re.compile(r"(?!)"))  # matches nothing: every pair through parse_pair
    grammar.parse_l3_line(pair + "UDP, length 1", packets[1])
    assert packets[0].layers == packets[1].layers and packets[0].layers[0]


def test_ipv6_addresses_come_out_in_canonical_form() -> None:
    rows, info = read_text("12:00:00.000000 IP6 fd00:0:0::01.80 > fd00::2.53: UDP, length 1\n")
    assert rows[0]["src6"] == "fd00::1" and not info.warnings
