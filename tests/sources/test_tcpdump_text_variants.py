"""tcpdump text variants the corpus lacks, on fixtures printed by the real tcpdump.

tests/data/text/*.txt are tcpdump 4.99's own output for small crafted pcaps
(see make_fixtures.py there): the same packets in several flag combinations,
so the combinations must agree with each other wherever both show a field.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cniscope.models import TUNNEL_PORTS
from cniscope.packets.schema import NAMES, Clock, Direction, LinkType, Tunnel, ip4_value, mac_value
from cniscope.sources import InputInfo
from cniscope.sources.text.reader import iter_tables

DATA = Path(__file__).resolve().parent.parent / "data" / "text"
DAY = 86400 * 10**9


def parse(lines: list[str] | str) -> tuple[pl.DataFrame, InputInfo]:
    if isinstance(lines, str):
        lines = lines.splitlines()
    info = InputInfo(index=0, name="paste.txt")
    tables = list(iter_tables(lines, info, ports=TUNNEL_PORTS))
    return (pl.concat(tables) if tables else pl.DataFrame()), info


def fixture(name: str) -> tuple[pl.DataFrame, InputInfo]:
    df, info = parse((DATA / f"{name}.txt").read_text())
    assert info.unparsed_lines == 0, [str(w) for w in info.warnings]
    return df, info


def agree(a: pl.DataFrame, b: pl.DataFrame, skip: set[str]) -> list[str]:
    """Columns where both tables show a value and the values differ."""
    assert len(a) == len(b)
    bad = []
    for name in NAMES:
        if name in skip:
            continue
        both = a[name].is_not_null() & b[name].is_not_null()
        if not (a[name].filter(both) == b[name].filter(both)).all():
            bad.append(name)
    return bad


def test_flag_combinations_agree_and_add_fields() -> None:
    plain, _ = fixture("ether-nn")
    verbose, _ = fixture("ether-nn-v")
    link, _ = fixture("ether-nn-e")
    notime, info = fixture("ether-t-e-vv")
    assert len(plain) == 21
    position = {"line", "info"}  # -v moves lines and prints other decode text
    assert agree(plain, verbose, position) == []
    assert agree(plain, link, position) == []
    assert agree(verbose, notime, position | {"ts"}) == []
    # what each flag adds, and only then
    assert plain["ip_id"].null_count() == 21 and verbose["ip_id"].null_count() < 21
    assert plain["eth_src"].null_count() == 21 and link["eth_src"].null_count() == 0
    assert link["wirelen"].to_list()[:3] == [42, 42, 74]
    assert info.clock is Clock.NONE and notime["ts"].null_count() == 21


def test_timestamp_styles() -> None:
    tod, i1 = fixture("ether-nn")
    epoch, i2 = fixture("ether-tt")
    dated, i3 = fixture("ether-tttt")
    delta, i4 = fixture("ether-ttt-v")
    assert (i1.clock, i2.clock, i3.clock, i4.clock) == (Clock.TIME_OF_DAY, Clock.EPOCH, Clock.EPOCH, Clock.RELATIVE)
    assert epoch["ts"][0] == 1764132902_500000000
    assert epoch["ts"].to_list() == dated["ts"].to_list()  # -tttt read as UTC
    assert tod["ts"].to_list() == [t % DAY for t in epoch["ts"].to_list()]
    # -ttt prints deltas: summed they give the time since the first packet
    assert delta["ts"].to_list() == [t - epoch["ts"][0] for t in epoch["ts"].to_list()]


def test_names_instead_of_numbers() -> None:
    named, _ = fixture("ether-tt")
    numeric, _ = fixture("ether-nn")
    assert named["sport"].to_list() == numeric["sport"].to_list()  # .http, .domain, .http-alt
    assert named["dport"].to_list() == numeric["dport"].to_list()
    assert named["arp_sha"][1] == mac_value("0a:58:0a:f4:01:01")  # `is-at MAC (oui Unknown)`
    assert named["proto"][14] == 17  # a later fragment printed as `udp`


def test_arp() -> None:
    df, _ = fixture("ether-nn")
    req, rep = df.row(0, named=True), df.row(1, named=True)
    assert (req["arp_op"], req["arp_spa"], req["arp_tpa"], req["arp_sha"]) == (
        1, ip4_value("10.244.1.5"), ip4_value("10.244.1.1"), None)
    assert (rep["arp_op"], rep["arp_spa"], rep["arp_sha"]) == (2, ip4_value("10.244.1.1"), mac_value("0a:58:0a:f4:01:01"))
    assert req["ethertype"] == rep["ethertype"] == 0x0806
    assert req["ip_version"] is None and req["src"] is None


def test_icmp_errors_and_quoted_packets() -> None:
    plain, _ = fixture("ether-nn")
    verbose, _ = fixture("ether-nn-v")
    host, port, frag = (verbose.row(i, named=True) for i in (10, 11, 12))
    assert (host["icmp_type"], host["icmp_code"]) == (3, 1)
    assert (port["icmp_type"], port["icmp_code"]) == (3, 3)
    assert (frag["icmp_type"], frag["icmp_code"], frag["icmp_mtu"]) == (3, 4, 1450)
    # -v prints the quoted packet on the lines after
    assert (host["quoted_src"], host["quoted_dst"], host["quoted_proto"], host["quoted_sport"], host["quoted_dport"]) == (
        ip4_value("10.244.1.5"), ip4_value("10.244.9.9"), 17, 33434, 4000)
    assert (frag["quoted_dst"], frag["quoted_proto"], frag["quoted_sport"], frag["quoted_dport"]) == (
        ip4_value("10.244.0.5"), 6, 40000, 80)
    # without -v only what the message names
    p = plain.row(11, named=True)
    assert (p["quoted_src"], p["quoted_dst"], p["quoted_proto"], p["quoted_dport"]) == (
        None, ip4_value("10.244.9.9"), 17, 4000)
    assert plain["icmp_mtu"][12] == 1450
    ping = plain.row(9, named=True)
    assert (ping["icmp_type"], ping["icmp_id"], ping["icmp_seq"], ping["payload_len"]) == (8, 77, 1, 56)


def test_fragments_and_vlan() -> None:
    df, _ = fixture("ether-nn-v")
    first, second = df.row(13, named=True), df.row(14, named=True)
    assert (first["mf"], first["frag_offset"], first["ip_id"], first["sport"]) == (True, 0, 15, 5000)
    assert (second["mf"], second["frag_offset"], second["ip_id"], second["proto"], second["sport"]) == (False, 1480, 15, 17, None)
    link, _ = fixture("ether-nn-e")
    assert link["vlan"].to_list()[15] == 100 and link["vlan"].null_count() == 20
    assert link["ethertype"][15] == 0x0800


def test_ipv6() -> None:
    df, _ = fixture("ether-nn-v")
    echo, ns, syn, udp, too_big = (df.row(i, named=True) for i in range(16, 21))
    assert (echo["ip_version"], echo["src6"], echo["dst6"], echo["src"]) == (6, "fd00:10:244:1::5", "fd00:10:244::5", None)
    assert (echo["icmp_type"], echo["icmp_id"], echo["icmp_seq"], echo["ttl"], echo["ip_len"], echo["payload_len"]) == (
        128, 5, 1, 64, 104, 56)
    assert (ns["icmp_type"], ns["ttl"], ns["dst6"]) == (135, 255, "ff02::1:ff00:5")
    assert (syn["proto"], syn["sport"], syn["dport"], syn["mss"], syn["seq"]) == (6, 41000, 8080, 1460, 7000)
    assert (udp["proto"], udp["dport"], udp["payload_len"], udp["l4_csum_bad"]) == (17, 9999, 20, False)
    assert (too_big["icmp_type"], too_big["icmp_mtu"]) == (2, 1280)
    assert df["ethertype"].to_list()[16:] == [0x86DD] * 5


@pytest.mark.parametrize("name", ["tunnel-nn", "tunnel-nn-e-v", "tunnel-vxlan-n"])
def test_tunnels(name: str) -> None:
    df, _ = fixture(name)
    assert len(df) == 4
    vx, otv, gen, ipip = df.to_dicts()
    assert (vx["tunnel"], vx["vni"], vx["outer_dport"], vx["icmp_id"], vx["icmp_seq"]) == (Tunnel.VXLAN, 1, 4789, 3584, 400)
    assert (otv["tunnel"], otv["vni"], otv["outer_dport"]) == (Tunnel.VXLAN, 27634, 8472)
    for r in (vx, otv, gen):
        assert (r["outer_src"], r["outer_dst"]) == (ip4_value("172.16.0.5"), ip4_value("172.16.0.4"))
        assert (r["src"], r["dst"]) == (ip4_value("10.244.1.5"), ip4_value("10.244.0.5"))
    assert (ipip["tunnel"], ipip["outer_src"], ipip["src"], ipip["icmp_type"]) == (
        Tunnel.IPIP, ip4_value("10.7.120.11"), ip4_value("10.233.107.250"), 8)
    if name == "tunnel-vxlan-n":  # -T vxlan forces 6081 to print as VXLAN too
        return
    assert (gen["tunnel"], gen["vni"], gen["outer_dport"], gen["proto"], gen["sport"], gen["dport"]) == (
        Tunnel.GENEVE, 0xABCD, 6081, 6, 40000, 80)
    assert (gen["seq"], gen["payload_len"]) == (1001, 18)
    if name == "tunnel-nn-e-v":
        assert all(r["inner_eth_src"] == mac_value("8e:d0:f8:0a:41:19") for r in (vx, otv, gen))
        assert (vx["outer_ttl"], vx["outer_ip_id"], vx["outer_len"], vx["ttl"], vx["ip_id"]) == (64, 555, 134, 63, 4321)
        assert (ipip["outer_ip_id"], ipip["outer_len"], ipip["ip_id"], ipip["ip_len"]) == (558, 104, 777, 84)
        assert vx["eth_src"] == mac_value("00:0d:3a:a3:fa:d5") and vx["wirelen"] == 148


def test_any_with_link_headers_tcpdump_499() -> None:
    """`-i any -e` (LINUX_SLL2): `lo    Out ifindex 1 0a:58:.. ethertype IPv4 (0x0800), length 80: ...`."""
    df, _ = fixture("sll2-nn-e")
    plain, _ = fixture("sll2-nn")
    assert len(df) == len(plain) == 25
    assert df["linktype"].unique().to_list() == [LinkType.LINUX_SLL2]
    assert df["iface"].to_list()[:4] == ["lo", "ifb0", "lo", "ifb0"]
    order = [Direction.OUT, Direction.IN, Direction.OTHERHOST, Direction.OUT, Direction.BROADCAST, Direction.MULTICAST]
    assert df["direction"].to_list() == [order[i % 6] for i in range(25)]
    assert df["eth_src"][0] == mac_value("0a:58:0a:f4:01:05") and df["eth_dst"].null_count() == 25
    assert df["wirelen"].to_list()[:3] == [48, 48, 80]
    assert agree(df, plain, {"line", "eth_src", "wirelen", "info"}) == []
    assert plain["direction"].to_list() == df["direction"].to_list()
    assert df["tunnel"].to_list()[21:] == [Tunnel.VXLAN, Tunnel.VXLAN, Tunnel.GENEVE, Tunnel.IPIP]


def test_any_with_link_headers_before_499() -> None:
    """LINUX_SLL `-e`: the direction comes first, padded: `  P 0a:58:.. ethertype IPv4 (0x0800), ...`."""
    df, _ = fixture("sll1-nn-e-v")
    sll2, _ = fixture("sll2-nn-e")
    assert df["linktype"].unique().to_list() == [LinkType.LINUX_SLL]
    assert df["direction"].to_list() == sll2["direction"].to_list()
    assert df["iface"].null_count() == 25
    assert agree(df, sll2, {"line", "iface", "wirelen", "linktype", "info"}) == []
    assert (df["wirelen"] + 4 == sll2["wirelen"]).all()  # SLL header 16 bytes, SLL2 20


PASTE = """\
[root@node3 ~]# tcpdump -i any -nn port 80
tcpdump: data link type LINUX_SLL2
tcpdump: verbose output suppressed, use -v[v]... for full protocol decode
listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144 bytes
23:59:59.999000 eth0  In  IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1, win 100, length 0
00:00:00.001000 veth1 Out IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1, win 100, length 0
\x00\x01\x02garbage\xff line
^C
2 packets captured
3 packets received by filter
0 packets dropped by kernel
$ tcpdump -i eth0 -nn icmp
root@node3:~# tcpdump -i eth0 -nn icmp
dropped privs to tcpdump
tcpdump: listening on eth0, link-type EN10MB (Ethernet), capture size 262144 bytes

12:00:00.000000 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64
this is not tcpdump
"""


def test_prompts_trailers_garbage_and_midnight() -> None:
    df, info = parse(PASTE)
    assert len(df) == info.packets == 3
    assert info.unparsed_lines == 2
    assert [(w.where, w.level) for w in info.warnings] == [("line 7", "warning"), ("", "info"), ("", "info")]
    assert info.warnings[1].message == "1 line of text that is no tcpdump output skipped (line 18)"  # prose: no damage
    assert info.warnings[-1].message == "nodes named by the shell prompts that ran tcpdump: node3 (line 1)"
    assert df["node"].to_list() == ["node3"] * 3  # `$ tcpdump` names no host: the node stays
    assert info.damaged  # garbage is damage, yet every packet was kept
    assert df["line"].to_list() == [5, 6, 17]
    assert df["iface"].to_list() == ["eth0", "veth1", "eth0"]
    assert df["linktype"].to_list() == [LinkType.LINUX_SLL2, LinkType.LINUX_SLL2, LinkType.ETHERNET]
    # crossing midnight inside a capture: the day goes on; a new banner starts a new capture
    assert df["ts"].to_list() == [86399_999000000, 86400_001000000, 43200 * 10**9]


def test_a_paste_from_several_nodes_is_split_by_their_prompts() -> None:
    """Prompts that run tcpdump name the node (ssh / kubectl debug node); other prompts and commands do not."""
    paste = """\
admin@laptop:~$ kubectl debug node/node1 -it --image=nicolaka/netshoot
root@node1:/# tcpdump -i eth0 -nn icmp
12:00:00.000100 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64
root@node1:/# exit
[ec2-user@ip-10-0-1-5 ~]$ sudo -n tcpdump -i eth0 -nn icmp
12:00:00.000200 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64
root@node2:~# curl 10.0.0.1
root@node2:~#  tcpdump -nn -i any icmp
12:00:00.000300 eth0  In  IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64
"""
    df, info = parse(paste)
    assert df["node"].to_list() == ["node1", "ip-10-0-1-5", "node2"]
    assert df["iface"].to_list() == ["eth0", "eth0", "eth0"]  # from each prompt's -i (no banner was pasted)
    assert "node1 (line 2), ip-10-0-1-5 (line 5), node2 (line 8)" in info.warnings[-1].message
    tagged = InputInfo(index=0, name="paste.txt", node="nodeX")  # a node given by the user wins
    assert pl.concat(list(iter_tables(paste.splitlines(), tagged, ports=TUNNEL_PORTS)))["node"].to_list() == ["nodeX"] * 3


def test_binary_garbage_keeps_reading() -> None:
    lines = ["11:00:00.000001 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64"]
    lines += ["\ufffd\ufffd\x00PK\x03\x04" * 20] * 120
    lines += ["11:00:00.000002 IP 10.0.0.2 > 10.0.0.1: ICMP echo reply, id 1, seq 1, length 64"]
    df, info = parse(lines)
    assert df["icmp_type"].to_list() == [8, 0]
    assert df["line"].to_list() == [1, 122]
    assert info.unparsed_lines == 120
    assert len(info.warnings) == 51  # 50 one by one, then one count
    assert info.warnings[0].where == "line 2" and "70 more" in info.warnings[-1].message


def test_mixed_timestamp_styles_are_not_mixed_in_ts() -> None:
    df, info = parse([
        "1764132902.500000 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64",
        "12:00:00.000000 IP 10.0.0.2 > 10.0.0.1: ICMP echo reply, id 1, seq 1, length 64",
    ])
    assert info.clock is Clock.EPOCH
    assert df["ts"].to_list() == [1764132902_500000000, None]
    assert info.warnings[0].where == "line 2" and not info.damaged


def test_empty_and_only_noise() -> None:
    df, info = parse(["", "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes",
                      "0 packets captured"])
    assert len(df) == 0 and info.packets == 0 and info.unparsed_lines == 0 and info.clock is Clock.NONE


def test_oversized_numbers_become_null_not_errors() -> None:
    df, info = parse(["10:00:00.000000 IP 10.0.0.1.99999 > 10.0.0.2.80: Flags [S], seq 99999999999, win 70000, length 0"])
    r = df.row(0, named=True)
    assert (r["sport"], r["seq"], r["win"], r["dport"]) == (None, None, None, 80)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=80),
    st.sampled_from((DATA / "sll1-nn-e-v.txt").read_text().splitlines()
                    + (DATA / "tunnel-nn-e-v.txt").read_text().splitlines()).map(lambda s: s[: len(s) // 2] if len(s) % 3 == 0 else s),
), max_size=30))
def test_fuzz_never_raises(lines: list[str]) -> None:
    df, info = parse(lines)
    assert info.packets == len(df)
    assert info.unparsed_lines <= len(lines)


def test_ipv6_extension_headers() -> None:
    plain, _ = fixture("extra-nn")
    verbose, _ = fixture("extra-nn-v")
    mld, first, second = verbose.to_dicts()
    assert (mld["proto"], mld["icmp_type"], mld["ttl"], mld["ip_len"]) == (58, 143, 1, 76)  # behind HBH options
    assert (first["ip_id"], first["frag_offset"], first["sport"], first["dport"], first["proto"]) == (42, 0, 5000, 6000, 17)
    assert (second["ip_id"], second["frag_offset"], second["sport"], second["proto"]) == (42, 1448, None, None)
    # `UDP, length 1600` is the whole datagram's; `frag (0x2a:0|1448)` says this fragment carries 1448 - 8 of it
    assert first["payload_len"] == 1440
    # tcpdump prints every IPv6 fragment header, so none printed is offset 0; the more-fragments bit it never prints
    assert plain["frag_offset"].to_list() == [0, 0, 1448] and plain["ip_id"].null_count() == 3
    assert plain["mf"].to_list() == [False, None, None]
    assert plain["proto"][0] == 58 and plain["payload_len"][0] == 20


def test_raw_ip_lines() -> None:
    """tunl0-style LINKTYPE_RAW with -e: tcpdump prefixes each packet with `ip: `."""
    df, _ = fixture("raw-nn-e")
    verbose, _ = fixture("raw-nn-e-v")
    for d in (df, verbose):
        assert d["linktype"].to_list() == [LinkType.RAW] * 2
        assert d["ip_version"].to_list() == [4, 6]
        assert d["icmp_type"].to_list() == [8, 128]
    assert df["src"][0] == ip4_value("10.233.107.250") and df["icmp_id"][0] == 23
    assert (verbose["ip_id"][0], verbose["ttl"][1]) == (5, 64)


def test_negative_delta() -> None:
    df, info = parse([
        " 00:00:00.000000 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64",
        " 00:00:01.000000 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 2, length 64",
        "-00:00:00.250000 IP 10.0.0.2 > 10.0.0.1: ICMP echo reply, id 1, seq 1, length 64",
    ])
    assert info.clock is Clock.RELATIVE and info.unparsed_lines == 0
    assert df["ts"].to_list() == [0, 1_000_000_000, 750_000_000]


def test_lines_cut_anywhere_still_give_rows() -> None:
    """A paste cut in the middle of a line: every prefix of a packet line is a row or a skipped line."""
    full = "10:00:00.000000 eth0  Out IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [P.], seq 1:76, ack 1, win 115, " \
           "options [nop,nop,TS val 3019404303 ecr 3611468166], length 75: HTTP: GET / HTTP/1.1"
    for cut in range(16, len(full)):
        df, info = parse([full[:cut]])
        assert len(df) == 1 and info.unparsed_lines == 0, cut
    df, _ = parse([full[: full.index("Flags [") + 7]])
    assert (df["proto"][0], df["tcp_flags"][0]) == (6, None)


def test_binary_junk_after_the_first_lines_is_still_text(tmp_path: Path) -> None:
    """Through `read()`: a NUL byte near the start must not make the input look binary."""
    from cniscope.ingest import read
    from cniscope.sources import InputSpec
    from cniscope.sources.text.reader import starts_like_tcpdump

    good = (DATA / "ether-nn.txt").read_bytes()
    lines = good.splitlines(keepends=True)
    path = tmp_path / "paste.txt"
    path.write_bytes(b"".join(lines[:4]) + b"\x00\x01\x02\xff\xfe junk\n" + b"".join(lines[4:]))
    capture = read([InputSpec(str(path))])
    assert capture.inputs[0].format == "text"
    assert len(capture.table) == 21 and capture.inputs[0].unparsed_lines == 1
    assert [w.where for w in capture.warnings] == ["line 5"]
    assert starts_like_tcpdump(b"[root@node3 ~]# tcpdump -i any\n\x00")
    assert not starts_like_tcpdump(b"\x7fELF\x02\x01\x01\x00")
    assert not starts_like_tcpdump(b"")


def test_wrong_icmp_checksum() -> None:
    """tcpdump -vv on an echo request with a damaged checksum (its own output, copied)."""
    df, _ = parse([
        "04:55:02.500000 IP (tos 0x0, ttl 64, id 1, offset 0, flags [DF], proto ICMP (1), length 84)",
        "    10.244.1.5 > 10.244.0.5: ICMP echo request, id 77, seq 1, length 64 (wrong icmp cksum 559f (->9f)!)",
    ])
    r = df.row(0, named=True)
    assert (r["l4_csum_bad"], r["icmp_id"], r["icmp_seq"], r["payload_len"]) == (True, 77, 1, 56)


def test_byte_order_mark_and_crlf() -> None:
    df, info = parse(["\ufeff10:00:00.000001 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64\r\n",
                      "10:00:00.000002 IP 10.0.0.2 > 10.0.0.1: ICMP echo reply, id 1, seq 1, length 64\r\n"])
    assert info.unparsed_lines == 0 and df["icmp_type"].to_list() == [8, 0] and df["ts"][0] == 36000_000001000


@pytest.mark.parametrize("name", ["ether-nn-A", "ether-nn-v-A"])
def test_ascii_dumps(name: str) -> None:
    """-A prints each packet's bytes as ASCII lines after it (ARP's first, before any `E` line)."""
    dumped, info = fixture(name)
    plain, _ = fixture("ether-nn" if "-v" not in name else "ether-nn-v")
    assert info.warnings == []
    assert agree(dumped, plain, {"line", "info"}) == []
    assert dumped["src"].to_list() == plain["src"].to_list()


def test_printable_text_after_packets_without_dumps_is_reported() -> None:
    df, info = parse([
        "10:00:00.000001 ARP, Request who-has 10.0.0.1 tell 10.0.0.2, length 28",
        "Here the reply should have come",
        "10:00:00.000002 ARP, Request who-has 10.0.0.1 tell 10.0.0.2, length 28",
    ])
    assert len(df) == 2 and info.unparsed_lines == 1 and not info.damaged
    assert "1 line of text that is no tcpdump output skipped (line 2)" in [w.message for w in info.warnings]


# --- pasted segments: several runs joined without prompts ----------------------------------------------

RUN = """04:55:02.501462 IP 10.244.1.5.40000 > 10.244.0.5.80: Flags [S], seq 1000, win 64240, length 0
04:55:02.502193 IP 10.244.0.5.80 > 10.244.1.5.40000: Flags [S.], seq 5000, ack 1001, win 65160, length 0
04:55:02.502924 IP 10.244.1.5.40000 > 10.244.0.5.80: Flags [P.], seq 1:28, ack 1, win 502, length 27
"""
# the same connection seen later by a run that started in its middle: tcpdump numbers from its own first packet
LATER = """{t} IP 10.244.1.5.40000 > 10.244.0.5.80: Flags [P.], seq 1028:1100, ack 5001, win 502, length 72
{u} IP 10.244.1.5.40000 > 10.244.0.5.80: Flags [P.], seq 72:100, ack 1, win 502, length 28
"""


@pytest.mark.parametrize("between", ["\n", "now the other terminal:\n", "3 packets captured\n"])
def test_blank_or_prose_lines_or_a_trailer_start_another_capture(between: str) -> None:
    banner = "listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
    df, info = parse(banner + RUN + between + LATER.format(t="04:55:03.000000", u="04:55:03.100000"))
    # the second run's relative numbers count from its own first packet, not from the first run's
    assert df["seq"].to_list()[3:] == [1028, 1100] and df["ack"].to_list()[4] == 5001
    assert df["iface"].to_list() == ["eth0"] * 3 + [None] * 2  # the banner said nothing of the second run
    assert any("start of another capture" in w.message for w in info.warnings), info.warnings


def test_a_step_back_in_time_starts_another_capture_but_a_reordered_packet_does_not() -> None:
    df, info = parse(RUN + "04:55:02.502900 IP 10.244.0.5.80 > 10.244.1.5.40000: Flags [.], ack 28, win 509, length 0\n"
                     + LATER.format(t="04:50:00.000000", u="04:50:00.100000"))
    assert df["seq"].to_list()[4:] == [1028, 1100]
    notes = [w for w in info.warnings if "another capture" in w.message]
    assert [w.where for w in notes] == ["line 5"] and "the time steps back" in notes[0].message
    assert df["ack"].to_list()[3] == 28 + 1000  # 24 us out of order: the same run, its numbering kept


def test_captures_hours_apart_are_aligned_apart_and_a_named_node_wins() -> None:
    text = RUN + "\n" + LATER.format(t="17:48:38.000000", u="17:48:38.100000")
    df, info = parse(text)
    assert df["node"].to_list() == [None] * 3 + ["part 2"] * 2
    assert any("12.9 h from the capture above" in w.message for w in info.warnings)
    named = InputInfo(index=0, name="paste", node="node3")
    assert pl.concat(list(iter_tables(text.splitlines(), named, ports=TUNNEL_PORTS)))["node"].to_list() == ["node3"] * 5


def test_an_envelope_under_a_tunnel_device_banner_was_not_captured_there() -> None:
    banner = "listening on flannel.1, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
    inner = "10:00:00.000001 IP 10.244.1.5 > 10.244.0.5: ICMP echo request, id 1, seq 1, length 64\n"
    envelope = ("10:00:00.000002 IP 192.168.0.11.40000 > 192.168.0.12.8472: OTV, flags [I] (0x08), overlay 0, "
                "instance 1\nIP 10.244.1.5 > 10.244.0.5: ICMP echo request, id 1, seq 1, length 64\n")
    df, info = parse(banner + inner + envelope + inner.replace("01 IP", "03 IP"))
    assert df["tunnel"].to_list() == [0, 1, 0]
    assert df["iface"].to_list() == ["flannel.1", None, None]
    assert any("cannot have been captured on flannel.1" in w.message for w in info.warnings)


def test_packet_numbers_in_every_combination() -> None:
    plain, _ = fixture("ether-nn")
    lines = [ln for ln in (DATA / "ether-nn.txt").read_text().splitlines() if not ln.startswith("reading")]
    numbered = [f"{i + 1:5d}  {ln}" for i, ln in enumerate(lines)]
    df, info = parse(numbered)
    assert info.unparsed_lines == 0 and df.drop("line", "linktype").equals(plain.drop("line", "linktype"))
    # -# -t, -# -ttt (its own leading space), 5-digit numbers
    df, info = parse(["    1  IP 10.0.0.1.5 > 10.0.0.2.80: Flags [S], seq 1, win 5, length 0",
                      "    2   00:00:00.000100 IP 10.0.0.2.80 > 10.0.0.1.5: Flags [R.], seq 0, ack 2, win 0, length 0",
                      "123456  2026-11-26 04:55:02.500000 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64"])
    assert info.unparsed_lines == 3 - len(df) == 0
    assert df["proto"].to_list() == [6, 6, 1]


def test_quiet_form() -> None:
    df, info = parse(["04:55:02.503462 IP 10.244.1.5.46656 > 10.244.1.9.80: tcp 0",
                      "04:55:02.503463 IP 10.244.1.5.46656 > 10.244.1.9.80: tcp 36",
                      "04:55:02.503464 IP 192.168.0.1.40000 > 192.168.0.2.8472: UDP, length 84",
                      "04:55:02.503465 0a:58:0a:f4:01:05 > 0a:58:0a:f4:02:07, IPv6, length 106: fd00::1 > fd00::2: "
                      "10.244.1.5.41126 > 10.244.1.9.80: tcp 0"])
    assert info.unparsed_lines == 0
    assert df["proto"].to_list() == [6, 6, None, 6] and df["payload_len"].to_list() == [0, 36, None, 0]
    # an envelope -q does not open: the envelope is kept, the packet inside stays unknown
    assert df["tunnel"].to_list() == [0, 0, Tunnel.VXLAN, Tunnel.IPIP]
    assert (df["outer_dport"][2], df["src"][2], df["outer_dst6"][3]) == (8472, None, "fd00::2")


def test_damaged_headers_keep_what_the_line_says_and_unconverted_times_are_read() -> None:
    df, info = parse(["22:13:20.000000 IP truncated-ip - 74 bytes missing! 10.0.0.1.80 > 10.0.0.2.5000: Flags [P.], "
                      "seq 7:107, ack 9, win 64240, length 100: HTTP",
                      "22:13:20.000001 IP bad-len 0",
                      "[Error converting time] IP 10.0.0.1.80 > 10.0.0.2.5000: Flags [.], ack 9, win 64240, length 0",
                      "22:13:20.000002 IP 10.0.0.1 > 10.0.0.2: ESP(spi=0x000037b9,seq=0x1), length 72",
                      "22:13:20.000003 IP6 fd00::1 > fd00::2: no next header",
                      "22:13:20.000004 IP 10.0.0.1 > 10.0.0.2: GREv0, length 88: IP 10.1.0.1 > 10.1.0.2: ICMP echo "
                      "request, id 1, seq 1, length 64"])
    assert info.unparsed_lines == 0
    assert df["proto"].to_list() == [6, None, 6, 50, 59, 47]
    assert (df["sport"][0], df["payload_len"][0], df["ip_len"][1], df["ip_version"][1]) == (80, 100, 0, 4)
    assert df["ts"][2] is None and df["ts"][3] is not None
    assert any("Error converting time" in w.message for w in info.warnings)


IPV6_V_STYLES = {
    "4.99.3": "IP6 (hlim 255, next-header ICMPv6 (58) payload length: 32) :: > ff02::1:ffe1:f: ",
    "current": "IP6 (hlim 255, next-header ICMPv6 (58), payload length 32) :: > ff02::1:ffe1:f: ",
    "before 4.0": "IP6 (hlim 255, next-header: ICMPv6 (58), length: 32) :: > ff02::1:ffe1:f: ",
}


@pytest.mark.parametrize("style", IPV6_V_STYLES)
def test_ipv6_verbose_header_of_every_release(style: str) -> None:
    df, info = parse("10:00:00.000000 " + IPV6_V_STYLES[style]
                     + "[icmp6 sum ok] ICMP6, neighbor solicitation, length 32, who has fe80::1")
    assert info.unparsed_lines == 0
    r = df.row(0, named=True)
    assert (r["src6"], r["dst6"], r["proto"], r["ttl"], r["ip_len"], r["icmp_type"]) == ("::", "ff02::1:ffe1:f", 58, 255, 72, 135)


@pytest.mark.parametrize("name", ["ether-nn-v", "extra-nn-v"])
def test_the_current_tcpdump_style_reads_to_the_same_table(name: str) -> None:
    """tests/data/text/*-current.txt: the IPv6 -v header as tcpdump 4.99.4 and later print it (make_fixtures.py)."""
    older, _ = fixture(name)
    current, info = fixture(f"{name}-current")
    assert "payload length: " not in (DATA / f"{name}-current.txt").read_text()
    assert info.unparsed_lines == 0 and current.equals(older)
    assert older.filter(pl.col("ip_version") == 6)["ip_len"].null_count() == 0
