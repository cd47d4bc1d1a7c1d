"""How long finding the records takes (the readers' walk and checks, before decoding), with the record walk
compiled (`cniscope.wire._walk`) and in Python, on the reference generator's captures.

    python benchmarks/walk.py [--data DIR] [--sizes 2M,10M] [--rounds 3]

Reads in this process, each round over the whole file (page cache warm: the first round maps it in), and
prints the best round's CPU time per record of `pcap.iter_batches` and `pcapng.Reader.batches`: the walk,
the vectorized checks and the gathering of the header fields, without decoding.
"""

from __future__ import annotations

import argparse
import mmap
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import capture
from decode import parse_size

from cniscope.packets.frames import FrameBatch
from cniscope.sources import InputInfo, pcap, pcapng
from cniscope.wire import walk


def reader(fmt: str) -> Callable[[memoryview, InputInfo], Iterator[FrameBatch]]:
    if fmt == "pcap":
        return lambda buf, info: pcap.iter_batches(buf, info)
    return lambda buf, info: pcapng.Reader(buf, info, 65536).batches()


def best_cpu(path: Path, fmt: str, rounds: int) -> tuple[float, int]:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        best, records = float("inf"), 0
        for _ in range(rounds):
            started = time.process_time()
            records = sum(len(batch.offset) for batch in reader(fmt)(memoryview(mapped), InputInfo(0, str(path))))
            best = min(best, time.process_time() - started)
    return best, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE / "data", help="where the generated captures are kept")
    parser.add_argument("--sizes", default="2M,10M")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not walk.COMPILED:
        raise SystemExit("cniscope.wire._walk is not built: run `make install` (pip install -e .)")
    compiled = walk.pcap_packets, walk.pcapng_packets
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    for size in args.sizes.split(","):
        for fmt in ("pcap", "pcapng"):
            path = capture(args.data, parse_size(size), fmt)
            for name, functions in (("compiled", compiled), ("python", (walk.python_pcap_packets, walk.python_pcapng_packets))):
                walk.pcap_packets, walk.pcapng_packets = functions
                seconds, records = best_cpu(path, fmt, args.rounds)
                print(f"{size:>4s} {fmt:6s} walk {name:8s} {seconds:6.2f} s CPU  {seconds / records * 1e9:5.0f} ns a record",
                      flush=True)
            walk.pcap_packets, walk.pcapng_packets = compiled


if __name__ == "__main__":
    main()
