"""`read --format parquet`'s batches made straight from the decoded arrays (`parquet_out.arrow_table`) are the Arrow
tables the polars path makes (`decode.table`, then `parquet_out.to_arrow`): the same schema, values, nulls and
dictionaries in the same order, so the same file; and what ingest puts on the rows (input, node, comments, null
times) is there, whatever the batches and chunks. With and without the C encoder and the C decoder."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from cniscope import ingest
from cniscope.packets import arrow, chunks
from cniscope.packets.kinds import LinkType
from cniscope.report import parquet_out, parquet_parts
from cniscope.report.parquet_out import PARQUET_OPTIONS
from cniscope.sources import InputSpec
from cniscope.wire.pcapng import PcapngWriter
from tests.frames import arp, dns, ethernet, icmp, ipv4, ipv6, sll2, tcp, udp, vxlan, write_pcap
from tests.paths import DATA
from tests.sources.pcapng_blocks import spb

T0 = 1_700_000_000_000_000_000
TEXT = DATA / "corpus" / "04-msazure-flannel-vxlan-e.txt"


def _frames() -> list[bytes]:
    """Every kind of row: TCP, ICMP, ARP, DNS, VXLAN, IPv6 (several addresses), a cut frame (an error)."""
    return [
        ethernet(ipv4(tcp(seq=7, ack=9, flags="S."), src="10.244.1.2", dst="10.244.2.3")),
        ethernet(ipv6(tcp(seq=1), src="fd00::7", dst="fd00::1")),
        ethernet(ipv4(icmp(type_=8, ident=3, seq=4), proto=1)),
        ethernet(arp(spa="10.0.0.1", tpa="10.0.0.9"), ethertype=0x0806),
        ethernet(ipv4(udp(dns(ident=5), dport=53), proto=17)),
        ethernet(ipv4(udp(vxlan(ethernet(ipv4(tcp(seq=11, flags="P.")))), sport=50000, dport=8472), proto=17)),
        ethernet(ipv6(tcp(seq=2), src="fd00::2", dst="fd00::7")),
        ethernet(ipv4(tcp(seq=8)))[:20],  # cut in the IPv4 header
    ]


def _pcapng(path: Path) -> Path:
    """Two sections (nodes), eth0 named in both, an interface without a name, comments on some packets (on both
    sides of a batch's end), an SPB (no time)."""
    frames = _frames()
    with PcapngWriter(str(path)) as out:
        for section, node in enumerate(("nodeA", None)):
            out.section(node=node)
            eth0 = out.interface("eth0", int(LinkType.ETHERNET))
            unnamed = out.interface(None, int(LinkType.ETHERNET))
            other = out.interface(f"veth{section}", int(LinkType.ETHERNET))
            for i, frame in enumerate(frames * 2):
                iface = (eth0, unnamed, other)[(i + section) % 3]
                comment = f"note {section}.{i}" if i % 5 in (2, 3) else None
                out.packet(iface, T0 + i * 1000, frame, direction=i % 3 if i % 4 else None, comment=comment)
            out.write_raw(spb("<", frames[0], len(frames[0])))
    return path


def _pcap_any(path: Path) -> Path:
    """A pcap of `tcpdump -i any`: interfaces known by index only."""
    frames = [sll2(ipv4(tcp(seq=i)), ifindex=2 + i % 3) for i in range(9)]
    return write_pcap(path, frames, linktype=LinkType.LINUX_SLL2)


def _damaged(path: Path) -> Path:
    whole = write_pcap(path, _frames()).read_bytes()
    path.write_bytes(whole[:-7])
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, list[InputSpec]]:
    pcapng = _pcapng(tmp_path / "two.pcapng")
    pcap = write_pcap(tmp_path / "one.pcap", _frames())
    return {
        "pcapng": [InputSpec(str(pcapng))],
        "pcapng tagged": [InputSpec(str(pcapng), node="mine")],
        "pcap": [InputSpec(str(pcap))],
        "pcap any": [InputSpec(str(_pcap_any(tmp_path / "any.pcap")), node="n2")],
        "damaged": [InputSpec(str(_damaged(tmp_path / "cut.pcap")))],
        "several": [InputSpec(str(pcap), node="n1"), InputSpec(str(TEXT), node="n3"), InputSpec(str(pcapng))],
    }


def _both(specs: list[InputSpec], batch_size: int) -> tuple[list[pa.Table], list[pa.Table]]:
    """The batches as `read --format parquet` makes them, and through polars."""
    straight = [parquet_out._prepared(t) for t in ingest.batches_as(parquet_out.arrow_table, specs, [], batch_size)]
    through = [parquet_out.to_arrow(t) for t in ingest.batches(specs, [], batch_size)]
    return straight, through


def _file(tables: list[Any]) -> bytes:
    out = io.BytesIO()
    parquet_parts.write(tables, out, parquet_out._arrow_schema(), PARQUET_OPTIONS, prepare=parquet_out._prepared)
    return out.getvalue()


@pytest.mark.parametrize("encoder", ["c", "pyarrow"])
@pytest.mark.parametrize("decoder", ["c", "fallback"])
@pytest.mark.parametrize("batch_size", [4, 1000])
@pytest.mark.parametrize("name", ["pcapng", "pcapng tagged", "pcap", "pcap any", "damaged", "several"])
def test_batches_made_from_the_arrays_are_those_polars_makes(inputs: dict[str, list[InputSpec]], name: str,
                                                             batch_size: int, encoder: str, decoder: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if encoder == "pyarrow":
        monkeypatch.setattr(parquet_parts, "_parquet", None)
    elif parquet_parts._parquet is None:
        pytest.skip("the C encoder is not built")
    if decoder == "fallback":
        monkeypatch.setattr(chunks, "_C", None)
    elif chunks._C is None:
        pytest.skip("the C decoder is not built")
    straight, through = _both(inputs[name], batch_size)
    assert len(straight) == len(through) > 0
    for mine, theirs in zip(straight, through):
        assert mine.schema.equals(parquet_out._arrow_schema())
        assert mine.equals(theirs), next(f for f in mine.column_names if not mine[f].equals(theirs[f]))
    assert _file(straight) == _file(through)


def test_what_ingest_puts_on_the_rows(inputs: dict[str, list[InputSpec]]) -> None:
    """Nodes the file names and the user's in the rows it does not, comments as info, no time for the SPB, each
    input's index: the same in batches of 4 as in one."""
    specs = inputs["pcapng tagged"] + inputs["pcap"]
    def rows(batch_size: int) -> pl.DataFrame:
        made = ingest.batches_as(parquet_out.arrow_table, specs, [], batch_size)
        return pl.DataFrame(pa.concat_tables([parquet_out._prepared(t) for t in made]))

    whole = rows(1000)
    assert rows(4).equals(whole)
    first = whole.filter(pl.col("input") == 0)
    assert first["node"].to_list() == ["nodeA"] * 17 + ["mine"] * 17
    assert first["info"].to_list()[:5] == [None, None, "note 0.2", "note 0.3", None]
    assert first["info"].drop_nulls().len() == 12
    assert first["ts"].is_null().to_list() == [False] * 16 + [True] + [False] * 16 + [True]
    assert first["iface"].to_list()[:6] == ["eth0", None, "veth0", "eth0", None, "veth0"]
    assert whole.filter(pl.col("input") == 1)["node"].null_count() == len(_frames())


def test_chunks_of_a_batch_are_tagged_each_at_its_rows(inputs: dict[str, list[InputSpec]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch the decoder reads in several chunks (`chunks.CHUNK`): each chunk's comments and null times where
    they belong."""
    def rows(specs: list[InputSpec]) -> pl.DataFrame:
        return pl.concat(ingest.batches(specs, [], 1000))

    expected = rows(inputs["pcapng tagged"])
    monkeypatch.setattr(chunks, "CHUNK", 5)
    assert rows(inputs["pcapng tagged"]).equals(expected)


def test_the_schema_is_the_one_polars_converts_the_table_to() -> None:
    """Made without polars, it is polars' own, field metadata included (what has polars read a text column back as
    categorical); the dictionary-encoded columns are the text ones."""
    from cniscope.packets.schema import COLUMNS, empty

    assert parquet_out._arrow_schema().equals(empty().to_arrow().schema, check_metadata=True)
    assert PARQUET_OPTIONS["use_dictionary"] == [c.name for c in COLUMNS if c.dtype in (pl.Utf8, pl.Categorical)]


def test_parquet_of_a_binary_input_imports_no_polars(inputs: dict[str, list[InputSpec]], tmp_path: Path) -> None:
    """Polars is 0.1 s of the command's start: a binary input's batches never become polars tables."""
    probe = ("import sys\nfrom cniscope.cli import main\n"
             "code = main(['read', '--format', 'parquet', '-o', sys.argv[1], sys.argv[2]])\n"
             "print(code, sorted(m for m in sys.modules if m.startswith('polars')))")
    target = tmp_path / "out.parquet"
    done = subprocess.run([sys.executable, "-c", probe, str(target), inputs["pcapng"][0].path], capture_output=True,
                          text=True, check=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "0 []"
    assert pl.read_parquet(target).height == 34


@pytest.mark.parametrize("distinct", [1, 3000])
@pytest.mark.parametrize("encoder", ["c", "numpy"])
def test_dictionaries_in_order_of_first_appearance(distinct: int, encoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each row's index into the texts in order of first appearance, nulls skipped: in C (up to its cap), else numpy
    (past the cap, or where C is not built), as a plain walk of the rows gives them."""
    if encoder == "numpy":
        monkeypatch.setattr(parquet_parts, "_parquet", None)
    rng = np.random.default_rng(distinct)
    codes = rng.integers(0, distinct, 20000).astype(np.int32)
    valid = rng.random(20000) > 0.3
    texts = [f"t{k}" for k in range(distinct)]
    made = parquet_out._dictionary(arrow.dictionary(np.where(valid, codes, -1), texts), parquet_out._TYPES[b"i"], 20000)
    order = list(dict.fromkeys(codes[valid].tolist()))
    assert made.dictionary.to_pylist() == [texts[k] for k in order]
    assert made.to_pylist() == [texts[c] if ok else None for c, ok in zip(codes.tolist(), valid.tolist())]
