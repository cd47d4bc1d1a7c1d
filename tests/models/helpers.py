"""Helpers of the model tests: read a capture the way `cniscope analyze` does, and what each corpus note says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cniscope import journeys as journeys_mod
from cniscope.ingest import read
from cniscope.inventory import Inventory, load
from cniscope.packets.schema import conform
from cniscope.results import Journey
from cniscope.sources import InputSpec
from tests.paths import DATA

INVENTORIES = DATA / "inventory"


@dataclass
class Loaded:
    table: pl.DataFrame
    journeys: list[Journey]


def journeys_of(table: pl.DataFrame) -> list[Journey]:
    return journeys_mod.materialise(journeys_mod.correlate(table).table)


def load_capture(path: Path) -> Loaded:
    table = read([InputSpec(str(path))]).table
    return Loaded(table, journeys_of(table))


def inventory(name: str) -> Inventory:
    return load(str(INVENTORIES / name))


def table_of(rows: list[dict]) -> pl.DataFrame:
    """A packet table from hand-written rows (missing columns are null), numbered as one input."""
    filled = [{"input": 0, "frame": i, **row} for i, row in enumerate(rows)]
    return conform(pl.DataFrame(filled, infer_schema_length=None))


# What each capture's note (tests/data/corpus/*.meta.md) says the cluster ran: a model name, or a family
# where the note names only the project (01-03: "Calico pod network", variant not stated).
CORPUS_TRUTH = {
    "01-ysaied-pan-cn-calico-vxlan.pcap": "calico",
    "02-ysaied-pan-cn-calico-eth.pcap": "calico",
    "03-ysaied-pan-cn-ngfw-vxlan6080.pcap": "calico",
    "04-msazure-flannel-vxlan-e.txt": "flannel-vxlan",
    "06-plantegg-flannel-vxlan-nnetvv.txt": "flannel-vxlan",
    "07-virtnest-calico-ipip-4ifaces.txt": "calico-ipip",
    "10-inksnw-kuberouter-bgp-any-v.txt": "kube-router",
    "12-fluxop-flannel-any-inout-dns.txt": "flannel-vxlan",
    "14-cilium-vxlan-otv-vv.txt": "cilium-vxlan",
    "22-weave3014-nodeport-any-dnat-snat.txt": "weave",
}
