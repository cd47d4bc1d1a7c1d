"""The node inventory: the real script run here, and what broken output gives."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cniscope.capture import nodeside
from cniscope.capture.interfaces import host_side, interface_table, merge_tables, parse_inventory


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is not installed")
def test_inventory_script_on_this_machine() -> None:
    done = subprocess.run(nodeside.inventory_argv(), capture_output=True, text=True, timeout=30, check=True)
    facts = parse_inventory(done.stdout)
    lo = next(entry for entry in facts.interfaces if entry["name"] == "lo")
    assert lo["index"] == 1 and lo["link_type"] == "loopback" and "127.0.0.1/8" in lo["addresses"]
    assert facts.uid is not None and facts.clock_ns and facts.clock_ns > 1_600_000_000 * 10**9
    assert facts.versions["iproute2"]
    assert facts.sysctls["net.ipv4.ip_forward"] in ("0", "1")
    assert interface_table(facts.interfaces)[0].name == "lo"
    assert facts.notes == [] or all("tcpdump" in note for note in facts.notes)



@pytest.mark.skipif(not (Path("/usr/sbin/ip").exists() and shutil.which("tcpdump")), reason="needs ip in /usr/sbin and tcpdump")
def test_inventory_finds_sbin_tools_on_a_plain_users_path(tmp_path: Path) -> None:
    """A login's PATH without the sbin directories (common for non-root users): `ip` is still found."""
    for tool in ("sh", "id", "cat", "grep", "date", "uname", "tcpdump"):
        (tmp_path / tool).symlink_to(shutil.which(tool))  # type: ignore[arg-type]
    done = subprocess.run(nodeside.inventory_argv(), capture_output=True, text=True, timeout=30, check=True,
                          env={"PATH": str(tmp_path)}, executable=str(tmp_path / "sh"))
    facts = parse_inventory(done.stdout)
    assert any(entry["name"] == "lo" for entry in facts.interfaces), done.stdout[:500]
    assert facts.versions["iproute2"] and facts.versions["tcpdump"]

LINKS = """[{"ifindex":1,"ifname":"lo","mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
{"ifindex":2,"link_index":9,"ifname":"eth0","mtu":1500,"link_type":"ether","address":"02:00:00:00:00:01","link_netnsid":0,"linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet","local":"192.168.0.1","prefixlen":24},{"family":"inet6","local":"fe80::1","prefixlen":64}]},
{"ifindex":3,"ifname":"kube-bridge","mtu":1500,"link_type":"ether","address":"02:00:00:00:00:02","linkinfo":{"info_kind":"bridge"},"addr_info":[]},
{"ifindex":4,"link_index":2,"ifname":"cali0123456789a","mtu":1500,"link_type":"ether","address":"ee:ee:ee:ee:ee:ee","linkinfo":{"info_kind":"veth"},"addr_info":[]}]"""
ROUTES = """[{"dst":"default","gateway":"192.168.0.254","dev":"eth0"},{"dst":"10.244.1.7","dev":"cali0123456789a","scope":"link"}]"""


def inventory(links: str = LINKS, routes: str = ROUTES, end: bool = True) -> str:
    parts = ["== uid", "1000", "== ssh", "10.0.0.9 51234 10.0.0.1 22", "== links", links, "== routes", routes,
             "== sysctl", "/proc/sys/net/ipv4/conf/eth0/rp_filter:2", "== tcpdump", "tcpdump version 4.99.3", "libpcap version 1.10.3 (with TPACKET_V3)"]
    return "\n".join(parts + (["== end"] if end else []))


def test_parse_keeps_index_name_mac_addresses_mtu_type_peer() -> None:
    facts = parse_inventory(inventory())
    eth0 = facts.by_index()[2]
    assert (eth0["name"], eth0["kind"], eth0["mac"], eth0["mtu"], eth0["peer_index"]) == ("eth0", "veth", "02:00:00:00:00:01", 1500, 9)
    assert eth0["addresses"] == ["192.168.0.1/24", "fe80::1/64"]
    assert facts.uid == 1000 and facts.ssh_connection == "10.0.0.9 51234 10.0.0.1 22"
    assert facts.sysctls == {"net.ipv4.conf.eth0.rp_filter": "2"}
    assert facts.versions == {"tcpdump": "4.99.3", "libpcap": "1.10.3"}
    assert facts.uplinks() == [2]
    no_default = parse_inventory(inventory(routes='[{"dst":"10.244.2.0/24","gateway":"192.168.0.2","dev":"eth0"},{"dst":"10.244.1.7","dev":"cali0123456789a"}]'))
    assert no_default.uplinks() == [2]
    table = interface_table(facts.interfaces)
    assert table[1].ipv4 == ("192.168.0.1/24",)  # IPv6 addresses do not go into if_IPv4addr
    assert table[0].mac is None  # loopback has no Ethernet address


def test_host_side_by_peer_index_then_by_route() -> None:
    facts = parse_inventory(inventory())
    assert host_side(facts, None, 4) == 4
    assert host_side(facts, "10.244.1.7", None) == 4
    assert host_side(facts, "10.244.9.9", 77) is None


def test_damaged_output_is_noted_not_raised() -> None:
    facts = parse_inventory(inventory(links='[{"ifindex":1,"ifn', end=False))
    assert facts.interfaces == []
    assert any("not JSON" in note for note in facts.notes)
    assert any("'end' missing" in note for note in facts.notes)
    assert parse_inventory("").notes


def test_interfaces_created_during_the_capture_are_added() -> None:
    start = parse_inventory(inventory()).interfaces
    late = start + [{"index": 9, "name": "veth0a0b0c0d"}]
    merged = merge_tables(start, [{"index": 2, "name": "renamed"}, *late[-1:]])
    assert [e["name"] for e in merged] == ["lo", "eth0", "kube-bridge", "cali0123456789a", "veth0a0b0c0d"]
