"""Differential: tcpdump's own text of a pcap, read by the text reader, against the pcap read by
`cniscope.ingest.read` (binary reader + decoder), field by field.

Two sources of pcaps: a capture taken for real with tcpdump between two network
namespaces this test creates (ping + an HTTP exchange; needs root), and the
crafted pcaps of tests/data/text/make_fixtures.py (tunnels, ARP, IPv6, ICMP
errors, SLL/SLL2; no root needed). Every value the text shows must equal the
decoded one; the fields each flag makes tcpdump print must be shown.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from cniscope.ingest import read
from cniscope.models import TUNNEL_PORTS
from cniscope.sources import InputInfo, InputSpec
from cniscope.sources.text.reader import iter_tables
from tests.netns import stop_tcpdump
from tests.paths import CORPUS
from tests.sources import protocol_mix
from tests.sources.textdiff import agreement, as_read, printed, read_text

DAY = 86400 * 10**9
HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "data" / "text" / "make_fixtures.py"

# columns the text can show; each is compared wherever the text has a value
COMPARED = (
    "iface direction linktype wirelen eth_src eth_dst vlan ethertype tunnel vni outer_src outer_dst outer_sport "
    "outer_dport outer_ttl outer_ip_id outer_len inner_eth_src inner_eth_dst ip_version src dst src6 dst6 ip_id "
    "ttl tos ip_len df mf frag_offset proto sport dport tcp_flags win mss wscale sack_ok tsval tsecr icmp_type "
    "icmp_code icmp_id icmp_seq icmp_mtu quoted_src quoted_dst quoted_proto quoted_sport quoted_dport dns_id "
    "dns_qr arp_op arp_sha arp_spa arp_tpa payload_len"
).split()
# what each flag must make visible in the text rows (IPv4 rows)
SHOWN = {"-v": ("ip_id", "ttl", "ip_len"), "-e": ("wirelen",), "": ("src", "dst", "proto", "ts")}
tcpdump = shutil.which("tcpdump")
needs_tcpdump = pytest.mark.skipif(tcpdump is None, reason="tcpdump is not installed")


def text_rows(pcap: Path, flags: list[str], netns: str | None = None) -> tuple[pl.DataFrame, InputInfo]:
    argv = ["tcpdump", "-r", str(pcap), *flags]
    if netns is not None:  # SLL2 names interfaces by index: print them where the capture was taken
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    info = InputInfo(index=0, name=f"tcpdump {' '.join(flags)}")
    tables = list(iter_tables(out.stdout.splitlines(), info, ports=TUNNEL_PORTS))
    assert info.unparsed_lines == 0, [str(w) for w in info.warnings]
    return pl.concat(tables), info


def compare(text: pl.DataFrame, decoded: pl.DataFrame, flags: list[str], skip: tuple[str, ...] = ()) -> None:
    assert len(text) == len(decoded), f"{len(text)} text rows, {len(decoded)} decoded"
    mismatches = []
    for name in COMPARED:
        if name in skip:
            continue
        shown = text[name].is_not_null()
        t, d = text[name].filter(shown), decoded[name].filter(shown)
        if not (t == d).fill_null(False).all():
            bad = (t != d).fill_null(True).arg_true()[0]
            mismatches.append(f"{name}: text {t[bad]!r} decoded {d[bad]!r} (row {shown.arg_true()[bad]})")
    # seq/ack: absolute with -S, else as the reader undoes tcpdump's relative numbering
    expected = as_read(decoded) if "-S" not in flags else list(zip(decoded["seq"], decoded["ack"]))
    for i, (seq, ack, (eseq, eack)) in enumerate(zip(text["seq"], text["ack"], expected)):
        if (seq is not None and seq != eseq) or (ack is not None and ack != eack):
            mismatches.append(f"seq/ack row {i}: text {seq}/{ack}, expected {eseq}/{eack}")
    assert not mismatches, mismatches
    # timestamps: -tt exact (to the microsecond printed), default = local time of day
    us = decoded["ts"] // 1000 * 1000
    if "-tt" in flags:
        assert (text["ts"] == us).all()
    elif "-ttt" in flags or "-ttttt" in flags:  # deltas summed by the reader, or time since the first packet
        assert (text["ts"] == us - us[0]).all()
    elif "-t" not in flags:
        offset = time.localtime().tm_gmtoff * 10**9
        assert (text["ts"] == (us + offset) % DAY).all()
    ipv4 = (text["ip_version"] == 4) & (text["linktype"] != 101).fill_null(True)  # RAW -e shows no length
    for flag, columns in SHOWN.items():
        if (flag in flags or not flag) and not (flag == "" and "-t" in flags):
            for name in columns:
                if name == "ts" and "-t" in flags:
                    continue
                assert text.filter(ipv4)[name].null_count() == 0, f"{flag or 'default'} should show {name}"


# --- a capture taken for real between two namespaces -------------------------------------------

# no ping(8) on this machine: 3 echo requests over a raw socket (bounded: 3 sends, 1 s each at most),
# then a UDP datagram to a closed port, which brings back an ICMP port unreachable quoting it
PINGER = """
import socket, struct, sys
from cniscope.packets.checksum import internet as csum
dst = sys.argv[1]
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
    s.settimeout(1)
    for seq in range(1, 4):
        body = struct.pack('!BBHHH', 8, 0, 0, 4242, seq) + bytes(range(48))
        s.sendto(body[:2] + struct.pack('!H', csum(body)) + body[4:], (dst, 0))
        s.recv(2048)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
    u.sendto(b'cst-txt probe', (dst, 9))
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


@pytest.fixture(scope="module")
def real_capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    d = tmp_path_factory.mktemp("txtdiff")
    os.chmod(d, 0o777)  # tcpdump drops privileges to user tcpdump before writing
    prefix = f"cst-txt-{os.getpid()}-"
    a, b = prefix + "a", prefix + "b"
    created: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
            created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", a, "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", b)
        sh("ip", "-n", a, "addr", "add", "10.231.7.1/24", "dev", "a0")
        sh("ip", "-n", b, "addr", "add", "10.231.7.2/24", "dev", "b0")
        sh("ip", "-n", a, "link", "set", "a0", "up")
        sh("ip", "-n", b, "link", "set", "b0", "up")
        (d / "www").mkdir()
        (d / "www" / "index.html").write_text("hello from cst-txt\n" * 40)
        server = subprocess.Popen(["ip", "netns", "exec", b, "python3", "-m", "http.server", "8080", "--bind",
                                   "10.231.7.2", "--directory", str(d / "www")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(server)
        eth, anyc = d / "eth.pcap", d / "any.pcap"
        for iface, path in (("a0", eth), ("any", anyc)):
            procs.append(subprocess.Popen(["ip", "netns", "exec", a, "tcpdump", "-i", iface, "-nn", "-U",
                                           "--immediate-mode", "-s", "65535", "-Z", "root", "-w", str(path)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + 60  # until both tcpdumps and the server are ready (a bound: a loaded machine is slow)
        while not (eth.exists() and anyc.exists() and subprocess.run(
                ["ip", "netns", "exec", a, "curl", "-s", "-o", "/dev/null", "--max-time", "1",
                 "http://10.231.7.2:8080/"], capture_output=True, timeout=5).returncode == 0):
            assert time.monotonic() < deadline, "tcpdump or the HTTP server did not start"
            time.sleep(0.1)
        subprocess.run(["ip", "netns", "exec", a, sys.executable, "-c", PINGER, "10.231.7.2"],
                       capture_output=True, timeout=10, check=True)
        subprocess.run(["ip", "netns", "exec", a, "curl", "-s", "-o", "/dev/null", "--max-time", "5",
                        "http://10.231.7.2:8080/index.html"], capture_output=True, timeout=10)
        for p in procs[1:]:
            stop_tcpdump(p)
        yield eth, anyc, a
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for ns in reversed(created):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=20)


REAL_FLAGS = [["-nn"], ["-nn", "-v"], ["-nn", "-e"], ["-nn", "-tt"], ["-nn", "-S", "-vv", "-e"], ["-n", "-t"]]


@pytest.mark.root
@pytest.mark.parametrize("flags", REAL_FLAGS, ids=" ".join)
def test_real_capture_text_equals_pcap(real_capture: tuple[Path, Path, str], flags: list[str]) -> None:
    eth, _, _ = real_capture
    decoded = read([InputSpec(str(eth))]).table
    assert (decoded["icmp_type"] == 8).sum() == 3 and (decoded["icmp_type"] == 3).sum() == 1
    assert (decoded["dport"] == 8080).sum() >= 5
    text, _ = text_rows(eth, flags)
    compare(text, decoded, flags, skip=("linktype",))  # `reading from file` goes to stderr: no banner here


@pytest.mark.root
@pytest.mark.parametrize("flags", [["-nn"], ["-nn", "-e", "-v"]], ids=" ".join)
def test_real_capture_on_any_text_equals_pcap(real_capture: tuple[Path, Path, str], flags: list[str]) -> None:
    _, anyc, ns = real_capture
    decoded = read([InputSpec(str(anyc))]).table
    text, _ = text_rows(anyc, flags, netns=ns)
    assert text["iface"].to_list() == ["a0"] * len(text)  # all the traffic went over the veth
    assert text["direction"].null_count() == 0
    assert set(text["direction"].unique()) >= {0, 4}  # In and Out on a0
    # the binary reader cannot name SLL2 interfaces from a pcap (indexes only): compare the rest
    compare(text, decoded, flags, skip=("iface", "linktype"))


# --- crafted pcaps: tunnels, ARP, IPv6, ICMP errors, SLL and SLL2 -------------------------------

def _fixtures_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("crafted")
    _fixtures_module().write_all(d)
    return {p.stem: p for p in d.glob("*.pcap")}


# row 15 of the SLL/SLL2 files is an 802.1Q frame inside the cooked header (libpcap puts the tag back there)
CRAFTED = [
    pytest.param(kind, flags, id=f"{kind} {' '.join(flags)}")
    for kind, flags in [("ether", ["-nn", "-v"]), ("ether", ["-nn", "-e", "-S"]), ("ether", ["-tt"]),
                        ("ether", ["-nn", "-t", "-vv"]), ("tunnel", ["-nn", "-e", "-v"]), ("tunnel", ["-nn"]),
                        ("sll1", ["-nn", "-e", "-v"]), ("sll2", ["-nn", "-e"]), ("extra", ["-nn"]),
                        ("extra", ["-nn", "-v"]), ("raw", ["-nn", "-e", "-v"]), ("raw", ["-nn", "-ttt"]),
                        ("ether", ["-nn", "-ttt"]), ("ether", ["-nn", "-ttttt"]), ("tunnel", ["-nn", "-ttttt"]),
                        ("tunnel", ["-nn", "-ttt"]), ("icmp6err", ["-nn"]), ("icmp6err", ["-nn", "-v"])]  # -ttt of the tunnel file: equal deltas, which never decrease either
]


@needs_tcpdump
@pytest.mark.parametrize(("kind", "flags"), CRAFTED)
def test_crafted_text_equals_pcap(crafted: dict[str, Path], kind: str, flags: list[str]) -> None:
    decoded = read([InputSpec(str(crafted[kind]))]).table
    text, _ = text_rows(crafted[kind], flags)
    # SLL2 names interfaces by index, and tcpdump names them from this machine's list
    compare(text, decoded, flags, skip=("iface", "linktype"))
    if kind == "tunnel":
        assert text["tunnel"].to_list() == decoded["tunnel"].to_list() == [1, 1, 2, 3]


# --- the corpus's real pcaps (Calico + PAN CN-Series, captured on a real cluster) -------------

CORPUS_PCAPS = sorted(CORPUS.glob("*.pcap"))


def test_the_corpus_has_pcaps() -> None:
    assert len(CORPUS_PCAPS) == 3


@needs_tcpdump
@pytest.mark.parametrize("flags", [["-nn"], ["-nn", "-v", "-e"], ["-tt", "-nn", "-S"], ["-nn", "-ttt"], ["-nn", "-ttttt"]],
                         ids=" ".join)
@pytest.mark.parametrize("pcap", CORPUS_PCAPS, ids=lambda p: p.name[:2])
def test_corpus_pcap_text_equals_pcap(pcap: Path, flags: list[str]) -> None:
    decoded = read([InputSpec(str(pcap))]).table
    text, _ = text_rows(pcap, flags)
    compare(text, decoded, flags, skip=("linktype",))


@needs_tcpdump
def test_icmp6_error_codes_and_quoted_ports_are_read_from_text(crafted: dict[str, Path]) -> None:
    text, _ = text_rows(crafted["icmp6err"], ["-nn"])
    assert text["icmp_type"].to_list() == [1] * 6 + [3] * 2 + [4] * 3
    assert text["icmp_code"].to_list() == [0, 1, 2, 3, 4, 4, 0, 1, 0, 1, 2]
    # tcpdump names the quoted transport only for an unreachable port
    assert text.select("quoted_proto", "quoted_dport").rows()[4:6] == [(17, 53), (6, 80)]


# --- every form users type, over a broad generated protocol mix (tests/sources/protocol_mix.py) ---------

# what users type: -nn and names, -e, -v/-vv, -# numbers, -q, every timestamp flag, and their combinations
FORMS = [
    "-nn", "", "-n", "-nn -e", "-e", "-nn -v", "-v", "-nn -vv", "-nn -#", "-#", "-# -tttt -e -v -nn", "-# -t -nn",
    "-# -ttt -nn", "-nn -q", "-q", "-q -e -nn", "-q -v -nn", "-nn -t", "-nn -tt", "-nn -ttt", "-nn -tttt",
    "-nn -ttttt", "-nn -e -v", "-nn -e -vv -tttt", "-nn -S -vv", "-e -v", "-t -e -vv -nn",
]
MIX_KINDS = protocol_mix.KINDS  # Ethernet (ARP, 802.1Q), -i any (LINUX_SLL2), raw IP, BSD loopback NULL and LOOP
# what a form must show where the capture has it (-e: a MAC where the link header has one, a length but on raw IP)
MUST_SHOW = {"": ("proto", "ip_version"), "-e": ("eth_src", "wirelen"), "-v": ("ttl", "ip_len")}
NO_MACS, NO_LENGTH = ("raw", "null", "loop"), ("raw",)


def allowed(flags: list[str]) -> set[str]:
    """Fields the text cannot give back whole in this form, and why.

    Without -v an IPv4 first fragment's `UDP, length 1600` is the datagram's length, which tcpdump prints as
    if the packet were whole: nothing in the line tells it is a fragment (with -v, `flags [+]` does).
    """
    return {"payload_len"} if not any(f.startswith("-v") for f in flags) else set()


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mix")
    return {kind: protocol_mix.write(d / f"{kind}.pcap", kind) for kind in MIX_KINDS}


def test_the_mix_has_every_protocol(mix: dict[str, Path]) -> None:
    t = read([InputSpec(str(mix["ether"]))]).table
    assert set(t["tunnel"].unique().to_list()) >= {0, 1, 2, 3}
    assert t.filter(pl.col("tunnel") > 0)["outer_src6"].null_count() < t.filter(pl.col("tunnel") > 0).height
    assert set(t["proto"].drop_nulls().unique().to_list()) >= {1, 6, 17, 47, 50, 58, 59}
    assert set(t["icmp_type"].drop_nulls().unique().to_list()) >= {0, 3, 8, 11, 2, 128, 129, 135, 136}
    assert (t["arp_op"].drop_nulls().unique().sort().to_list(), t["vlan"].drop_nulls().unique().to_list()) == ([1, 2], [100])
    assert t["dns_id"].null_count() < t.height and (t["mf"] | (t["frag_offset"] > 0)).sum() >= 4
    assert set(t["outer_l4_csum_bad"].unique().to_list()) == {None, False, True}
    for kind in MIX_KINDS:
        decoded = read([InputSpec(str(mix[kind]))])
        assert decoded.table["error"].null_count() == decoded.table.height and not decoded.warnings, kind


@needs_tcpdump
@pytest.mark.parametrize("form", FORMS, ids=lambda f: f or "names")
@pytest.mark.parametrize("kind", MIX_KINDS)
def test_every_form_reads_back_to_the_decoded_table(mix: dict[str, Path], kind: str, form: str) -> None:
    flags = form.split()
    decoded = read([InputSpec(str(mix[kind]))]).table
    text, info = read_text(printed(mix[kind], flags), f"tcpdump {form}")
    assert info.unparsed_lines == 0, [str(w) for w in info.warnings][:5]
    assert text.height == decoded.height
    agree, total, examples = agreement(text, decoded, flags, skip=("iface",))  # -i any: this machine's names
    wrong = {c for c in total if agree[c] < total[c]} - allowed(flags)
    assert not wrong, examples
    # and the fields the form prints were compared, not hidden from the comparison
    for flag, columns in MUST_SHOW.items():
        if not flag or flag in flags or (flag == "-v" and "-vv" in flags):
            for column in columns:
                no_length = kind in NO_LENGTH or (kind == "any" and "-q" in flags)
                if (column == "eth_src" and kind in NO_MACS) or (column == "wirelen" and no_length):
                    continue
                assert total[column] > 0, f"{form or 'names'} shows {column}"


HOSTS = "10.244.1.5 pod-a.example\n192.168.56.11 node-a.example\nfd00:10:244:2::7 pod6-b.example\n"


@pytest.mark.root
@needs_tcpdump
def test_names_tcpdump_resolved_stay_next_to_the_addresses(mix: dict[str, Path], tmp_path: Path) -> None:
    """tcpdump without -n, with hosts it can name: a private /etc/hosts in a mount namespace of its own."""
    from cniscope.journeys import summary
    from cniscope.packets.schema import address_text, ip4_value

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) for a private /etc/hosts")
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    script = f"mount --bind {hosts} /etc/hosts && tcpdump -r {mix['ether']}"
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert "pod-a.example" in out.stdout
    text, info = read_text(out.stdout, "tcpdump names")
    decoded = read([InputSpec(str(mix["ether"]))]).table
    assert info.unparsed_lines == 0 and text.height == decoded.height
    agree, total, examples = agreement(text, decoded, [], skip=("iface", "linktype"))  # stdout: no banner
    assert all(agree[c] == total[c] for c in total if c not in allowed([])), examples
    named = decoded["src"] == ip4_value("10.244.1.5")
    assert text.filter(named)["src_name"].unique().to_list() == ["pod-a.example"]
    assert text.filter(named)["src"].null_count() == named.sum()  # a name is not an address: null, not guessed
    assert text.filter(decoded["src6"] == "fd00:10:244:2::7")["src_name"].unique().to_list() == ["pod6-b.example"]
    envelopes = text.filter(decoded["outer_src"] == ip4_value("192.168.56.11"))
    assert envelopes.height and envelopes["outer_src_name"].unique().to_list() == ["node-a.example"]
    # shown wherever the address would go, never None
    rows = text.filter(named | (decoded["outer_src"] == ip4_value("192.168.56.11"))).to_dicts()
    assert all("None" not in summary(r) and "pod-a.example" in summary(r) for r in rows if r["tunnel"] == 0 and r["proto"] == 6)
    assert {address_text(r, "outer_src") for r in envelopes.to_dicts()} == {"node-a.example"}
