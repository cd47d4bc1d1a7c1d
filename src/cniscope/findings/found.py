"""What a detector returns: its findings, and the lost packets they explain (no other finding reports those)."""

from __future__ import annotations

from typing import NamedTuple

from cniscope.results import Finding


class Found(NamedTuple):
    findings: list[Finding]
    claimed: frozenset[int] = frozenset()  # journeys whose loss these findings explain
