"""Issue 14 item 7: many UDP sources to one destination, as tcpdump text, must stay separate and fast.

    python benchmarks/distinct_sources.py [--packets 25000] [--rounds 3] [--stages]

Writes `--packets` text lines `12:00:00.NNNNNN IP 10.a.b.c.PORT > 10.96.0.10.53: UDP, length 10`, 1 us apart,
each from its own address and port (a packet with nothing of its own in its fingerprint: only its addresses
tell it from the others), and the same packets as a raw-IP pcap. Then, each as its own process:

    cniscope analyze --json TEXT      cniscope analyze --json PCAP      tcpdump -nn -r PCAP

cniscope's modules are compiled to bytecode first, as an installed copy's are (`decode.compiled`). Printed: wall
and CPU seconds (user + system, the steadier figure on a shared machine) and peak memory of each, and the
journeys and conversations the text gave (one each per line is right; the issue measured 146 s for one journey of
25,000 legs). `--stages` also times the pipeline's stages on the text in this process
(`benchmarks/analyze.py --stages`).
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analyze import stages  # noqa: E402
from decode import CNISCOPE, Run, compiled, timed, warm  # noqa: E402

SERVER = (10, 96, 0, 10)


def source(i: int) -> tuple[tuple[int, int, int, int], int]:
    """The i-th sender: its own address and an ephemeral port (none of them a tunnel's: 4789, 8472 ...)."""
    return (10, 1 + (i >> 16), (i >> 8) & 255, i & 255), 32768 + i % 28000


def write_text(path: Path, packets: int) -> None:
    with path.open("w") as out:
        for i in range(packets):
            addr, port = source(i)
            seconds, micros = divmod(i, 1_000_000)
            out.write(f"12:00:{seconds:02d}.{micros:06d} IP {'.'.join(map(str, addr))}.{port} > "
                      f"{'.'.join(map(str, SERVER))}.53: UDP, length 10\n")


def write_pcap(path: Path, packets: int) -> None:
    """The same packets, LINKTYPE_RAW (101): IPv4 + UDP + 10 bytes."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for i in range(packets):
            addr, port = source(i)
            udp = struct.pack("!HHHH", port, 53, 18, 0) + bytes(10)
            header = struct.pack("!BBHHHBBH4B4B", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, *addr, *SERVER)
            frame = header + udp
            out.write(struct.pack("<IIII", 43200 + i // 1_000_000, i % 1_000_000, len(frame), len(frame)) + frame)


def counts(text: Path) -> tuple[int, int]:
    document = json.loads(subprocess.run([str(CNISCOPE), "analyze", "--json", str(text)], capture_output=True, check=True).stdout)
    return document["journeys_total"], document["flows_total"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=25_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stages", action="store_true", help="also time the stages in this process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cniscope-bench-") as tmp:
        text, pcap = Path(tmp) / "sources.txt", Path(tmp) / "sources.pcap"
        write_text(text, args.packets)
        write_pcap(pcap, args.packets)
        warm(text)
        warm(pcap)
        print(compiled(), flush=True)
        commands = {
            "analyze text": [str(CNISCOPE), "analyze", "--json", str(text)],
            "analyze pcap": [str(CNISCOPE), "analyze", "--json", str(pcap)],
            "tcpdump -nn -r": ["tcpdump", "-nn", "-r", str(pcap)],
        }
        best: dict[str, Run] = {}
        for round_ in range(args.rounds):
            for tool, argv in commands.items():
                run = timed(tool, argv)
                print(f"  round {round_ + 1} {tool:15s} {run.seconds:6.2f} s  cpu {run.cpu_seconds:6.2f} s  "
                      f"{run.peak_bytes / 1e6:5.0f} MB", flush=True)
                if run.status != 0:
                    raise SystemExit(f"{tool} failed")
                if tool not in best or run.cpu_seconds < best[tool].cpu_seconds:
                    best[tool] = run
        journeys, flows = counts(text)
        ours, tcpdump = best["analyze text"], best["tcpdump -nn -r"]
        print(f"\n{args.packets:,} text lines of distinct UDP sources: {journeys:,} journeys, {flows:,} conversations; "
              f"analyze --json {ours.seconds:.2f} s ({ours.cpu_seconds:.2f} s CPU, best of {args.rounds}), "
              f"the same packets as pcap {best['analyze pcap'].cpu_seconds:.2f} s CPU, "
              f"tcpdump -nn -r of the pcap {tcpdump.cpu_seconds:.2f} s CPU", flush=True)
        if args.stages:
            print("stages (benchmarks/analyze.py --stages --capture FILE) of the text:", flush=True)
            stages(0, 0, text)


if __name__ == "__main__":
    main()
