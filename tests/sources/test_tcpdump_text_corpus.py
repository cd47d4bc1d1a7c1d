"""The tcpdump text reader on the seed capture and every text capture of the corpus (tests/data/corpus).

Each file must read with no unparsed line and one row per packet it shows;
representative packets have their fields pinned (values read off the text by hand).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from cniscope.models import TUNNEL_PORTS
from cniscope.packets.schema import NAMES, SCHEMA, Clock, Direction, LinkType, Tunnel, ip4_value, mac_value
from cniscope.sources import InputInfo
from cniscope.sources.text.reader import iter_tables
from tests.paths import CORPUS, SEED

TIME_RE = re.compile(r"^\d\d:\d\d:\d\d\.\d{6} ")


def read(path: Path, batch_size: int = 65536) -> tuple[pl.DataFrame, InputInfo]:
    info = InputInfo(index=3, name=str(path), node="node3")
    with path.open(encoding="utf-8") as f:
        tables = list(iter_tables(f, info, batch_size, ports=TUNNEL_PORTS))
    return pl.concat(tables), info


def tod(text: str) -> int:
    h, m, s = text.split(":")
    sec, frac = s.split(".")
    return ((int(h) * 60 + int(m)) * 60 + int(sec)) * 1_000_000_000 + int(frac.ljust(9, "0"))


def row(df: pl.DataFrame, line: int) -> dict[str, object]:
    """The row of the packet that starts on this line."""
    rows = df.filter(pl.col("line") == line).to_dicts()
    assert len(rows) == 1, f"no single packet starts on line {line}"
    return rows[0]


def assert_fields(actual: dict[str, object], expected: dict[str, object]) -> None:
    wrong = {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}
    assert not wrong, f"(read, expected): {wrong}"


# rows == the packets each file shows (counted by hand; for the files with timestamps also
# checked against the number of timestamped lines below)
PACKETS = {
    "04-msazure-flannel-vxlan-e.txt": 8,
    "06-plantegg-flannel-vxlan-nnetvv.txt": 7,  # 4 plain + 3 VXLAN (outer 2 lines + inner 2 lines)
    "07-virtnest-calico-ipip-4ifaces.txt": 8,
    "10-inksnw-kuberouter-bgp-any-v.txt": 17,
    "12-fluxop-flannel-any-inout-dns.txt": 13,
    "14-cilium-vxlan-otv-vv.txt": 20,
    "22-weave3014-nodeport-any-dnat-snat.txt": 6,
}


def test_every_corpus_text_file_is_listed() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.txt")) == sorted(PACKETS)


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_corpus_file_reads_whole(name: str) -> None:
    path = CORPUS / name
    df, info = read(path)
    assert info.unparsed_lines == 0, [str(w) for w in info.warnings]
    assert len(df) == info.packets == PACKETS[name]
    timestamped = sum(1 for ln in path.read_text().splitlines() if TIME_RE.match(ln))
    if timestamped:
        assert len(df) == timestamped
    assert df.columns == list(NAMES)
    assert dict(df.schema) == SCHEMA
    assert df["frame"].to_list() == list(range(len(df)))
    assert df["input"].unique().to_list() == [3]
    assert df["node"].unique().to_list() == ["node3"]
    assert df["payload_digest"].null_count() == len(df)  # never from text
    assert df["line"].is_sorted() and df["line"].n_unique() == len(df)


def test_small_batches_give_the_same_table() -> None:
    path = CORPUS / "14-cilium-vxlan-otv-vv.txt"
    whole, _ = read(path)
    info = InputInfo(index=3, name=str(path), node="node3")
    with path.open() as f:
        batches = list(iter_tables(f, info, batch_size=3, ports=TUNNEL_PORTS))
    assert [len(b) for b in batches] == [3] * 6 + [2]
    assert pl.concat(batches).equals(whole)


def test_seed() -> None:
    df, info = read(SEED)
    assert len(df) == 15 and info.unparsed_lines == 0 and info.clock is Clock.TIME_OF_DAY
    assert_fields(row(df, 1), {
        "ts": tod("11:48:15.963401"), "ip_version": 4, "src": ip4_value("192.168.200.21"),
        "dst": ip4_value("10.244.3.10"), "proto": 6, "sport": 56888, "dport": 80, "tcp_flags": 0x02,
        "seq": 779547779, "ack": None, "win": 14600, "mss": 1460, "sack_ok": True, "tsval": 3019404299,
        "tsecr": 0, "wscale": 7, "payload_len": 0, "ip_id": None, "ttl": None, "tunnel": 0, "iface": None,
        "direction": None, "linktype": None, "info": None, "error": None,
    })
    assert_fields(row(df, 4), {"tcp_flags": 0x12, "seq": 1256154880, "ack": 779547780, "sport": 80,
                               "src": ip4_value("10.244.3.10"), "tsecr": 3019404299})
    # tcpdump's relative numbers after the handshake, made absolute again; `seq 1:76` -> the SYN's seq + 1, 75 bytes
    assert_fields(row(df, 10), {"tcp_flags": 0x18, "seq": 779547779 + 1, "ack": 1256154880 + 1, "payload_len": 75,
                                "info": "HTTP: GET / HTTP/1.1", "mss": None})
    assert_fields(row(df, 7), {"tcp_flags": 0x10, "seq": None, "ack": 1256154880 + 1, "win": 115})
    assert df["ts"].is_sorted()


def test_04_flannel_vxlan_with_link_headers() -> None:
    df, info = read(CORPUS / "04-msazure-flannel-vxlan-e.txt")
    assert info.clock is Clock.TIME_OF_DAY
    assert df["iface"].to_list() == ["veth822966d6"] * 2 + ["cni0"] * 2 + ["flannel.1"] * 2 + ["eth0"] * 2
    assert df["linktype"].unique().to_list() == [LinkType.ETHERNET]
    assert_fields(row(df, 3), {
        "eth_src": mac_value("0a:58:0a:f4:01:05"), "eth_dst": mac_value("0a:58:0a:f4:01:01"), "wirelen": 98,
        "ethertype": 0x0800, "src": ip4_value("10.244.1.5"), "dst": ip4_value("10.244.0.5"), "proto": 1,
        "icmp_type": 8, "icmp_code": 0, "icmp_id": 3584, "icmp_seq": 22, "payload_len": 56, "tunnel": 0,
    })
    vx = row(df, 15)
    assert_fields(vx, {
        "ts": tod("03:56:12.054767"), "tunnel": Tunnel.VXLAN, "vni": 1,
        "outer_src": ip4_value("172.16.0.5"), "outer_dst": ip4_value("172.16.0.4"),
        "outer_sport": 38330, "outer_dport": 8472, "outer_ttl": None,
        "eth_src": mac_value("00:0d:3a:a3:fa:d5"), "eth_dst": mac_value("12:34:56:78:9a:bc"), "wirelen": 148,
        "inner_eth_src": mac_value("8e:d0:f8:0a:41:19"), "inner_eth_dst": mac_value("76:34:2f:c5:51:ec"),
        "src": ip4_value("10.244.1.5"), "dst": ip4_value("10.244.0.5"), "proto": 1,
        "icmp_type": 8, "icmp_id": 3584, "icmp_seq": 400,
    })
    assert_fields(row(df, 17), {"outer_src": ip4_value("172.16.0.4"), "outer_sport": 56724, "icmp_type": 0,
                                "inner_eth_src": mac_value("76:34:2f:c5:51:ec"), "icmp_seq": 400})


def test_06_no_timestamps_verbose_link_headers() -> None:
    df, info = read(CORPUS / "06-plantegg-flannel-vxlan-nnetvv.txt")
    assert info.clock is Clock.NONE and df["ts"].null_count() == len(df)
    assert df["line"].to_list() == [3, 7, 9, 13, 17, 23, 27]
    assert_fields(row(df, 3), {
        "iface": "cni0", "eth_src": mac_value("22:d8:63:6c:e8:96"), "wirelen": 614, "tos": 0, "ttl": 64,
        "ip_id": 53303, "df": True, "mf": False, "frag_offset": 0, "proto": 6, "ip_len": 600,
        "sport": 40712, "dport": 3100, "seq": 150533649, "payload_len": 548, "ack": 3441674662,
        "l4_csum_bad": True, "tsval": 1239838869, "tsecr": 2297983667, "tunnel": 0,
    })
    # outer line 9-10 (bad udp cksum), inner frame lines 11-12: one row
    assert_fields(row(df, 9), {
        "tunnel": Tunnel.VXLAN, "vni": 1, "outer_src": ip4_value("10.176.3.245"),
        "outer_dst": ip4_value("10.176.4.245"), "outer_sport": 45173, "outer_dport": 8472,
        "outer_ttl": 64, "outer_ip_id": 33722, "outer_len": 953, "wirelen": 967,
        "eth_src": mac_value("0c:42:a1:db:b1:a8"), "inner_eth_src": mac_value("a2:06:5e:83:44:78"),
        "ttl": 63, "ip_id": 53539, "ip_len": 903, "seq": 150613328, "payload_len": 851, "l4_csum_bad": True,
    })
    assert_fields(row(df, 13), {"outer_ttl": 61, "ip_id": 53631, "l4_csum_bad": False})
    assert_fields(row(df, 27), {"ttl": 62, "l4_csum_bad": False, "payload_len": 869})


def test_07_ipip_and_raw_tunl0() -> None:
    df, _ = read(CORPUS / "07-virtnest-calico-ipip-4ifaces.txt")
    assert df["linktype"].to_list() == [1] * 4 + [LinkType.RAW] * 2 + [1] * 2
    assert df["iface"].to_list()[4:6] == ["tunl0", "tunl0"]
    assert_fields(row(df, 11), {"tunnel": 0, "src": ip4_value("10.233.107.250"), "icmp_id": 23})
    assert_fields(row(df, 15), {
        "tunnel": Tunnel.IPIP, "outer_src": ip4_value("10.7.120.11"), "outer_dst": ip4_value("10.7.120.12"),
        "outer_sport": None, "vni": None, "src": ip4_value("10.233.107.250"), "dst": ip4_value("10.233.109.178"),
        "proto": 1, "icmp_type": 8, "icmp_id": 24, "icmp_seq": 0, "payload_len": 56, "iface": "ens192",
    })
    assert "ipip" not in str(row(df, 15)["info"])
    assert_fields(row(df, 16), {"tunnel": Tunnel.IPIP, "outer_src": ip4_value("10.7.120.12"), "icmp_type": 0})


def test_10_bgp_verbose_decode_is_one_row_per_packet() -> None:
    df, info = read(CORPUS / "10-inksnw-kuberouter-bgp-any-v.txt")
    assert len(df) == 17
    assert df["linktype"].unique().to_list() == [LinkType.LINUX_SLL] and df["iface"].null_count() == 17
    assert df["l4_csum_bad"].to_list() == [True] * 17
    assert_fields(row(df, 2), {"ttl": 64, "ip_id": 26890, "ip_len": 60, "df": True, "seq": 3986906876,
                               "mss": 1460, "wscale": 10, "tsval": 3629793029, "dport": 179})
    assert_fields(row(df, 8), {"info": "BGP", "seq": 3986906876 + 1, "payload_len": 70, "ip_len": 122, "ip_id": 26892})
    # printed relative (seq 138, ack 161) to the handshake's numbers: 3060303424 (from .52) and 3986906876 (from .50)
    assert_fields(row(df, 88), {"ts": tod("08:11:51.777029"), "ttl": 255, "ip_id": 38622, "seq": 3060303424 + 138,
                                "payload_len": 23, "ack": 3986906876 + 161, "info": "BGP"})
    assert (df["info"] == "BGP").sum() == 8  # Open x2, Keepalive x2, Update x4


def test_12_any_with_directions_and_host_names() -> None:
    df, _ = read(CORPUS / "12-fluxop-flannel-any-inout-dns.txt")
    first = row(df, 1)
    assert_fields(first, {
        "tunnel": Tunnel.VXLAN, "vni": 1, "outer_src": None, "outer_dst": None, "outer_sport": 40651,
        "outer_dport": 8472, "src": ip4_value("10.244.13.2"), "dst": ip4_value("10.244.0.2"), "sport": 42747,
        "dport": 53, "proto": 17, "dns_id": 37725, "dns_qr": False, "payload_len": 96, "iface": None,
    })
    assert (first["outer_src_name"], first["outer_dst_name"]) == (
        "flux-user000001.internal.cloudapp.net", "flux-user000000.internal.cloudapp.net")
    assert "names:" not in str(first["info"])
    rest = df.filter(pl.col("line") > 2)
    assert rest["iface"].to_list() == ["flannel.1", "cni0", "veth78b87eb8"] * 2 + ["veth78b87eb8", "cni0", "flannel.1"] * 2
    In, Out, P = Direction.IN, Direction.OUT, Direction.OTHERHOST
    assert rest["direction"].to_list() == [In, Out, Out] * 2 + [P, In, Out] * 2
    assert rest["linktype"].unique().to_list() == [LinkType.LINUX_SLL2]
    assert_fields(row(df, 9), {"dns_id": 19821, "dns_qr": True, "payload_len": 163, "sport": 53, "dport": 55999})
    assert_fields(row(df, 12), {"dns_id": 57194, "dns_qr": True, "payload_len": 138})
    assert row(df, 9)["ts"] == row(df, 10)["ts"] == tod("10:34:40.776536")


def test_14_cilium_otv_verbose_and_the_dangling_header() -> None:
    df, info = read(CORPUS / "14-cilium-vxlan-otv-vv.txt")
    assert info.unparsed_lines == 0 and len(df) == 20
    # line 12: the published block ends with the first line of a -v header; its second line is missing.
    # It is a packet the file shows, so it is a row with what the header says, marked in `error`.
    dangling = row(df, 12)
    assert_fields(dangling, {"ts": tod("15:54:25.599107"), "ttl": 64, "ip_id": 13587, "ip_len": 84,
                             "df": False, "proto": 1, "src": None, "icmp_type": None})
    assert dangling["error"] is not None
    assert [w.where for w in info.warnings] == ["line 12", "line 13"]
    assert not info.damaged
    vx = row(df, 13)
    assert_fields(vx, {
        "tunnel": Tunnel.VXLAN, "vni": 27634, "outer_src": ip4_value("192.168.66.226"),
        "outer_dst": ip4_value("192.168.66.221"), "outer_sport": 60971, "outer_dport": 8472,
        "outer_ttl": 64, "outer_ip_id": 58330, "outer_len": 134, "ip_id": 35369, "ttl": 64, "ip_len": 84,
        "df": True, "src": ip4_value("10.244.1.154"), "dst": ip4_value("10.244.6.11"), "icmp_id": 502,
        "icmp_seq": 1878, "l4_csum_bad": None, "error": None,
    })
    assert df.filter(pl.col("tunnel") == Tunnel.VXLAN)["vni"].to_list() == [27634] * 8
    # lines 13-28: Node01's eth0 with no banner published: envelopes on UDP 8472 cannot have been captured on
    # cilium_vxlan, so the banner above is not carried over to them
    assert df["iface"].to_list() == ["cilium_vxlan"] * 6 + [None] * 4 + ["eth0"] * 4 + ["cilium_vxlan"] * 6
    assert "cannot have been captured on cilium_vxlan" in str(info.warnings[1])
    # from line 29 on Node02, whose clock reads 12 hours apart: another capture for clock alignment, unless
    # the user named the node (as `read` here does)
    assert df["node"].unique().to_list() == ["node3"]
    unnamed = InputInfo(index=0, name="14")
    with (CORPUS / "14-cilium-vxlan-otv-vv.txt").open() as f:
        nodes = pl.concat(list(iter_tables(f, unnamed, ports=TUNNEL_PORTS)))["node"].to_list()
    assert nodes == [None] * 10 + ["part 2"] * 10
    assert "11.9 h from the capture above" in str(unnamed.warnings[-1])
    assert_fields(row(df, 30), {"ts": tod("05:55:08.542658"), "icmp_seq": 2259})


def test_22_any_without_columns() -> None:
    df, _ = read(CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt")
    assert len(df) == 6
    assert df["seq"].to_list() == [3217769804] * 3 + [3480345282] * 3
    assert df["dport"].to_list()[:3] == [30080, 80, 80]
    assert_fields(row(df, 7), {"src": ip4_value("10.32.0.3"), "dst": ip4_value("10.128.0.4"), "sport": 80,
                               "mss": 1336, "ack": 3217769805, "tsval": 1436718, "linktype": LinkType.LINUX_SLL})
