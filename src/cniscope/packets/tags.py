"""What ingest puts on a binary input's decoded rows beside what the frames hold, on the chunks' Arrow arrays
(`chunks.decode`), before any table is made of them: the node the user named where the file names none, null for a
time the file did not hold, pcapng packet comments as `info`. Numpy alone, no polars: the arrays then become a polars
table (`decode.table`) or, for `read --format parquet`, a pyarrow one (`parquet_out.arrow_table`), each the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cniscope.packets import arrow, chunks
from cniscope.packets.chunks import Arrays
from cniscope.packets.columns import ARROW_TYPE
from cniscope.packets.frames import NO_TS, FrameBatch


@dataclass(frozen=True)
class Tags:
    """`node`: the node the user named for the input (None: none); `comments`: the batch's pcapng packet comments by
    frame, for the rows decode left no `info`."""

    node: str | None = None
    comments: dict[int, str] = field(default_factory=dict)


def tagged(decoded: list[Arrays], batch: FrameBatch, tags: Tags) -> list[Arrays]:
    """Each chunk's arrays of `batch` (in `chunks.CHUNK` rows) with what `tags` and the batch's times say; most
    chunks need none of it: the arrays as they are."""
    out, start = [], 0
    for arrays in decoded:
        n = min(chunks.CHUNK, len(batch.offset) - start)
        out.append(_tagged(arrays, batch, start, n, tags))
        start += n
    return out


def _tagged(arrays: Arrays, batch: FrameBatch, start: int, n: int, tags: Tags) -> Arrays:
    changed: Arrays = {}
    if tags.node is not None:
        node = _filled(arrays.get("node"), n, tags.node)
        if node is not None:
            changed["node"] = node
    ts = arrays.get("ts")
    times = None if ts is None or ts.buffers[0] is not None else ts.buffers[1]  # the reader's, valid in every row
    if ts is not None and times is not None and (missing := times == NO_TS).any():
        bitmap, nulls = arrow.validity(~missing)
        changed["ts"] = arrow.Array(ts.fmt, n, nulls, (bitmap, times))
    first = batch.first_frame + start
    mine = {frame - first: text for frame, text in tags.comments.items() if first <= frame < first + n}
    if mine:
        changed["info"] = _commented(arrays.get("info"), n, mine)
    if not changed:
        return arrays
    return {name: changed.get(name) or arrays[name] for name in ARROW_TYPE if name in arrays or name in changed}


def _filled(node: arrow.Array | None, n: int, name: str) -> arrow.Array | None:
    """The node column with `name` in its null rows (as polars' `fill_null`); None where no row is null."""
    if node is None:
        return arrow.dictionary(np.zeros(n, dtype=np.int32), [name])
    if not node.null_count or node.dictionary is None:
        return None
    texts, codes = arrow.texts(node.dictionary), node.buffers[1]
    assert codes is not None
    if name not in texts:
        texts.append(name)
    return arrow.dictionary(np.where(codes >= 0, codes, np.int32(texts.index(name))), texts)


def _commented(info: arrow.Array | None, n: int, comments: dict[int, str]) -> arrow.Array:
    """The info column with each row's comment where decode gave it none (as polars' `coalesce`)."""
    texts: list[str | None] = arrow.texts(info) if info is not None else [None] * n
    for row, text in comments.items():
        if texts[row] is None:
            texts[row] = text
    return arrow.strings(texts)
