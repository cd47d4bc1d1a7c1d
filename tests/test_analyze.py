"""`analyze` on directories: a `cniscope capture` directory, or any directory of captures (one node per file)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.errors import InputError
from cniscope.ingest import expand
from cniscope.sources import InputSpec
from tests.cli import run
from tests.paths import CORPUS, DATA, SEED


def test_a_plain_directory_gives_one_node_per_capture_file(tmp_path: Path) -> None:
    lines = (CORPUS / "14-cilium-vxlan-otv-vv.txt").read_text().splitlines(keepends=True)
    (tmp_path / "node01.txt").write_text("".join(lines[:28]))
    (tmp_path / "node02.txt.gz").write_bytes(gzip.compress("".join(lines[28:]).encode()))
    (tmp_path / "notes.md").write_text("# what I did\n- pinged B from A\n")  # not a capture: left out
    (tmp_path / ".node03.pcap").write_bytes((CORPUS / "02-ysaied-pan-cn-calico-eth.pcap").read_bytes())  # hidden: left out
    specs = expand([InputSpec(str(tmp_path))])
    assert [(Path(s.path).name, s.node) for s in specs] == [("node01.txt", "node01"), ("node02.txt.gz", "node02")]
    report = analyze([InputSpec(str(tmp_path))])
    (clock,) = report.clocks  # the same alignment as naming the two files by hand (tests/test_journeys.py)
    assert (clock.node, clock.reference) == ("node02", "node01")
    assert abs(clock.offset_ns + 12 * 3600 * 10**9) < 50_000_000


def test_a_node_given_to_a_directory_names_every_file_in_it(tmp_path: Path) -> None:
    shutil.copy(SEED, tmp_path / "morning.txt")
    shutil.copy(SEED, tmp_path / "evening.txt")
    assert {s.node for s in expand([InputSpec(str(tmp_path), "node3")])} == {"node3"}


def test_a_directory_without_captures_is_refused_with_exit_4(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("\x00\x01 nothing to see")
    with pytest.raises(InputError, match="no capture in this directory"):
        expand([InputSpec(str(tmp_path))])
    done = subprocess.run([sys.executable, "-m", "cniscope", "analyze", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 4 and "no capture in this directory" in done.stderr and "Traceback" not in done.stderr


def test_symlink_loops_in_a_directory_are_skipped_with_a_warning(tmp_path: Path) -> None:
    shutil.copy(SEED, tmp_path / "node3.txt")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    ran = run("analyze", str(tmp_path))
    assert ran.code == 3, ran.err  # what could be read is used; the input was incomplete
    for name in ("a", "b", "loop"):
        assert f"warning: {tmp_path / name}: skipped: Too many levels of symbolic links" in ran.err
    assert "node3" in ran.out and "Traceback" not in ran.err


def test_an_unreadable_entry_is_skipped_and_an_unreadable_directory_refused(tmp_path: Path) -> None:
    """Run without root's power to bypass file permissions (setpriv drops it, when the tests run as root)."""
    shutil.copy(SEED, tmp_path / "node3.txt")
    (tmp_path / "node4.txt").write_bytes(SEED.read_bytes())
    (tmp_path / "node4.txt").chmod(0)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0)
    plain = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    done = subprocess.run([*plain, sys.executable, "-m", "cniscope", "analyze", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert f"warning: {tmp_path / 'node4.txt'}: skipped: Permission denied" in done.stderr
    refused = subprocess.run([*plain, sys.executable, "-m", "cniscope", "analyze", str(closed)], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 4 and f"{closed}: cannot read the directory: Permission denied" in refused.stderr
    assert "Traceback" not in done.stderr + refused.stderr


def test_a_capture_directory_brings_its_cluster_inventory(tmp_path):
    scenario = Path(__file__).parent / "data" / "scenarios" / "calico-vxlan" / "cross-node"
    assert analyze([InputSpec(str(scenario))]).inventory is not None
    shutil.copytree(scenario, tmp_path / "copy")
    (tmp_path / "copy" / "cluster.yaml").unlink()
    assert analyze([InputSpec(str(tmp_path / "copy"))]).inventory is None


def test_the_analysis_asks_numpy_for_no_huge_pages_and_gives_its_setting_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """`analyze` and the command's analysis run with numpy's huge-page advice off from reading on (a fresh array
    of any stage could wait for the kernel to compact memory); numpy's setting is what it was afterwards."""
    import numpy as np

    import cniscope.analyze as analyze_mod
    from cniscope.cli import program

    multiarray, seen = (getattr(np, "_core", None) or np.core).multiarray, []

    def reading(*args: object, **kwargs: object) -> None:
        seen.append(multiarray._get_madvise_hugepage())
        raise ZeroDivisionError

    monkeypatch.setattr(analyze_mod, "read_within", reading)  # the command's too: it imports it when it runs
    was = multiarray._get_madvise_hugepage()
    for setting in (True, False):
        multiarray._set_madvise_hugepage(setting)
        with pytest.raises(ZeroDivisionError):
            analyze([InputSpec(str(SEED))])
        with pytest.raises(ZeroDivisionError):
            program(["analyze", "--json", str(SEED)])
        assert multiarray._get_madvise_hugepage() == setting and seen == [False, False]
        seen.clear()
    multiarray._set_madvise_hugepage(was)


@pytest.mark.parametrize("options, imported", [
    ((), []),
    (("--filter", "tcp"), ["cniscope.filters"]),
    (("--cluster", str(DATA / "scenarios" / "calico-vxlan" / "cross-node" / "cluster.yaml")), ["cniscope.inventory"]),
])
def test_what_only_some_analyses_need_is_imported_by_those_alone(options: tuple[str, ...], imported: list[str]) -> None:
    """A filter, an inventory, spilling and several nodes' clocks: the analysis of one capture file without them
    imports none of their modules (7 ms of its CPU at 200k packets, a tenth of its own modules' imports)."""
    probe = ("import contextlib, io, sys\nfrom cniscope.cli import program\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    code = program(sys.argv[1:])\n"
             "later = ('cniscope.filters', 'cniscope.inventory', 'cniscope.spill', 'cniscope.clocks', 'cniscope.stretches')\n"
             "print(code, *[m for m in later if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe, "analyze", "--json", *options, str(CORPUS / "01-ysaied-pan-cn-calico-vxlan.pcap")],
                          capture_output=True, text=True, timeout=120)
    code, *modules = done.stdout.split()
    assert code == "0" and modules == imported, done.stderr
