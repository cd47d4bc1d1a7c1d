"""Shared helpers for the model tests: read a capture the way `cniscope analyze` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from cniscope import journeys as journeys_mod
from cniscope.inventory import Inventory, load
from cniscope.packets.schema import conform
from cniscope.results import Journey
from cniscope.sources import InputSpec, read

SHARED = Path(__file__).resolve().parents[3] / "shared"
CORPUS = SHARED / "corpus"
SEED = SHARED / "seed" / "kube-router-curl-node3.txt"
INVENTORIES = Path(__file__).resolve().parents[1] / "data" / "inventory"


@dataclass
class Loaded:
    table: pl.DataFrame
    journeys: list[Journey]


def journeys_of(table: pl.DataFrame) -> list[Journey]:
    return journeys_mod.materialise(journeys_mod.correlate(table))


def load_capture(path: Path) -> Loaded:
    if not path.exists():
        pytest.skip(f"{path} is not on this machine (the shared corpus sits beside the repository)")
    table = read([InputSpec(str(path))]).table
    return Loaded(table, journeys_of(table))


def inventory(name: str) -> Inventory:
    return load(str(INVENTORIES / name))


def table_of(rows: list[dict]) -> pl.DataFrame:
    """A packet table from hand-written rows (missing columns are null), numbered as one input."""
    filled = [{"input": 0, "frame": i, **row} for i, row in enumerate(rows)]
    return conform(pl.DataFrame(filled, infer_schema_length=None))
