"""Decode frames through the C decoder and the per-packet fallback, and insist they agree row for row."""

from __future__ import annotations

import polars as pl

from cniscope.models import TUNNEL_PORTS
from cniscope.packets.decode import decode_batch, decode_batch_reference
from cniscope.packets.schema import LinkType
from tests.frames import frame_batch


def decode(frames: list[bytes], linktype: int | list[int] = LinkType.ETHERNET, **kw: object) -> pl.DataFrame:
    """Decode through the C decoder, and insist the fallback agrees row for row."""
    batch = frame_batch(frames, linktype, **kw)  # type: ignore[arg-type]
    ports = kw.get("ports") or TUNNEL_PORTS
    fast = decode_batch(batch, 0, ports)  # type: ignore[arg-type]
    reference = decode_batch_reference(batch, 0, ports)  # type: ignore[arg-type]
    assert fast.equals(reference, null_equal=True), _first_difference(fast, reference)
    return fast


def _first_difference(a: pl.DataFrame, b: pl.DataFrame) -> str:
    for name in a.columns:
        if not a[name].equals(b[name], null_equal=True):
            return f"{name}: C {a[name].to_list()[:8]} fallback {b[name].to_list()[:8]}"
    return ""
