"""How fast a capture's merged.pcapng is written, against mergecap merging the same per-node files, same run.

    python benchmarks/merge.py [--size 1M] [--nodes 2]

The generated LINUX_SLL2 pcap of benchmarks/decode.py (snaplen 128) stands for
what tcpdump streamed back from each of `--nodes` nodes. Timed in this process:
converting it to each node's pcapng while declaring to a `MergedCapture`
(as `cniscope capture` does), then `MergedCapture.finish()` writing every
node's packets in time order into one section. Then `mergecap -w` merges the
per-node files (time order, its default), as a separate process.
"""

from __future__ import annotations

import argparse
import mmap
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import capture_for, parse_size, timed, warm  # noqa: E402

from cniscope.wire.convert import MergedCapture, sll2_pcap_to_pcapng
from cniscope.wire.pcapng import PcapngWriter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1M")
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args()
    packets = parse_size(args.size)
    path = capture_for(packets, 128)
    warm(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        nodes = [Path(tmp) / f"node{i + 1}.pcapng" for i in range(args.nodes)]
        started = time.perf_counter()
        merged = MergedCapture(str(Path(tmp) / "merged.pcapng"), "benchmark")
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for node in nodes:
                with PcapngWriter(str(node)) as writer:
                    sll2_pcap_to_pcapng(data, writer, node.stem, [], merged=merged)
        converted = time.perf_counter()
        merged.finish()
        finished = time.perf_counter()
        theirs = timed("mergecap", ["mergecap", "-w", str(Path(tmp) / "mergecap.pcapng"), *map(str, nodes)])
    ours = finished - converted
    print(f"{packets:,} packets x {args.nodes} nodes: conversion {converted - started:.2f} s; "
          f"merged.pcapng {ours:.2f} s, mergecap {theirs.seconds:.2f} s ({theirs.seconds / ours:.2f}x ours)")


if __name__ == "__main__":
    main()
