"""What the inputs need in memory, from their sizes; and the command's walk ahead only for an input read in memory."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from cniscope import ahead, footprint
from cniscope.sources import InputSpec
from tests.cli import run
from tests.paths import CORPUS, SEED


def test_the_size_counts_compressed_inputs_expanded_and_standard_input_as_unknown(tmp_path: Path) -> None:
    plain = CORPUS / "01-ysaied-pan-cn-calico-vxlan.pcap"
    packed = tmp_path / "capture.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert footprint.input_bytes([InputSpec(str(plain))]) == plain.stat().st_size
    assert footprint.input_bytes([InputSpec(str(packed))]) == packed.stat().st_size * footprint.EXPANDS
    assert footprint.input_bytes([InputSpec("-")]) is None and not footprint.needed([InputSpec("-")], 1)


def test_an_input_below_memory_is_read_ahead_and_one_to_be_spilled_is_not(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A spilled input is read again batch by batch: batches walked and decoded ahead of the imports would be thrown
    away (up to `ahead.DECODED` of them), so the command starts no walk for it; the report is the same either way."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    started: list[list[InputSpec]] = []
    start = ahead.start
    monkeypatch.setattr(ahead, "start", lambda specs, **kw: started.append(specs) or start(specs, **kw))
    spec = InputSpec(str(SEED))
    assert footprint.needed([spec], 4 << 10) and not footprint.needed([spec], 1 << 30)
    small = run("analyze", "--json", "--memory", "4K", str(SEED))
    assert started == []
    large = run("analyze", "--json", "--memory", "1G", str(SEED))
    assert [[s.path for s in specs] for specs in started] == [[str(SEED)]]
    assert small.code == large.code == 0 and small.out == large.out
