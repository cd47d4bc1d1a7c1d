"""Text that no tcpdump printed: addresses no IP stack has, control characters, lines of any length."""

from __future__ import annotations

import pytest

from cniscope.models import TUNNEL_PORTS
from cniscope.sources import InputInfo
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


def test_ipv6_addresses_come_out_in_canonical_form() -> None:
    rows, info = read_text("12:00:00.000000 IP6 fd00:0:0::01.80 > fd00::2.53: UDP, length 1\n")
    assert rows[0]["src6"] == "fd00::1" and not info.warnings
