"""Counting sightings in lab captures, through cniscope's own reader."""

from __future__ import annotations

import polars as pl

from cniscope.lab.capture import NodeCapture
from cniscope.packets.schema import ip4_value
from cniscope.sources import InputSpec, read

SYN = 2


def read_captures(captures: list[NodeCapture]) -> pl.DataFrame:
    capture = read([InputSpec(str(c.path), node=c.node) for c in captures])
    assert capture.warnings == []
    return capture.table


def syn_sightings(table: pl.DataFrame, node: str, dst: str, dport: int = 80) -> pl.DataFrame:
    """Sightings on `node` of the SYN(s) to dst:dport, in time order (inner packet columns for tunnelled ones)."""
    return table.filter(
        (pl.col("node") == node) & (pl.col("tcp_flags") == SYN) & (pl.col("dst") == ip4_value(dst)) & (pl.col("dport") == dport)
    ).sort("ts")
