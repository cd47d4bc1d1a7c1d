"""tcpdump's text of a capture against cniscope's decode of the same capture, field by field.

Shared by the differential test (tests/sources/test_tcpdump_text_differential.py) and the agreement figures
(benchmarks/text_agreement.py). `agreement` counts, per column, the cells where the text and the decode agree,
among the cells where either has a value, leaving out only what the form never prints (`HIDDEN`) and
addresses tcpdump printed as names (the name columns hold them). A packet the text lost counts against every
field the decode has for it.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from cniscope.models import TUNNEL_PORTS
from cniscope.sources import InputInfo
from cniscope.sources.text.reader import iter_tables

DAY = 86400 * 10**9

# columns the text can show; each is compared wherever the text has a value
COMPARED = (
    "direction linktype wirelen eth_src eth_dst vlan ethertype tunnel vni outer_src outer_dst outer_src6 outer_dst6 "
    "outer_sport outer_dport outer_ttl outer_ip_id outer_len outer_l4_csum_bad inner_eth_src inner_eth_dst ip_version "
    "src dst src6 dst6 ip_id ttl tos ip_len df mf frag_offset proto sport dport tcp_flags seq ack win mss wscale "
    "sack_ok tsval tsecr l4_csum_bad icmp_type icmp_code icmp_id icmp_seq icmp_mtu quoted_src quoted_dst quoted_proto "
    "quoted_sport quoted_dport dns_id dns_qr arp_op arp_sha arp_spa arp_tpa payload_len"
).split()

# what a form never prints: without -e the link header, without -v the IP header's fields
NOT_WITHOUT = {
    "-e": ("eth_src", "eth_dst", "wirelen", "vlan", "inner_eth_src", "inner_eth_dst"),
    "-v": ("ip_id", "ttl", "tos", "ip_len", "df", "mf", "frag_offset", "outer_ttl", "outer_ip_id", "outer_len",
           "l4_csum_bad", "outer_l4_csum_bad", "quoted_src", "quoted_proto", "quoted_sport"),
}
# -q prints a TCP segment as `tcp 36` and leaves every UDP payload closed (DNS, envelopes)
QUIET = ("tcp_flags", "seq", "ack", "win", "mss", "wscale", "sack_ok", "tsval", "tsecr", "dns_id", "dns_qr", "l4_csum_bad",
         "outer_l4_csum_bad")
PACKET = COMPARED[COMPARED.index("ip_version") :]
NAMED = {"src": "src_name", "dst": "dst_name", "src6": "src_name", "dst6": "dst_name", "outer_src": "outer_src_name",
         "outer_dst": "outer_dst_name", "outer_src6": "outer_src_name", "outer_dst6": "outer_dst_name",
         "arp_spa": "src_name", "arp_tpa": "dst_name"}


def printed(pcap: Path, flags: Sequence[str], netns: str | None = None) -> str:
    """What the installed tcpdump prints for `pcap` with `flags`: the `reading from file` banner (stderr) and
    the packets (stdout), as a terminal shows them."""
    argv = ["tcpdump", "-r", str(pcap), *flags]
    if netns is not None:  # SLL2 names interfaces by index: print them where the capture was taken
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120)
    banner = [line for line in out.stderr.splitlines() if line.startswith("reading from file")]
    return "\n".join(banner + out.stdout.splitlines()) + "\n"


def read_text(text: str, name: str = "tcpdump") -> tuple[pl.DataFrame, InputInfo]:
    info = InputInfo(index=0, name=name)
    tables = list(iter_tables(text.splitlines(), info, ports=TUNNEL_PORTS))
    return (pl.concat(tables) if tables else pl.DataFrame()), info


def hidden(flags: Sequence[str]) -> set[str]:
    """The columns this form never prints."""
    out: set[str] = set()
    verbose = any(f.startswith("-v") for f in flags)
    link = any(f == "-e" or (f.startswith("-") and not f.startswith("--") and "e" in f[1:] and set(f[1:]) <= set("nevtq#")) for f in flags)
    if not link:
        out.update(NOT_WITHOUT["-e"])
    if not verbose:
        out.update(NOT_WITHOUT["-v"])
    if "-q" in flags:
        out.update(QUIET)
    return out


def as_read(decoded: pl.DataFrame, every_seq: bool = False) -> list[tuple[int | None, int | None]]:
    """seq/ack as the reader gives them from tcpdump's text without -S.

    tcpdump (print-tcp.c) numbers packets with ACK relative to the first such packet of their connection
    (or a SYN-ACK), printed as is; the reader adds the bases back, except a base taken from a packet whose
    seq tcpdump did not print (no payload, no SYN/FIN/RST): those seqs are null (not guessed).
    """
    bases: dict[tuple, tuple[int, bool]] = {}  # (from, to) -> (first seq, printed?)
    out: list[tuple[int | None, int | None]] = []
    for r in decoded.iter_rows(named=True):
        flags, seq, ack = r["tcp_flags"], r["seq"], r["ack"]
        if flags is None or not flags & 16 or r["proto"] != 6:
            out.append((seq, ack))
            continue
        src = (r["src"] if r["src"] is not None else r["src6"], r["sport"])
        dst = (r["dst"] if r["dst"] is not None else r["dst6"], r["dport"])
        if (src, dst) not in bases or flags & 2:
            bases[(src, dst)] = (seq, every_seq or (r["payload_len"] or 0) > 0 or bool(flags & 7))
            bases[(dst, src)] = ((ack - 1) % 2**32, True)
            out.append((seq, ack))
            continue
        base, shown = bases[(src, dst)]
        out.append((seq if shown else None, ack))
    return out


def expected(decoded: pl.DataFrame, flags: Sequence[str]) -> pl.DataFrame:
    """The decode as tcpdump prints it: seq/ack numbered as tcpdump numbers them, ts on the form's clock, and
    null where tcpdump prints nothing of a field for that packet (print-tcp.c, print-arp.c, print-icmp.c)."""
    vv = any(f.startswith("-vv") for f in flags)
    seq_ack = as_read(decoded, vv) if "-S" not in flags else list(zip(decoded["seq"], decoded["ack"], strict=True))
    us = decoded["ts"] // 1000 * 1000
    if "-tt" in flags or "-tttt" in flags:
        ts = us + (time.localtime().tm_gmtoff * 10**9 if "-tttt" in flags else 0)
    elif "-ttt" in flags or "-ttttt" in flags:
        ts = us - us[0]
    elif "-t" in flags:
        ts = pl.Series([None] * len(us), dtype=pl.Int64)
    else:
        ts = (us + time.localtime().tm_gmtoff * 10**9) % DAY
    verbose = any(f.startswith("-v") for f in flags)
    flags_col = pl.col("tcp_flags").fill_null(0)
    # tcpdump prints a TCP seq for data, SYN, FIN and RST only (-vv: always)
    seq_shown = (pl.col("payload_len").fill_null(0) > 0) | ((flags_col & 7) != 0) | vv
    # an ICMP error names the quoted destination (and a port unreachable its port) without -v; -v prints it all
    kind = pl.col("icmp_type")
    v4_unreach = (pl.col("ip_version") == 4) & (kind == 3)
    port_unreach = v4_unreach & (pl.col("icmp_code") == 3) & pl.col("quoted_proto").is_in([6, 17])
    v6_port = (pl.col("ip_version") == 6) & (kind == 1) & (pl.col("icmp_code") == 4)
    v4 = pl.col("ip_version") == 4  # ICMPv6 errors show their quoted packet's port only when unreachable
    keep_quoted = {
        "quoted_dst": v4_unreach if not verbose else v4,
        "quoted_dport": (port_unreach | v6_port) if not verbose else v4 | v6_port,
        "quoted_proto": (port_unreach | v6_port) if not verbose else v4 | v6_port,
        "quoted_sport": pl.lit(verbose) & v4,
    }
    table = decoded.with_columns(
        pl.Series("seq", [s for s, _ in seq_ack], dtype=pl.UInt32),
        pl.Series("ack", [a for _, a in seq_ack], dtype=pl.UInt32),
        ts.alias("ts"),
    )
    # a UDP checksum over IPv4 is checked with -vv only (over IPv6 with -v); -q leaves envelopes closed
    udp4 = (pl.col("ip_version") == 4) & (pl.col("proto") == 17)
    outer4 = pl.col("outer_src").is_not_null()
    icmp4 = (pl.col("ip_version") == 4) & (pl.col("proto") == 1)
    closed = pl.lit("-q" in flags) & pl.col("tunnel").is_in([1, 2, 4])
    v6_later_fragment = (pl.col("ip_version") == 6) & (pl.col("frag_offset").fill_null(0) > 0)
    table = table.with_columns(
        # ICMP over IPv4: -vv says `wrong icmp cksum` only when it is
        pl.when((~udp4 | vv) & ~(icmp4 & ~(pl.lit(vv) & pl.col("l4_csum_bad").fill_null(False))))
        .then(pl.col("l4_csum_bad")).alias("l4_csum_bad"),
        pl.when(~outer4 | vv).then(pl.col("outer_l4_csum_bad")).alias("outer_l4_csum_bad"),
        # raw IP has no link header to print a length from; -i any's with -q prints none
        pl.when(~pl.col("linktype").is_in([101, 228, 229, 12, 14] + ([113, 276] if "-q" in flags else [])))
        .then(pl.col("wirelen")).alias("wirelen"),
        pl.when(~v6_later_fragment).then(pl.col("proto")).alias("proto"),
        # tcpdump prints no more-fragments bit for IPv6
        pl.when((pl.col("ip_version") != 6) | (pl.col("ip_id").is_null())).then(pl.col("mf")).alias("mf"),
    )
    table = table.with_columns(
        pl.when(~closed).then(pl.col(name)).alias(name) for name in (*PACKET, "vni", "inner_eth_src", "inner_eth_dst", "ethertype")
    )
    return table.with_columns(
        pl.when(seq_shown | (pl.col("proto") != 6)).then(pl.col("seq")).alias("seq"),
        pl.when(pl.col("arp_op") != 1).then(pl.col("arp_sha")).alias("arp_sha"),  # a request names no MAC
        pl.when(pl.col("arp_op") != 2).then(pl.col("arp_tpa")).alias("arp_tpa"),  # a reply no target
        *(pl.when(keep).then(pl.col(name)).alias(name) for name, keep in keep_quoted.items()),
    )


def agreement(text: pl.DataFrame, decoded: pl.DataFrame, flags: Sequence[str],
              skip: Sequence[str] = ()) -> tuple[Counter[str], Counter[str], list[str]]:
    """Per column: cells that agree, cells compared; and the first few disagreements, described."""
    want = expected(decoded, flags)
    never = hidden(flags) | set(skip)
    agree: Counter[str] = Counter()
    total: Counter[str] = Counter()
    examples: list[str] = []
    n = min(text.height, want.height)
    for name in ["ts", *COMPARED]:
        if name in never:
            continue
        d = want[name][:n]
        t = text[name][:n] if name in text.columns else pl.Series([None] * n, dtype=d.dtype)
        considered = t.is_not_null() | d.is_not_null()
        if name in NAMED and NAMED[name] in text.columns:  # printed as a name: the address column stays null
            considered &= ~(t.is_null() & text[NAMED[name]][:n].is_not_null())
        same = ((t == d).fill_null(False) | (t.is_null() & d.is_null())) & considered
        total[name] += int(considered.sum())
        agree[name] += int(same.sum())
        if len(examples) < 12 and int(considered.sum()) != int(same.sum()):
            row = int((considered & ~same).arg_true()[0])
            examples.append(f"{name}: text {t[row]!r} decoded {d[row]!r} (row {row}, text line {text['line'][row]})")
        if want.height > n:  # packets the text lost
            total[name] += int(want[name][n:].is_not_null().sum())
    return agree, total, examples


def share(agree: Counter[str], total: Counter[str]) -> float:
    compared = sum(total.values())
    return sum(agree.values()) / compared if compared else 1.0
