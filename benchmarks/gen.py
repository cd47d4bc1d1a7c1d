"""Generate large `tcpdump -i any`-style captures fast (numpy, no per-packet Python).

    python benchmarks/gen.py OUT.pcap --packets 1000000 [--snaplen 262144] [--vxlan-share 0.2] [--seed 1]

LINUX_SLL2 pcap (microsecond timestamps). TCP conversations of about 50
packets each, between pod addresses (10.244.N.x, pod on node N) and node
addresses (192.168.0.N); about `vxlan_share` of the packets belong to
pod-to-pod conversations across nodes and are VXLAN-encapsulated on UDP 8472
between the two nodes. Payloads 0-1400 bytes (about a third pure ACKs), TCP
timestamps in the Linux NOP NOP TS layout, SYN/FIN flags at both ends of each
conversation, sequence and acknowledgement numbers consistent per direction.
Frames longer than `snaplen` are cut (caplen < wirelen) as tcpdump -s does.

Each record's fixed part (record header, SLL2, [outer IPv4, UDP, VXLAN, inner
Ethernet], IPv4, TCP with options) is filled as a numpy structured array, then
scattered into the output buffer with one fancy assignment through a `V<k>`
view; payload bytes come from a tiled random block.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

LINKTYPE_SLL2 = 276
MAX_PAYLOAD = 1400
CHUNK = 500_000

_REC = [("ts_sec", "<u4"), ("ts_usec", "<u4"), ("incl", "<u4"), ("orig", "<u4")]
_SLL2 = [("l_proto", ">u2"), ("l_reserved", ">u2"), ("l_ifindex", ">u4"), ("l_hatype", ">u2"), ("l_pkttype", "u1"), ("l_halen", "u1"), ("l_addr", ">u8")]
_IP = [("vihl", "u1"), ("tos", "u1"), ("len", ">u2"), ("id", ">u2"), ("frag", ">u2"), ("ttl", "u1"), ("proto", "u1"), ("csum", ">u2"), ("src", ">u4"), ("dst", ">u4")]
_TCP = [("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"), ("doff", "u1"), ("flags", "u1"), ("win", ">u2"), ("t_csum", ">u2"), ("urp", ">u2"),
        ("nops", ">u2"), ("ts_kind", "u1"), ("ts_len", "u1"), ("tsval", ">u4"), ("tsecr", ">u4")]
_VXLAN = [("o_" + n, f) for n, f in _IP] + [("u_sport", ">u2"), ("u_dport", ">u2"), ("u_len", ">u2"), ("u_csum", ">u2"),
                                            ("vx_flags", ">u4"), ("vx_vni", ">u4"), ("e_dst", "V6"), ("e_src", "V6"), ("e_type", ">u2")]

PLAIN = np.dtype(_REC + _SLL2 + _IP + _TCP)  # 88 bytes
TUNNELLED = np.dtype(_REC + _SLL2 + _VXLAN + _IP + _TCP)  # 138 bytes
ENVELOPE = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14


def _checksum(words: list[np.ndarray]) -> np.ndarray:
    total = sum(w.astype(np.uint32) for w in words)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF).astype(np.uint16)


def _ip_fill(rec: np.ndarray, prefix: str, length: np.ndarray, ident: np.ndarray, proto: int, src: np.ndarray, dst: np.ndarray, df: bool) -> None:
    ttl = 64
    rec[prefix + "vihl"] = 0x45
    rec[prefix + "len"] = length
    rec[prefix + "id"] = ident
    rec[prefix + "frag"] = 0x4000 if df else 0
    rec[prefix + "ttl"] = ttl
    rec[prefix + "proto"] = proto
    rec[prefix + "src"] = src
    rec[prefix + "dst"] = dst
    rec[prefix + "csum"] = _checksum([np.full(len(rec), 0x4500), length, ident, np.full(len(rec), 0x4000 if df else 0),
                                      np.full(len(rec), (ttl << 8) | proto), src >> 16, src & 0xFFFF, dst >> 16, dst & 0xFFFF])


class Plan:
    """Per-packet values of the whole capture (a few arrays of `packets` entries)."""

    def __init__(self, packets: int, vxlan_share: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n = packets
        conversations = max(1, n // 50)
        self.conv = np.sort(rng.integers(0, conversations, n))  # conversations run one after another, interleaved a little
        self.conv = np.roll(self.conv, rng.integers(0, 50))
        self.reply = rng.random(n) < 0.5
        self.payload = np.where(rng.random(n) < 0.35, 0, rng.integers(1, MAX_PAYLOAD + 1, n)).astype(np.int64)
        conv_tunnel = rng.random(conversations) < vxlan_share
        self.tunnel = conv_tunnel[self.conv]
        node_a = rng.integers(1, 21, conversations)
        node_b = (node_a + rng.integers(1, 20, conversations) - 1) % 20 + 1
        pod_a = (10 << 24) | (244 << 16) | (node_a << 8) | rng.integers(2, 250, conversations)
        pod_b = (10 << 24) | (244 << 16) | (node_b << 8) | rng.integers(2, 250, conversations)
        node_addr_b = (192 << 24) | (168 << 16) | node_b
        peer = np.where(conv_tunnel, pod_b, node_addr_b)  # pod to pod across nodes (tunnelled), or pod to node
        a, b = pod_a[self.conv].astype(np.uint32), peer[self.conv].astype(np.uint32)
        self.src = np.where(self.reply, b, a)
        self.dst = np.where(self.reply, a, b)
        node_of = lambda addr: ((192 << 24) | (168 << 16) | ((addr >> 8) & 0xFF)).astype(np.uint32)  # noqa: E731
        self.outer_src, self.outer_dst = node_of(self.src), node_of(self.dst)
        port_a = rng.integers(32768, 61000, conversations)[self.conv]
        port_b = rng.choice(np.array([80, 443, 8080, 6443, 10250]), conversations)[self.conv]
        self.sport = np.where(self.reply, port_b, port_a).astype(np.uint16)
        self.dport = np.where(self.reply, port_a, port_b).astype(np.uint16)
        # sequence numbers: per (conversation, direction) the running sum of earlier payloads
        key = self.conv * 2 + self.reply
        order = np.argsort(key, kind="stable")
        sorted_key, sorted_len = key[order], self.payload[order]
        running = np.cumsum(sorted_len) - sorted_len
        group_start = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
        starts = np.repeat(running[group_start], np.diff(np.r_[group_start, n]))
        offset_in_dir = np.empty(n, dtype=np.int64)
        offset_in_dir[order] = running - starts
        isn = rng.integers(0, 1 << 32, conversations * 2)
        self.seq = ((isn[key] + offset_in_dir) & 0xFFFFFFFF).astype(np.uint32)
        self.ack = ((isn[key ^ 1] + offset_in_dir // 2) & 0xFFFFFFFF).astype(np.uint32)
        first = np.r_[True, self.conv[1:] != self.conv[:-1]]
        last = np.r_[self.conv[1:] != self.conv[:-1], True]
        self.flags = np.where(self.payload > 0, 0x18, 0x10).astype(np.uint8)
        self.flags[first] = 0x02
        self.flags[last] = 0x11
        self.ts = 1_700_000_000_000_000 + np.cumsum(rng.integers(1, 40, n))  # microseconds
        self.pkttype = np.where(rng.random(n) < 0.5, 0, 4).astype(np.uint8)
        self.ip_id = rng.integers(0, 65536, n).astype(np.uint16)
        self.tsval = (self.ts // 1000 & 0xFFFFFFFF).astype(np.uint32)


def _fill_common(rec: np.ndarray, plan: Plan, idx: np.ndarray, incl: np.ndarray, orig: np.ndarray, ip_prefix: str = "") -> None:
    rec["ts_sec"] = plan.ts[idx] // 1_000_000
    rec["ts_usec"] = plan.ts[idx] % 1_000_000
    rec["incl"] = incl
    rec["orig"] = orig
    rec["l_proto"] = 0x0800
    rec["l_ifindex"] = 2
    rec["l_hatype"] = 1
    rec["l_pkttype"] = plan.pkttype[idx]
    rec["l_halen"] = 6
    rec["l_addr"] = np.uint64(0x02000000000100) << np.uint64(16)
    payload = plan.payload[idx]
    _ip_fill(rec, ip_prefix, (52 + payload).astype(np.uint16), plan.ip_id[idx], 6, plan.src[idx], plan.dst[idx], df=True)
    rec["sport"] = plan.sport[idx]
    rec["dport"] = plan.dport[idx]
    rec["seq"] = plan.seq[idx]
    rec["ack"] = plan.ack[idx]
    rec["doff"] = 8 << 4
    rec["flags"] = plan.flags[idx]
    rec["win"] = 502
    rec["nops"] = 0x0101
    rec["ts_kind"] = 8
    rec["ts_len"] = 10
    rec["tsval"] = plan.tsval[idx]
    rec["tsecr"] = plan.tsval[idx] - 1


def write_capture(path: Path, packets: int, snaplen: int = 262144, vxlan_share: float = 0.2, seed: int = 1) -> Path:
    if snaplen < TUNNELLED.itemsize - 16:
        raise ValueError(f"snaplen must hold the headers ({TUNNELLED.itemsize - 16} bytes)")
    plan = Plan(packets, vxlan_share, seed)
    noise = np.random.default_rng(seed + 1).integers(0, 256, 1 << 20, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(np.array([0xA1B2C3D4], "<u4").tobytes() + np.array([2, 4], "<u2").tobytes()
                  + np.array([0, 0, snaplen, LINKTYPE_SLL2], "<u4").tobytes())
        for start in range(0, packets, CHUNK):
            idx = np.arange(start, min(start + CHUNK, packets))
            tunnel = plan.tunnel[idx]
            orig = 20 + 52 + plan.payload[idx] + np.where(tunnel, ENVELOPE, 0)
            incl = np.minimum(orig, snaplen)
            size = 16 + incl
            offset = np.r_[0, np.cumsum(size)[:-1]]
            buf = np.resize(noise, int(size.sum()))
            for mask, dtype in ((~tunnel, PLAIN), (tunnel, TUNNELLED)):
                if not mask.any():
                    continue
                rows = idx[mask]
                rec = np.zeros(len(rows), dtype=dtype)
                _fill_common(rec, plan, rows, incl[mask], orig[mask])
                if dtype is TUNNELLED:
                    inner_len = (52 + plan.payload[rows]).astype(np.int64)
                    outer_len = (inner_len + ENVELOPE).astype(np.uint16)
                    _ip_fill(rec, "o_", outer_len, plan.ip_id[rows] ^ 0x5A5A, 17, plan.outer_src[rows], plan.outer_dst[rows], df=False)
                    rec["u_sport"] = 32768 + (plan.sport[rows] ^ plan.dport[rows]) % 28000
                    rec["u_dport"] = 8472
                    rec["u_len"] = outer_len - 20
                    rec["vx_flags"] = 0x08000000
                    rec["vx_vni"] = 1 << 8
                    rec["e_dst"] = b"\x02\x00\x00\x00\x00\x02"
                    rec["e_src"] = b"\x02\x00\x00\x00\x00\x01"
                    rec["e_type"] = 0x0800
                k = dtype.itemsize
                view = np.ndarray(shape=(buf.shape[0] - k + 1,), dtype=f"V{k}", buffer=buf, strides=(1,))
                view[offset[mask]] = rec.view(f"V{k}")
            buf.tofile(out)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--snaplen", type=int, default=262144)
    parser.add_argument("--vxlan-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    write_capture(args.out, args.packets, args.snaplen, args.vxlan_share, args.seed)
    print(f"{args.out}: {args.packets} packets, {args.out.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
