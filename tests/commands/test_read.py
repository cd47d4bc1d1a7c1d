"""`cniscope read`: every output format, and the exit codes for damaged and unusable inputs."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import polars as pl
import pytest

from cniscope.cli import main
from cniscope.errors import ExitCode
from cniscope.ingest import read
from cniscope.packets.schema import NAMES, SCHEMA
from cniscope.sources import InputSpec
from cniscope.wire import pcap as pcap_file
from tests.frames import arp, ethernet, icmp, ipv4, tcp, udp, vxlan
from tests.paths import DATA

TIMES = [1_700_000_000_000_000_000 + i * 1_500_000 for i in range(4)]
FRAMES = [
    ethernet(ipv4(tcp(seq=7, ack=9, flags="S."), src="10.244.1.2", dst="10.244.2.3"), src="02:00:00:00:00:0a"),
    ethernet(ipv4(icmp(type_=8, ident=3, seq=4), src="10.0.0.1", dst="10.0.0.2", proto=1)),
    ethernet(arp(spa="10.0.0.1", tpa="10.0.0.9"), ethertype=0x0806),
    ethernet(ipv4(udp(vxlan(ethernet(ipv4(tcp(seq=11, flags="P."), src="10.244.1.2", dst="10.244.2.3"))),
                      sport=50000, dport=8472), src="192.168.0.11", dst="192.168.0.12", proto=17)),
]


def run(*args: str, stdin: bytes | None = None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(["read", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    path = tmp_path / "four.pcap"
    path.write_bytes(pcap_file.encode(FRAMES, TIMES, 1))
    return path


def test_table_is_readable(capture: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(f"node1={capture}", monkeypatch=monkeypatch, capsys=capsys)
    assert code == ExitCode.OK and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["frame", "node", "time", "proto", "source", "destination", "flags", "detail", "len", "tunnel"]
    assert lines[1].split()[:8] == ["0", "node1", "22:13:20.000000", "TCP", "10.244.1.2:40000", "10.244.2.3:80", "S.",
                                    "seq"]
    assert "ICMP" in lines[2] and "type 8 code 0 id 3 seq 4" in lines[2]
    assert lines[3].split()[3:6] == ["ARP", "10.0.0.1", "10.0.0.9"]
    assert lines[4].split()[-1] == "vxlan" and "10.244.1.2:40000" in lines[4]


def test_json_lines(capture: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("--format", "json", str(capture), monkeypatch=monkeypatch, capsys=capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == ExitCode.OK and len(rows) == 4
    assert list(rows[0]) == list(NAMES)
    assert rows[0]["src"] == "10.244.1.2" and rows[0]["eth_src"] == "02:00:00:00:00:0a" and rows[0]["seq"] == 7
    assert rows[3]["outer_src"] == "192.168.0.11" and rows[3]["src"] == "10.244.1.2" and rows[3]["vni"] == 1
    assert rows[2]["arp_tpa"] == "10.0.0.9" and rows[2]["src"] is None


def test_csv_to_a_file(capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.csv"
    code, out, _ = run("--format", "csv", "-o", str(target), str(capture), str(capture), monkeypatch=monkeypatch,
                       capsys=capsys)
    rows = list(csv.DictReader(target.read_text().splitlines()))
    assert code == ExitCode.OK and out == ""
    assert len(rows) == 8 and [r["input"] for r in rows] == ["0"] * 4 + ["1"] * 4  # one header for both inputs
    assert rows[1]["dst"] == "10.0.0.2" and rows[1]["icmp_seq"] == "4"


def test_parquet_holds_the_typed_table(capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.parquet"
    code, _, _ = run("--format", "parquet", "-o", str(target), f"n={capture}", monkeypatch=monkeypatch, capsys=capsys)
    table = pl.read_parquet(target)
    assert code == ExitCode.OK
    assert table.schema == pl.Schema(SCHEMA)
    assert table.equals(read([InputSpec(str(capture), node="n")]).table)


def test_parquet_needs_an_output(capture: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("--format", "parquet", str(capture), monkeypatch=monkeypatch, capsys=capsys)
    assert code == ExitCode.USAGE and "needs -o" in err


def test_damaged_input_exits_3_after_writing_what_it_read(capture: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capture.read_bytes()[:-5])
    code, out, err = run("--format", "csv", str(cut), monkeypatch=monkeypatch, capsys=capsys)
    assert code == ExitCode.DAMAGED_INPUT
    assert len(out.splitlines()) == 1 + 3
    size = cut.stat().st_size
    last = size - (16 + len(FRAMES[3]) - 5)
    assert f"warning: {cut}:byte {last}: packet cut short" in err


def test_nothing_usable_exits_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    code, _, err = run(str(empty), monkeypatch=monkeypatch, capsys=capsys)
    assert code == ExitCode.BAD_INPUT and "empty input" in err
    code, _, err = run(str(tmp_path / "nope.pcap"), monkeypatch=monkeypatch, capsys=capsys)
    assert code == ExitCode.BAD_INPUT and "nope.pcap: cannot read it" in err and "Traceback" not in err


def test_standard_input(capture: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("--format", "json", "-", stdin=capture.read_bytes(), monkeypatch=monkeypatch, capsys=capsys)
    assert code == ExitCode.OK and len(out.splitlines()) == 4


def test_parquet_is_written_batch_by_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.parquet as pq

    from cniscope.commands.read import PARQUET_BATCH

    n = PARQUET_BATCH + 4464  # more than one batch
    path = tmp_path / "big.pcap"
    path.write_bytes(pcap_file.encode([FRAMES[0]] * n, [TIMES[0] + i for i in range(n)], 1, nanos=True))
    target = tmp_path / "big.parquet"
    code, _, _ = run("--format", "parquet", "-o", str(target), str(path), monkeypatch=monkeypatch, capsys=capsys)
    meta = pq.ParquetFile(target).metadata
    assert code == ExitCode.OK and meta.num_rows == n
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [PARQUET_BATCH, 4464]
    assert pl.read_parquet(target, columns=["frame"])["frame"].to_list() == list(range(n))


GOLDEN_TABLE = """\
frame  node   time             proto  source            destination    flags  detail                    len  tunnel
0      node1  22:13:20.000000  TCP    10.244.1.2:40000  10.244.2.3:80  S.     seq 7 ack 9 win 64240     0
1      node1  22:13:20.001500  ICMP   10.0.0.1          10.0.0.2              type 8 code 0 id 3 seq 4  0
2      node1  22:13:20.003000  ARP    10.0.0.1          10.0.0.9
3      node1  22:13:20.004500  TCP    10.244.1.2:40000  10.244.2.3:80  P.     seq 11 ack 0 win 64240    0    vxlan
"""


def test_table_golden(capture: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(f"node1={capture}", monkeypatch=monkeypatch, capsys=capsys)[1] == GOLDEN_TABLE


def test_table_on_a_terminal_uses_rich(capture: Path) -> None:
    from cniscope.report import table_out

    out = io.StringIO()
    table_out._write_to(read([InputSpec(str(capture), node="node1")]).table, "table", out, terminal=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and lines[0].split()[:3] == ["frame", "node", "time"]
    assert "10.244.1.2:40000" in lines[1] and lines[4].rstrip().endswith("vxlan")


@pytest.mark.parametrize("fmt, target", [("json", "/dev/full"), ("parquet", "/dev/full"), ("csv", "{tmp}/no/such/dir.csv")])
def test_output_that_cannot_be_written_exits_5(fmt: str, target: str, capture: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = target.format(tmp=tmp_path)
    code, _, err = run("--format", fmt, "-o", target, str(capture), monkeypatch=monkeypatch, capsys=capsys)
    assert code == ExitCode.ENVIRONMENT and f"error: cannot write {target}" in err


def test_parquet_decoded_on_the_cores_its_encoders_leave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from cniscope import ingest
    from cniscope.commands import read as command

    monkeypatch.setattr(ingest, "DECODERS", 2)
    for cores, decoders in ((2, 1), (3, 1), (4, 2), (8, 2)):
        monkeypatch.setattr(command.os, "cpu_count", lambda cores=cores: cores)
        assert command._decoders() == decoders, cores
    monkeypatch.setattr(ingest, "DECODERS", 0)  # one core: the reading thread decodes
    assert command._decoders() == 0
    path = DATA / "scenarios" / "calico-vxlan" / "cross-node" / "merged.pcapng"
    monkeypatch.setattr(command, "PARQUET_BATCH", 10)
    tables = []
    for decoders in (0, 1, 2):  # on this thread, on one more, on 2 more
        monkeypatch.setattr(command, "_decoders", lambda decoders=decoders: decoders)
        target = tmp_path / f"{decoders}.parquet"
        code, _, _ = run("--format", "parquet", "-o", str(target), str(path), monkeypatch=monkeypatch, capsys=capsys)
        assert code == ExitCode.OK
        tables.append(pl.read_parquet(target))
    assert tables[0].equals(tables[1], null_equal=True) and tables[0].equals(tables[2], null_equal=True)
    assert tables[0].height > 50
