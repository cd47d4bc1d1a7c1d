"""`analyze --filter`: tcpdump's primitives as one polars expression; every sighting of a selected packet kept."""

from __future__ import annotations

import polars as pl
import pytest
from click.testing import CliRunner

from cniscope import filters
from cniscope.analyze import analyze
from cniscope.cli import cli
from cniscope.inventory import load as load_inventory
from cniscope.packets.schema import conform, ip4_value
from cniscope.sources import InputSpec
from tests.paths import CORPUS, DATA, SEED

V4 = ip4_value
# one row per sighting: enough columns to tell every primitive apart
TABLE = conform(pl.DataFrame([
    {"node": "n1", "iface": "eth0", "ip_version": 4, "src": V4("10.244.1.5"), "dst": V4("10.96.0.10"), "proto": 6, "sport": 40000, "dport": 80},
    {"node": "n1", "iface": "flannel.1", "ip_version": 4, "src": V4("10.244.1.5"), "dst": V4("10.244.2.7"), "proto": 17, "sport": 5353, "dport": 53},
    {"node": "n2", "iface": "eth0", "ip_version": 4, "src": V4("10.244.2.7"), "dst": V4("10.244.1.5"), "proto": 1,
     "outer_src": V4("192.168.1.12"), "outer_dst": V4("192.168.1.11"), "outer_sport": 33000, "outer_dport": 8472},
    {"node": "n2", "iface": "cni0", "arp_op": 1, "arp_spa": V4("10.244.2.1"), "arp_tpa": V4("10.244.2.7")},
    {"node": "n2", "iface": "eth0", "ip_version": 6, "src6": "fd00::1", "dst6": "fd00:1::2", "proto": 58},
    {"node": "n3", "iface": "eth0", "ip_version": 4, "src": V4("192.168.1.13"), "dst": V4("192.168.1.11"), "proto": 6, "sport": 443, "dport": 51000},
]))


def rows(text: str) -> list[int]:
    mask = TABLE.select(filters.compile(text).alias("m"))["m"].to_list()
    return [n for n, selected in enumerate(mask) if selected]


@pytest.mark.parametrize("text,expected", [
    ("host 10.244.1.5", [0, 1, 2]),
    ("src host 10.244.1.5", [0, 1]),
    ("dst host 10.244.1.5", [2]),
    ("host 192.168.1.12", [2]),  # the tunnel envelope is the packet's too
    ("host 10.244.2.1", [3]),  # and ARP's addresses
    ("host fd00::1", [4]),
    ("net 10.244.0.0/16", [0, 1, 2, 3]),
    ("dst net 192.168.1.0/24", [2, 5]),
    ("net fd00::/16", [4]),
    ("port 53", [1]),
    ("port 8472", [2]),
    ("src port 443", [5]),
    ("portrange 50000-60000", [5]),
    ("tcp", [0, 5]),
    ("udp", [1]),
    ("icmp", [2]),
    ("icmp6", [4]),
    ("arp", [3]),
    ("ip6", [4]),
    ("tcp port 80", [0]),
    ("udp and port 80", []),
    ("port 80 or 53", [0, 1]),  # a bare value repeats the last primitive, as in tcpdump
    ("not tcp and not arp", [1, 2, 4]),
    ("! (tcp || udp)", [2, 3, 4]),
    ("node n2 and iface eth0", [2, 4]),
    ("(node n1 or node n3) and tcp", [0, 5]),
    ("iface flannel.1 or icmp", [1, 2]),
])
def test_primitives_select_the_rows_tcpdump_would(text: str, expected: list[int]) -> None:
    assert rows(text) == expected


@pytest.mark.parametrize("text,said", [
    ("", "empty filter"),
    ("hots 10.0.0.1", "unknown word 'hots'"),
    ("host", "ends early"),
    ("host web", "not an IP address"),
    ("port http", "expected a number"),
    ("port 70000", "from 0 to 65535"),
    ("net 10.0.0.0/33", "expected a network"),
    ("(tcp or udp", "missing ')'"),
    ("tcp )", "unexpected ')'"),
    ("src node n1", "expected host, net, port or portrange"),
    ("pod nginx", "needs a cluster inventory"),
])
def test_mistakes_are_said_plainly(text: str, said: str) -> None:
    with pytest.raises(filters.FilterError, match=said.replace("(", r"\(").replace(")", r"\)")):
        filters.compile(text)


def test_pod_and_service_come_from_the_inventory() -> None:
    inventory = load_inventory(str(DATA / "inventory" / "seed-node3.yaml"))
    table = conform(pl.DataFrame([{"ip_version": 4, "src": V4("10.244.3.10"), "dst": V4("192.168.200.21")},
                                  {"ip_version": 4, "src": V4("192.168.200.21"), "dst": V4("10.96.0.10")}]))
    pick = lambda text: table.select(filters.compile(text, inventory).alias("m"))["m"].to_list()  # noqa: E731
    assert pick("pod nginx-7c5") == pick("pod default/nginx-7c5") == [True, False]
    assert pick("service default/nginx") == [False, True]
    with pytest.raises(filters.FilterError, match="no pod 'web'.*there are: default/nginx-7c5"):
        filters.compile("pod web", inventory)


def test_every_sighting_of_a_selected_packet_is_kept() -> None:
    """The NodePort call: 10.32.0.1 (the SNAT address) is in two sightings of each packet, yet all three are kept."""
    whole = analyze([InputSpec(str(CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt"))])
    part = analyze([InputSpec(str(CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt"))], select="host 10.32.0.1")
    assert part.table.height == whole.table.height == 6
    assert [len(j.hops) for j in part.journeys] == [3, 3]
    assert part.selection is not None and (part.selection.sightings, part.selection.flows) == (6, 1)
    none = analyze([InputSpec(str(CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt"))], select="udp")
    assert none.table.height == 0 and none.flows == [] and none.journeys_total == 0


def test_the_cli_filters_and_refuses_a_bad_filter_as_a_usage_error() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["analyze", "--json", "--filter", "tcp[13] & 2 != 0", f"node3={SEED}"], standalone_mode=False)
    assert isinstance(result.exception, filters.FilterError) and result.exception.exit_code == 2
    result = runner.invoke(cli, ["analyze", "--filter", "dst port 80", f"node3={SEED}"])
    assert result.exit_code == 0, result.output
    assert "selected by 'dst port 80': 9 of 15 sightings, 3 of 5 packets, 1 of 1 conversations (findings judge the selected packets only)" in result.output


def test_a_conversation_that_is_not_there_is_said_plainly() -> None:
    with pytest.raises(filters.FilterError, match=r"no conversation 7: the capture has 1 \(numbered 0 to 0\)"):
        analyze([InputSpec(str(SEED), "node3")], flow=7)
    assert [f.id for f in analyze([InputSpec(str(SEED), "node3")], flow=0).flows] == [0]
