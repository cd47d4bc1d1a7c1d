"""Acceptance: 10k generated packets, every link type and tunnel, decoded by cniscope equal what tshark decodes.

The frames (tests/packets/synth.py) are written as one pcap per link type and
as one pcapng holding all link types, read back end to end through
`cniscope.ingest.read`, and compared field by field with `tshark -T fields`
on the same files. tshark is told the tunnel ports (`-d udp.port==8472,vxlan`,
6081 geneve, and a 4-line Lua dissector for flannel's UDP backend on 8285),
and to verify TCP/UDP/ICMP checksums (`tcp.checksum.status`, `udp.checksum.status`, `icmp(v6).checksum.status`
against `l4_csum_bad`, here and on the corpus pcaps).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from cniscope.ingest import read
from cniscope.models import TUNNEL_PORTS
from cniscope.packets.decode import decode_batch, decode_batch_reference
from cniscope.packets.schema import Tunnel
from cniscope.sources import InputSpec
from tests.frames import frame_batch, write_pcap, write_pcapng
from tests.packets.synth import LINKTYPES, synth_frames
from tests.paths import CORPUS

N = 10_000
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

FLANNEL_LUA = """
local ip = Dissector.get("ip")
local flannel = Proto("flannel_udp", "flannel UDP backend")
function flannel.dissector(buf, pinfo, tree) return ip:call(buf, pinfo, tree) end
DissectorTable.get("udp.port"):add(8285, flannel)
"""

FIELDS = (
    "frame.protocols", "eth.src", "eth.dst", "vlan.id", "sll.pkttype", "sll.src.eth",
    "ip.src", "ip.dst", "ip.id", "ip.ttl", "ip.dsfield", "ip.len", "ip.hdr_len", "ip.flags.df", "ip.flags.mf",
    "ip.frag_offset", "ip.proto",
    "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.tclass", "ipv6.plen", "ipv6.fraghdr.ident", "ipv6.fraghdr.more",
    "ipv6.fraghdr.offset",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.window_size_value",
    "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm", "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr", "tcp.len",
    "udp.srcport", "udp.dstport", "udp.length",
    "icmp.type", "icmp.code", "icmp.ident", "icmp.seq", "icmp.mtu",
    "icmpv6.type", "icmpv6.code", "icmpv6.echo.identifier", "icmpv6.echo.sequence_number", "icmpv6.mtu",
    "vxlan.vni", "geneve.vni", "dns.id", "dns.flags.response", "tcp.checksum.status", "udp.checksum.status",
    "icmp.checksum.status", "icmpv6.checksum.status",
    "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.proto_ipv4",
)
TUNNEL_LAYERS = {"vxlan": Tunnel.VXLAN, "geneve": Tunnel.GENEVE, "flannel_udp": Tunnel.FLANNEL_UDP}
L3 = ("ip", "ipv6", "arp")
# tshark's checksum status -> l4_csum_bad: bad, good, unverified (not all captured), not present (UDP 0), illegal (UDP 0 over IPv6)
CHECKSUM_STATUS = {"0": True, "1": False, "2": None, "3": None, "4": True}


def tshark(path: Path, lua: Path) -> list[dict[str, list[str]]]:
    cmd = [
        "tshark", "-r", str(path), "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
        "-o", "tcp.relative_sequence_numbers:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE",
        "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-d", "udp.port==8472,vxlan", "-d", "udp.port==6081,geneve", "-X", f"lua_script:{lua}",
        "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
    ]
    for name in FIELDS:
        cmd += ["-e", name]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append({name: (v.split(",") if v else []) for name, v in zip(FIELDS, values, strict=True)})
    return rows


def _int(text: str) -> int:
    return int(text, 0)


def _ip4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def expected(t: dict[str, list[str]]) -> dict[str, object]:
    """Our columns as tshark sees them. Absent keys are not compared; None means must be null."""
    layers = t["frame.protocols"][0].split(":")

    def occurrence(field: str, layer_pos: int, layer: str | None = None) -> str | None:
        name = layer or field.split(".")[0]
        k = layers[:layer_pos].count(name)
        values = t[field]
        return values[k] if k < len(values) else None

    exp: dict[str, object] = {"l4_csum_bad": None}  # set below for a TCP/UDP packet
    tunnel_pos = next((i for i, name in enumerate(layers) if name in TUNNEL_LAYERS), None)
    tunnel = TUNNEL_LAYERS[layers[tunnel_pos]] if tunnel_pos is not None else Tunnel.NONE
    first_l3 = next((i for i, name in enumerate(layers) if name in L3), None)
    if tunnel is Tunnel.NONE and first_l3 is not None and layers[first_l3] == "ip" and layers[first_l3 + 1 : first_l3 + 2] == ["ip"]:
        tunnel, tunnel_pos = Tunnel.IPIP, first_l3
    exp["tunnel"] = int(tunnel)
    # the link layer
    if layers[0] == "eth":
        exp["eth_src"], exp["eth_dst"] = _mac(t["eth.src"][0]), _mac(t["eth.dst"][0])
        exp["vlan"] = _int(t["vlan.id"][0]) if "vlan" in layers[: first_l3 or len(layers)] else None
    elif layers[0] == "sll":
        exp["direction"] = _int(t["sll.pkttype"][0]) if _int(t["sll.pkttype"][0]) <= 4 else None
        exp["eth_src"] = _mac(t["sll.src.eth"][0])
        exp["vlan"] = _int(t["vlan.id"][0]) if "vlan" in layers[: first_l3 or len(layers)] else None
    # the envelope
    if tunnel is not Tunnel.NONE:
        exp["outer_src"], exp["outer_dst"] = _ip4(t["ip.src"][0]), _ip4(t["ip.dst"][0])
        exp["outer_ttl"], exp["outer_ip_id"], exp["outer_len"] = _int(t["ip.ttl"][0]), _int(t["ip.id"][0]), _int(t["ip.len"][0])
        if tunnel is not Tunnel.IPIP:
            exp["outer_sport"], exp["outer_dport"] = _int(t["udp.srcport"][0]), _int(t["udp.dstport"][0])
        if tunnel in (Tunnel.VXLAN, Tunnel.GENEVE):
            exp["vni"] = _int(t[f"{layers[tunnel_pos]}.vni"][0])
            inner_eth = layers.index("eth", tunnel_pos)
            exp["inner_eth_src"] = _mac(occurrence("eth.src", inner_eth))
            exp["inner_eth_dst"] = _mac(occurrence("eth.dst", inner_eth))
        start = tunnel_pos + 1
    else:
        exp["outer_src"] = exp["vni"] = exp["inner_eth_src"] = None
        start = 0
    l3 = next((i for i in range(start, len(layers)) if layers[i] in L3), None)
    if l3 is None:
        exp["ip_version"] = exp["arp_op"] = exp["proto"] = None
        return exp
    name = layers[l3]
    if name == "arp":
        exp["ip_version"] = None
        exp["arp_op"] = _int(occurrence("arp.opcode", l3))
        exp["arp_sha"] = _mac(occurrence("arp.src.hw_mac", l3))
        exp["arp_spa"] = _ip4(occurrence("arp.src.proto_ipv4", l3))
        exp["arp_tpa"] = _ip4(occurrence("arp.dst.proto_ipv4", l3))
        return exp
    exp["arp_op"] = None
    fragment_later = False
    if name == "ip":
        g = lambda f: occurrence(f, l3)  # noqa: E731
        exp.update(
            ip_version=4, src=_ip4(g("ip.src")), dst=_ip4(g("ip.dst")), ip_id=_int(g("ip.id")), ttl=_int(g("ip.ttl")),
            tos=_int(g("ip.dsfield")), ip_len=_int(g("ip.len")), df=g("ip.flags.df") == "1", mf=g("ip.flags.mf") == "1",
            frag_offset=_int(g("ip.frag_offset")) * 8, proto=_int(g("ip.proto")),
        )
        fragment_later = exp["frag_offset"] > 0
        l4_bytes = exp["ip_len"] - _int(g("ip.hdr_len"))
    else:
        g = lambda f: occurrence(f, l3)  # noqa: E731
        exp.update(
            ip_version=6, src6=g("ipv6.src"), dst6=g("ipv6.dst"), ttl=_int(g("ipv6.hlim")), tos=_int(g("ipv6.tclass")),
            ip_len=_int(g("ipv6.plen")) + 40, src=None,
        )
        if layers[l3 + 1 : l3 + 2] == ["ipv6.fraghdr"]:
            exp["ip_id"] = _int(g("ipv6.fraghdr.ident"))
            exp["frag_offset"] = _int(g("ipv6.fraghdr.offset")) * 8
            exp["mf"] = g("ipv6.fraghdr.more") == "1"
            fragment_later = exp["frag_offset"] > 0
        l4_bytes = None
    l4 = l3 + 1
    while l4 < len(layers) and layers[l4].startswith("ipv6."):
        l4 += 1
    above = layers[l4] if l4 < len(layers) else None
    if name == "ipv6" and above in ("tcp", "udp", "icmpv6"):
        exp["proto"] = {"tcp": 6, "udp": 17, "icmpv6": 58}[above]
    if fragment_later or above not in ("tcp", "udp", "icmp", "icmpv6"):
        exp["tcp_flags"] = exp["icmp_type"] = exp["payload_len"] = exp["l4_csum_bad"] = None
        if above != "ip" and tunnel is Tunnel.NONE:
            exp["sport"] = None
        return exp
    g = lambda f: occurrence(f, l4)  # noqa: E731
    exp["l4_csum_bad"] = CHECKSUM_STATUS[g(f"{above}.checksum.status") or "2"]
    if above == "tcp":
        flags = _int(g("tcp.flags")) & 0xFF
        exp.update(sport=_int(g("tcp.srcport")), dport=_int(g("tcp.dstport")), tcp_flags=flags, seq=_int(g("tcp.seq_raw")),
                   win=_int(g("tcp.window_size_value")), payload_len=_int(g("tcp.len")), icmp_type=None)
        exp["ack"] = _int(g("tcp.ack_raw")) if flags & 16 else None
        for col, field in (("mss", "tcp.options.mss_val"), ("wscale", "tcp.options.wscale.shift"),
                           ("tsval", "tcp.options.timestamp.tsval"), ("tsecr", "tcp.options.timestamp.tsecr")):
            value = g(field)
            exp[col] = _int(value) if value is not None else None
        exp["sack_ok"] = g("tcp.options.sack_perm") is not None
    elif above == "udp":
        exp.update(sport=_int(g("udp.srcport")), dport=_int(g("udp.dstport")), tcp_flags=None, icmp_type=None)
        if not exp.get("mf"):
            exp["payload_len"] = _int(g("udp.length")) - 8
        if "dns" in layers[l4:] and not exp.get("mf"):
            dns = layers.index("dns", l4)
            exp["dns_id"] = _int(occurrence("dns.id", dns))
            exp["dns_qr"] = occurrence("dns.flags.response", dns) == "1"
    else:
        p = above
        kind = _int(g(f"{p}.type"))
        exp.update(icmp_type=kind, icmp_code=_int(g(f"{p}.code")), tcp_flags=None, sport=None)
        if l4_bytes is not None:
            exp["payload_len"] = l4_bytes - 8
        ident = g("icmp.ident" if p == "icmp" else "icmpv6.echo.identifier")
        if kind in (0, 8, 128, 129):
            exp["icmp_id"] = _int(ident)
            exp["icmp_seq"] = _int(g("icmp.seq" if p == "icmp" else "icmpv6.echo.sequence_number"))
        mtu = g(f"{p}.mtu")
        exp["icmp_mtu"] = _int(mtu) if mtu is not None else None
        quoted = next((i for i in range(l4 + 1, len(layers)) if layers[i] in ("ip", "ipv6")), None)
        if quoted is not None:
            if layers[quoted] == "ip":
                exp["quoted_src"] = _ip4(occurrence("ip.src", quoted))
                exp["quoted_dst"] = _ip4(occurrence("ip.dst", quoted))
                exp["quoted_proto"] = _int(occurrence("ip.proto", quoted))
            q4 = layers[quoted + 1] if quoted + 1 < len(layers) else None
            if q4 in ("tcp", "udp"):
                exp["quoted_sport"] = _int(occurrence(f"{q4}.srcport", quoted + 1))
                exp["quoted_dport"] = _int(occurrence(f"{q4}.dstport", quoted + 1))
        else:
            exp["quoted_proto"] = None
    return exp


def mismatches(ours: pl.DataFrame, theirs: list[dict[str, list[str]]]) -> tuple[list[str], Counter]:
    assert ours.height == len(theirs)
    rows = ours.to_dicts()
    problems: list[str] = []
    compared: Counter = Counter()
    for i, (row, t) in enumerate(zip(rows, theirs, strict=True)):
        for column, value in expected(t).items():
            compared[column] += 1
            if row[column] != value:
                problems.append(f"frame {i} ({t['frame.protocols'][0]}): {column} ours={row[column]!r} tshark={value!r}")
    return problems, compared


@pytest.fixture(scope="module")
def capture_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("differential")
    frames = synth_frames(N, seed=7)
    lua = root / "flannel.lua"
    lua.write_text(FLANNEL_LUA)
    pcaps = []
    for linktype in LINKTYPES:
        subset = [f for lt, f in frames if lt == linktype]
        pcaps.append((linktype, subset, write_pcap(root / f"lt{int(linktype)}.pcap", subset, linktype)))
    order = [lt for lt, _ in frames]
    pcapng = write_pcapng(root / "all.pcapng", [(LINKTYPES.index(lt), f) for lt, f in frames],
                          [(f"if{int(lt)}", lt) for lt in LINKTYPES])
    return {"frames": frames, "pcaps": pcaps, "pcapng": pcapng, "order": order, "lua": lua}


def test_pcap_files_decode_as_tshark_does(capture_files: dict) -> None:
    total: Counter = Counter()
    for linktype, _subset, path in capture_files["pcaps"]:
        capture = read([InputSpec(str(path))])
        assert not capture.warnings
        assert capture.table["linktype"].unique().to_list() == [int(linktype)]
        problems, compared = mismatches(capture.table, tshark(path, capture_files["lua"]))
        assert problems == [], f"{len(problems)} mismatches, first: {problems[:20]}"
        total += compared
    # the comparison covered every family of columns, not just a few
    for column in ("eth_src", "vlan", "direction", "outer_src", "vni", "inner_eth_src", "src", "src6", "ip_id", "proto",
                   "tcp_flags", "mss", "wscale", "sack_ok", "tsval", "ack", "dns_id", "icmp_mtu", "quoted_src",
                   "quoted_sport", "arp_op", "payload_len", "l4_csum_bad"):
        assert total[column] > 50, column
    judged = Counter(row for _, subset, path in capture_files["pcaps"] for row in read([InputSpec(str(path))]).table["l4_csum_bad"])
    assert judged[True] > 500 and judged[False] > 2000 and judged[None] > 1000, judged  # both verdicts and "not checked"


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.pcap")), ids=lambda p: p.name[:2])
def test_corpus_checksums_as_tshark_verifies_them(path: Path, tmp_path: Path) -> None:
    lua = tmp_path / "flannel.lua"
    lua.write_text(FLANNEL_LUA)
    ours = read([InputSpec(str(path))]).table["l4_csum_bad"].to_list()
    theirs = [expected(t)["l4_csum_bad"] for t in tshark(path, lua)]
    assert ours == theirs


def test_pcapng_file_decodes_as_tshark_does(capture_files: dict) -> None:
    path = capture_files["pcapng"]
    capture = read([InputSpec(str(path))])
    assert not capture.warnings
    assert capture.table.height == N
    assert capture.table["iface"].to_list() == [f"if{int(lt)}" for lt in capture_files["order"]]
    problems, _ = mismatches(capture.table, tshark(path, capture_files["lua"]))
    assert problems == [], f"{len(problems)} mismatches, first: {problems[:20]}"


def test_the_c_decoder_equals_the_fallback_on_the_mix(capture_files: dict) -> None:
    frames = capture_files["frames"]
    batch = frame_batch([f for _, f in frames], [int(lt) for lt, _ in frames])
    fast = decode_batch(batch, 0, TUNNEL_PORTS)
    reference = decode_batch_reference(batch, 0, TUNNEL_PORTS)
    assert fast.equals(reference, null_equal=True)
    # the mix holds every tunnel and link type, or this test proves little
    assert set(fast["tunnel"].unique().to_list()) >= {int(t) for t in Tunnel}
    assert set(fast["linktype"].unique().to_list()) == {int(lt) for lt in LINKTYPES}
