"""How fast the tcpdump text reader goes: lines and packets per second.

    .venv/bin/python benchmarks/text_read.py [--lines 1000000]

1. Builds a text capture of about --lines lines by repeating the real text
   captures (seed, corpus, tests/data/text fixtures: every variant the reader
   knows), then times `iter_tables` over it (file in the page cache) and, for
   scale, `cat` of the same file.
2. Writes a --packets pcap (the fixture frames: TCP, UDP/DNS, ICMP errors,
   ARP, IPv6, VXLAN/Geneve/IPIP), has tcpdump print it (`-nn`, `-nn -v -e`),
   and reads the text back: both timed in the same run.
All times are CPU seconds (this machine is shared; wall time would measure the neighbours).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = [REPO / "tests" / "data" / "seed" / "kube-router-curl-node3.txt",
           *sorted((REPO / "tests" / "data" / "corpus").glob("*.txt")),
           *sorted((REPO / "tests" / "data" / "text").glob("*.txt"))]


def read_text(path: Path) -> tuple[int, float, object]:
    from cniscope.models import TUNNEL_PORTS
    from cniscope.sources import InputInfo
    from cniscope.sources.text.reader import iter_tables

    info = InputInfo(index=0, name=str(path))
    t = time.process_time()  # CPU time: the machine is shared, wall time is not ours alone
    rows = 0
    with path.open(encoding="utf-8", errors="replace") as stream:
        for table in iter_tables(stream, info, ports=TUNNEL_PORTS):
            rows += len(table)
    return rows, time.process_time() - t, info


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def against_tcpdump(packets: int, tmp: Path) -> None:
    """tcpdump prints a pcap as text; the reader reads that text back: both timed in the same run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", REPO / "tests" / "data" / "text" / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    frames = mf.ether_frames() + mf.tunnel_frames()
    pcap = tmp / "bench.pcap"
    mf.write_pcap(pcap, 1, (frames * (packets // len(frames) + 1))[:packets])
    for flags in (["-nn"], ["-nn", "-v", "-e"]):
        text = tmp / "bench.txt"
        t = children_cpu()
        with text.open("w") as out:
            subprocess.run(["tcpdump", "-r", str(pcap), *flags], stdout=out, stderr=subprocess.DEVNULL, check=True)
        printed = children_cpu() - t
        lines = sum(1 for _ in text.open())
        rows, took, info = read_text(text)
        print(f"tcpdump {' '.join(flags)}: {packets} packets, {lines} lines; tcpdump printed them in {printed:.2f} CPU s, "
              f"the reader read them in {took:.2f} CPU s ({lines / took / 1e3:.0f} k lines/s, "
              f"{rows / took / 1e3:.0f} k packets/s, {took / printed:.1f}x tcpdump's time), rows {rows}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--packets", type=int, default=200_000, help="for the run against tcpdump")
    args = parser.parse_args()

    block = "".join(p.read_text() for p in SOURCES)
    per_block = block.count("\n")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for _ in range(max(1, args.lines // per_block)):
            f.write(block)
        path = Path(f.name)
    try:
        lines = sum(1 for _ in path.open())
        t = time.perf_counter()
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
        cat_s = time.perf_counter() - t
        rows, read_s, info = read_text(path)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{lines} lines, {rows} packets, {path.stat().st_size / 1e6:.1f} MB, "
              f"unparsed {info.unparsed_lines}")  # type: ignore[attr-defined]
        print(f"text reader: {read_s:.2f} CPU s = {lines / read_s / 1e3:.0f} k lines/s, {rows / read_s / 1e3:.0f} k packets/s; "
              f"peak RSS {peak_mb:.0f} MB (cat: {cat_s:.3f} s)")
    finally:
        path.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        against_tcpdump(args.packets, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
