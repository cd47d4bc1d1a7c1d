"""Fuzz every reader with damaged copies of valid inputs (hypothesis, bounded: about a minute in all).

Mutations: bytes overwritten, the input cut, garbage inserted. Properties: no
exception escapes, and every packet that lies wholly before the first changed
byte comes out exactly as from the intact input.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cniscope.ingest import read
from cniscope.models import TUNNEL_PORTS
from cniscope.packets.frames import FrameBatch
from cniscope.sources import InputInfo, InputSpec, pcap, pcapng
from cniscope.sources import open as open_module
from cniscope.sources.text.reader import iter_tables as text_tables
from cniscope.wire import pcap as pcap_file
from tests.cli import run
from tests.frames import ethernet, ipv4, sll2, tcp, udp, vxlan
from tests.paths import SEED
from tests.sources.pcapng_blocks import epb, idb, shb

RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FUZZ = settings(max_examples=120, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FRAMES = [
    sll2(ipv4(tcp(b"a" * 10, seq=1)), pkttype=4),
    sll2(ipv4(udp(vxlan(ethernet(ipv4(tcp(seq=2)))), dport=8472), proto=17)),
    sll2(ipv4(tcp(seq=3, flags="S")), pkttype=0),
    sll2(ipv4(tcp(b"b" * 300, seq=4, flags="P.")), pkttype=4),
    sll2(ipv4(tcp(seq=5, flags="F.")), pkttype=0),
]
TIMES = [1_700_000_000_000_000_000 + i * 10**6 for i in range(len(FRAMES))]

PCAP_LE = pcap_file.encode(FRAMES, TIMES, 276)
PCAP_BE = pcap_file.encode(FRAMES, TIMES, 276, nanos=True, byteorder=">", snaplen=100)
PCAPNG = b"".join([
    shb("<", (1, b"node=n1")), idb("<", 276, 0, (2, b"any")),
    *(epb("<", 0, t // 1000, f) for t, f in zip(TIMES[:3], FRAMES[:3], strict=True)),
    shb(">", (1, b"node=n2")), idb(">", 276, 0, (2, b"any"), (9, bytes([9]))),
    *(epb(">", 0, t, f, (2, (2).to_bytes(4, "big"))) for t, f in zip(TIMES[3:], FRAMES[3:], strict=True)),
])
TEXT = SEED.read_bytes()[:6000]


def block_ends(data: bytes) -> list[int]:
    """Where each block of a sound pcapng file ends (each section in its own byte order)."""
    ends, pos, order = [], 0, "<"
    while pos < len(data):
        if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        pos += int.from_bytes(data[pos + 4:pos + 8], "little" if order == "<" else "big")
        ends.append(pos)
    return ends


PCAPNG_ENDS = block_ends(PCAPNG)


def mutate(data: bytes, how: str, at: int, junk: bytes) -> tuple[bytes, int]:
    """A damaged copy of data, and the offset of its first changed byte."""
    at %= len(data) + 1
    if how == "overwrite":
        changed = data[:at] + junk + data[at + len(junk):]
    elif how == "cut":
        changed = data[:at]
    else:
        changed = data[:at] + junk + data[at:]
    same = next((i for i, (a, b) in enumerate(zip(data, changed, strict=False)) if a != b), min(len(data), len(changed)))
    return changed, same


mutations = st.tuples(st.sampled_from(["overwrite", "cut", "insert"]), st.integers(0, 1 << 20),
                      st.binary(min_size=1, max_size=24))


Reader = Callable[[memoryview, InputInfo, int], Iterator[FrameBatch]]
Packet = tuple[int, int, int, int, int, bytes, str | None, str | None]


def packets(batches: list[FrameBatch]) -> list[Packet]:
    """(offset, ts, wirelen, linktype, direction, bytes, interface, node) of every frame, in order."""
    out = []
    for b in batches:
        for i, (o, c) in enumerate(zip(b.offset.tolist(), b.caplen.tolist(), strict=True)):
            iface = b.iface_names[b.iface[i]] if b.iface[i] >= 0 else None
            node = b.node_names[b.node[i]] if b.node[i] >= 0 else None
            out.append((o, int(b.ts[i]), int(b.wirelen[i]), int(b.linktype[i]), int(b.direction[i]),
                        bytes(b.data[o:o + c]), iface, node))
    return out


def walk(reader: Reader, data: bytes) -> tuple[list[Packet], InputInfo]:
    info = InputInfo(index=0, name="fuzz")
    return packets(list(reader(memoryview(data), info, 2))), info


def check_prefix(reader: Reader, original: bytes, record_end: Callable[[int, bytes], int], how: str, at: int,
                 junk: bytes) -> None:
    damaged, first_changed = mutate(original, how, at, junk)
    intact, _ = walk(reader, original)
    got, info = walk(reader, damaged)
    must_keep = [p for p in intact if record_end(p[0], p[5]) <= first_changed]
    assert got[: len(must_keep)] == must_keep
    if got != intact and not info.warnings:  # silent only for changed packet bytes or a cut between records
        assert len(got) == len(intact) or (how == "cut" and got == intact[: len(got)])


@FUZZ
@given(mutations)
def test_pcap_little_endian(m: tuple[str, int, bytes]) -> None:
    check_prefix(pcap.iter_batches, PCAP_LE, lambda offset, frame: offset + len(frame), *m)


@FUZZ
@given(mutations)
def test_pcap_big_endian_nanoseconds_snaplen(m: tuple[str, int, bytes]) -> None:
    check_prefix(pcap.iter_batches, PCAP_BE, lambda offset, frame: offset + len(frame), *m)


@FUZZ
@given(mutations)
def test_pcapng_two_sections(m: tuple[str, int, bytes]) -> None:
    check_prefix(pcapng.iter_batches, PCAPNG, lambda offset, _: next(e for e in PCAPNG_ENDS if e > offset), *m)


def read_bytes(data: bytes) -> tuple[pl.DataFrame, list]:
    with tempfile.TemporaryDirectory(prefix="cniscope-fuzz-") as folder:
        path = Path(folder) / "input"
        path.write_bytes(data)
        capture = read([InputSpec(str(path))], batch_size=2)
    return capture.table, capture.inputs


@FUZZ
@given(st.sampled_from(["pcap", "pcapng", "gzip", "text"]), mutations)
def test_whole_pipeline_never_raises(kind: str, m: tuple[str, int, bytes]) -> None:
    original = {"pcap": PCAP_LE, "pcapng": PCAPNG, "gzip": gzip.compress(PCAP_LE), "text": TEXT}[kind]
    intact, _ = read_bytes(original)
    damaged, first_changed = mutate(original, *m)
    table, (info,) = read_bytes(damaged)
    assert info.packets == table.height
    if kind == "gzip" and not info.warnings:  # the CRC checked the content: the same packets
        assert table.equals(intact)


@FUZZ
@given(st.integers(0, len(TEXT)), st.binary(min_size=1, max_size=64))
def test_text_keeps_the_lines_before_garbage(at: int, junk: bytes) -> None:
    damaged = TEXT[:at] + junk + TEXT[at:]
    first_line = TEXT[:at].count(b"\n") + 1  # line holding the first changed byte

    def rows(data: bytes) -> pl.DataFrame:
        info = InputInfo(index=0, name="fuzz")
        lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
        tables = list(text_tables(lines, info, 4, ports=TUNNEL_PORTS))
        return pl.concat(tables) if tables else pl.DataFrame()

    intact = rows(TEXT)
    got = rows(damaged)
    # a packet may continue on the next line: keep those wholly two lines before the damage
    keep = intact.filter(pl.col("line") < first_line - 1)
    assert got.head(keep.height).equals(keep)
    assert np.all(np.diff(got["line"].to_numpy()) > 0) if got.height else True


@FUZZ
@given(st.integers(0, 255), st.integers(-(1 << 63), (1 << 63) - 1), st.integers(0, (1 << 64) - 1))
def test_pcapng_clock_options_of_any_value(tsresol: int, tsoffset: int, ts: int) -> None:
    """if_tsresol and if_tsoffset of any value: the packet's time, or a warning naming the interface block."""
    data = b"".join([shb("<"), idb("<", 276, 0, (9, bytes([tsresol])), (14, tsoffset.to_bytes(8, "little", signed=True))),
                     epb("<", 0, ts, FRAMES[0])])
    got, info = walk(pcapng.iter_batches, data)
    assert len(got) == 1 or (info.damaged and info.warnings[0].message.startswith("interface block 0: "))


# --- hostile streams: compression layers cut, nested, expanding past the bomb limit; text with escapes and long lines

LAYERS = {
    "gzip": gzip.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "xz": lzma.compress,
    "bzip2": bz2.compress,
}


@FUZZ
@given(st.lists(st.sampled_from(sorted(LAYERS)), min_size=1, max_size=2), st.integers(0, 200_000), mutations)
def test_compressed_streams_cut_nested_or_expanding(layers: list[str], zeros: int, m: tuple[str, int, bytes]) -> None:
    """Any stack of compressions of a pcap followed by zeros, damaged anywhere: never an exception; a stream that
    expands past the (lowered) limit ends with a warning; an intact one reads like the plain pcap."""
    data = PCAP_LE + bytes(zeros)
    for layer in layers:
        data = LAYERS[layer](data)
    damaged, _ = mutate(data, *m)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(open_module, "BOMB_FLOOR", 4096)
        table, (info,) = read_bytes(damaged)
    assert info.packets == table.height <= len(FRAMES)
    if zeros > 4096 * open_module.BOMB_RATIO // 100:  # zeros compress far past 200 times: always caught
        assert info.warnings
    if not info.warnings:
        assert table.height == len(FRAMES)


CONTROL_TEXT = st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "L", "N", "P", "S"]), max_size=80)


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(
    st.sampled_from(TEXT.decode().splitlines()[:40]),
    CONTROL_TEXT,
    st.builds(lambda line, text: line[:40] + text, st.sampled_from(TEXT.decode().splitlines()[:40]), CONTROL_TEXT),
    st.builds(lambda n, c: c * n, st.integers(300, 2000), st.sampled_from(["A", "\x1b", "\x07", "é"])),
), min_size=1, max_size=30))
def test_text_with_control_characters_and_long_lines_through_the_cli(lines: list[str]) -> None:
    """The whole command on hostile text: exit 0, 3 or 4, never a traceback, no raw control byte on the terminal;
    lines past the (lowered) line limit are skipped with their line number."""
    with tempfile.TemporaryDirectory(prefix="cniscope-fuzz-") as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(open_module, "MAX_LINE", 256)
        path = Path(folder) / "hostile.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
        for command in (["analyze"], ["read"]):
            ran = run(*command, str(path))
            assert ran.code in (0, 3, 4), ran.err
            assert "Traceback" not in ran.err and "internal error" not in ran.err
            shown = (ran.out + ran.err).replace("\n", "").replace("\t", "")
            assert not RAW_CONTROL.search(shown), shown
        too_long = [n for n, line in enumerate(lines, 1) if len(line) > 256]
        if "not a capture" not in ran.err:  # read as text (a file of BELs is not)
            for n in too_long[:5]:
                assert f":line {n}: a line of " in ran.err
