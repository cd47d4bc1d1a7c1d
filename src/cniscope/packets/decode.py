"""Decode a batch of raw frames into rows of the packet table.

Theory of operation
-------------------
A `FrameBatch` holds one buffer (usually the mapped capture file) and, per
frame, where its captured bytes start and how many there are. Decoding goes
over the batch in chunks of `CHUNK` rows (`chunks`: numpy alone, no polars). For each chunk:

1. The C decoder (`_decode.c`) reads each frame once, header after header,
   and writes the fields it finds straight into the chunk's column arrays
   (values, and Arrow validity bitmaps: the arrays become the record batch's
   columns without another pass): the link layer of every link type
   the table knows, IPv4 (with options, fragments), IPv6 (with extension
   headers), ARP, TCP with its options, UDP, DNS id/qr, ICMP and ICMPv6 (with
   the quoted header of an error), one level of tunnel envelope (a UDP port
   `TunnelPorts` names, or IP in IP over IPv4 or IPv6: the envelope goes to the
   outer_* columns and the packet columns restart with the packet it carries),
   the TCP/UDP/ICMP checksum verdicts (`l4_csum_bad`, an envelope's
   `outer_l4_csum_bad`; see checksum.py) and the payload digest (digest.py).
   It is `fallback.decode_frame` statement for statement: a frame cut by the
   snap length, or whose lengths lie, keeps what was captured whole and says in
   `error` where it stopped, as the fallback does. Every read is guarded by the
   frame's captured end and the buffer's. It runs without the GIL: the decode
   threads of `ingest` run at once.
2. What C leaves as positions or codes becomes text (`chunks`): IPv6 addresses
   (one `inet_ntop` per distinct address) and the error texts; the batch's own
   columns (input, frame, ts, node, iface ...) and the reader's direction are
   put beside them. The columns some row has go to polars here as Arrow arrays,
   without copies, through the C data interface (`arrow`: no pyarrow to
   import); the others (a third of them in a `tcpdump -i any` capture of a
   node: names, quoted packets, VLAN ...) become typed null literals.

Where the C decoder was not built (no compiler at install: the extension is
optional), every frame goes through `fallback.decode_frame`, one by one, to the
same rows, many times slower; that is said once on stderr. Tests hold the C
path to the fallback (`decode_batch_reference`) on crafted, cut, damaged and
random frames.
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from cniscope.packets import arrow, chunks
from cniscope.packets.chunks import Arrays, Scratch
from cniscope.packets.frames import FrameBatch
from cniscope.packets.ports import TunnelPorts
from cniscope.packets.schema import SCHEMA, empty
from cniscope.packets.tags import Tags, tagged


def decode_batch(batch: FrameBatch, input_index: int, ports: TunnelPorts, unread: Collection[str] = (),
                 scratch: Scratch | None = None, kept: bool = False, tags: Tags | None = None) -> pl.DataFrame:
    """The packet table rows of every frame in `batch` (schema order and types); `ports` names the UDP tunnels, the
    rest as `chunks.decoded` takes it; tagged (`tags.tagged`) where `tags` says."""
    decoded = chunks.decoded(batch, ports, unread, scratch, kept)
    return table(tagged(decoded, batch, tags) if tags is not None else decoded, input_index)


def decode_batch_reference(batch: FrameBatch, input_index: int, ports: TunnelPorts) -> pl.DataFrame:
    """Every row through the per-packet fallback: the reference the C decoder is tested against."""
    return table(chunks.decode(batch, ports, frozenset(), {}, False, compiled=False), input_index)


def table(decoded: list[Arrays], input_index: int) -> pl.DataFrame:
    """A batch's table from its chunks' arrays (`chunks.decode`)."""
    tables = [_table(arrays, input_index) for arrays in decoded]
    return pl.concat(tables, rechunk=False) if tables else empty()


# A column no row has: a typed null literal (made once: 30 a chunk took 0.6 ms), which stays one value through concat,
# filter, sort and joins. Converted from Arrow, an all-null column would hold its values buffer.
_NULL = {name: pl.lit(None, dtype).alias(name) for name, dtype in SCHEMA.items()}
# A text column null in some rows, made again: its validity, taken from Arrow without a copy, kept alive the whole Arrow
# array it came with, the 32-bit keys its codes were made from included: src6 and dst6 (IPv6 addresses, null in most
# rows) held 8 B a row each where their codes are 4 (7.6 B a sighting at 10M).
_REMADE = {name: pl.when(pl.col(name).is_not_null()).then(pl.col(name)).alias(name)
           for name, dtype in SCHEMA.items() if dtype == pl.Categorical}


def _table(arrays: dict[str, arrow.Array], input_index: int) -> pl.DataFrame:
    """One chunk's rows in schema order: its `arrays` (the columns some row has: `Columns.arrays`), the rest typed
    null literals; a text column null in some rows made again (`_REMADE`); the input's index a literal (one value,
    as `ingest` tags every table)."""
    given = arrow.frame(arrays)
    return given.select(pl.lit(input_index, SCHEMA["input"]).alias("input") if name == "input" else _NULL[name]
                        if name not in arrays else _REMADE[name] if name in _REMADE and arrays[name].null_count
                        else pl.col(name) for name in SCHEMA)
