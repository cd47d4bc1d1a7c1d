"""How fast `cniscope read` decodes a capture, against tcpdump and tshark in the same run.

    python benchmarks/decode.py [--sizes 1M,10M] [--rounds 1] [--snaplen-10m 128] [--skip-tshark-above N]

For each size, generates (once, into benchmarks/data/, git-ignored) a
LINUX_SLL2 pcap with benchmarks/gen.py: TCP conversations between pod and node
addresses, about a fifth VXLAN-encapsulated, payloads 0-1400 bytes. The 1M
file keeps whole frames; the 10M file is cut at `--snaplen-10m` bytes (128 by
default, as `tcpdump -s 128` would: every header is kept, most payload is
not), which keeps it at about 1.5 GB instead of 7.5 GB.

The file is read once (page cache warm), then each round times, as separate
processes, whole-process wall time and peak resident memory (/usr/bin/time %M):

    cniscope read --format parquet -o OUT FILE
    tcpdump -nn -r FILE > /dev/null
    tshark -r FILE -T fields -e frame.time_epoch -e ip.src -e ip.dst -e tcp.seq > /dev/null

and prints packets per second, peak memory (MB and bytes per packet) and the
ratios tcpdump/cniscope and tshark/cniscope (best round of each). Last, in
this process, it splits cniscope's work into finding the records (the pcap
reader) and decoding them (`decode_batch`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen import write_capture  # noqa: E402

DATA = HERE / "data"
CNISCOPE = Path(sys.executable).with_name("cniscope")


@dataclass
class Run:
    tool: str
    seconds: float
    peak_bytes: int
    status: int
    cpu_seconds: float = 0.0  # user + system: what the tool cost, whatever else the machine was doing


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def timed(tool: str, argv: list[str]) -> Run:
    """Wall time, and peak RSS as /usr/bin/time reports it (a child of this process would inherit our own peak)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, open(os.devnull, "wb") as devnull:
        started = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", rss.name, *argv], stdout=devnull, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - started
        user, system, peak = rss.read().split()[-3:]
        peak_kb, cpu = int(peak), float(user) + float(system)
    if proc.returncode:
        print(f"  {tool} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}", file=sys.stderr)
    return Run(tool, seconds, peak_kb * 1024, proc.returncode, cpu)


def capture_for(packets: int, snaplen: int) -> Path:
    path = DATA / f"sll2-{packets}-s{snaplen}.pcap"
    if not path.exists():
        started = time.perf_counter()
        write_capture(path.with_suffix(".tmp"), packets, snaplen=snaplen)
        path.with_suffix(".tmp").rename(path)
        print(f"generated {path.name}: {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s")
    return path


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def compiled() -> str:
    """cniscope's modules compiled to bytecode beside their sources, as installing the package does (pip compiles
    a wheel's modules) and as any run does for the next one, unless PYTHONDONTWRITEBYTECODE is set: then every run
    compiles all of them again (0.1 s of a small capture's analysis), which no installed copy does. The copy
    compiled is the one the `cniscope` command imports (PYTHONPATH's first). Returns what was done, to print."""
    import compileall

    import cniscope

    package = Path(cniscope.__file__).parent
    compileall.compile_dir(package, quiet=1)
    unset = "" if os.environ.get("PYTHONDONTWRITEBYTECODE") else " (PYTHONDONTWRITEBYTECODE unset: runs would anyway)"
    return f"bytecode of {package} compiled{unset}"


def count_rows(parquet: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(parquet).metadata.num_rows


def bench(packets: int, snaplen: int, rounds: int, tshark: bool) -> dict[str, Run]:
    path = capture_for(packets, snaplen)
    out = DATA / f"out-{packets}.parquet"
    warm(path)
    commands = {
        "cniscope": [str(CNISCOPE), "read", "--format", "parquet", "-o", str(out), str(path)],
        "tcpdump": ["tcpdump", "-nn", "-r", str(path)],
    }
    if tshark:
        commands["tshark"] = ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src",
                              "-e", "ip.dst", "-e", "tcp.seq"]
    best: dict[str, Run] = {}
    for round_ in range(rounds):
        for tool, argv in commands.items():
            run = timed(tool, argv)
            print(f"  round {round_ + 1} {tool:9s} {run.seconds:8.2f} s  {run.peak_bytes / 1e6:8.0f} MB")
            if tool not in best or run.seconds < best[tool].seconds:
                best[tool] = run
    rows = count_rows(out)
    if rows != packets:
        raise SystemExit(f"cniscope wrote {rows} rows for {packets} packets")
    out.unlink()
    return best


def split(path: Path) -> tuple[float, float]:
    """In this process: seconds in the pcap reader (finding records) and in decode_batch, over the whole file."""
    import mmap

    from cniscope.models import TUNNEL_PORTS
    from cniscope.packets.decode import decode_batch
    from cniscope.sources import InputInfo, pcap

    reading = decoding = 0.0
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        batches = pcap.iter_batches(memoryview(mapped), InputInfo(0, str(path)))
        while True:
            started = time.perf_counter()
            batch = next(batches, None)
            reading += time.perf_counter() - started
            if batch is None:
                break
            started = time.perf_counter()
            decode_batch(batch, 0, TUNNEL_PORTS)
            decoding += time.perf_counter() - started
            del batch
        del batches
    return reading, decoding


def report(packets: int, snaplen: int, best: dict[str, Run]) -> None:
    ours = best["cniscope"]
    print(f"\n{packets:,} packets, LINUX_SLL2, snaplen {snaplen}, ~20% VXLAN (best of rounds)")
    print(f"{'tool':10s} {'seconds':>9s} {'packets/s':>11s} {'peak MB':>9s} {'B/packet':>9s} {'time vs cniscope':>17s}")
    for tool, run in best.items():
        print(f"{tool:10s} {run.seconds:9.2f} {packets / run.seconds:11,.0f} {run.peak_bytes / 1e6:9.0f} "
              f"{run.peak_bytes / packets:9.0f} {run.seconds / ours.seconds:16.1f}x")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1M,10M", help="comma-separated packet counts (1M, 10M, 200K ...)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--snaplen-10m", type=int, default=128, help="snap length for sizes of 10M and more")
    parser.add_argument("--skip-tshark-above", type=parse_size, default=None, help="do not run tshark above this size")
    args = parser.parse_args()
    for text in args.sizes.split(","):
        packets = parse_size(text)
        snaplen = args.snaplen_10m if packets >= 10_000_000 else 262144
        tshark = args.skip_tshark_above is None or packets <= args.skip_tshark_above
        print(f"== {packets:,} packets")
        report(packets, snaplen, bench(packets, snaplen, args.rounds, tshark))
        reading, decoding = split(capture_for(packets, snaplen))
        print(f"in one process: pcap reader {reading:.2f} s, decode_batch {decoding:.2f} s "
              f"({packets / decoding:,.0f} packets/s decoded)\n")


if __name__ == "__main__":
    main()
