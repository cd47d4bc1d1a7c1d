"""`cniscope analyze` streams and exit codes: the report on stdout, what reading found on stderr (once each)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

import cniscope.analyze as analysis
from cniscope.cli import main
from tests.paths import CORPUS, DATA

NOTE = DATA / "seed" / "000_e1caf8e46a1ea381.txt"  # the seed's study note: prose, a prompt, then tcpdump's lines


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["analyze", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_prose_around_a_paste_is_an_info_line_on_stderr_and_exit_0(monkeypatch, capsys) -> None:
    code, out, err = run(monkeypatch, capsys, str(NOTE))
    assert code == 0
    assert err.splitlines() == [
        f"info: {NOTE}: 5 lines of text that is no tcpdump output skipped (line 1, 3, 5, 7, 9)",
        f"info: {NOTE}: nodes named by the shell prompts that ran tcpdump: node3 (line 12)",
    ]
    assert "info:" not in out and "warning" not in out and "Conversation 0" in out


@pytest.mark.parametrize("as_json", [False, True])
def test_damage_is_a_warning_said_once_and_exit_3(monkeypatch, capsys, tmp_path: Path, as_json: bool) -> None:
    pasted = NOTE.read_text().splitlines(keepends=True)
    damaged = tmp_path / "damaged.txt"
    damaged.write_text("".join(pasted[:14]) + "\x07\x1b garbage \x01\n" + "".join(pasted[14:]))
    code, out, err = run(monkeypatch, capsys, *(["--json"] if as_json else []), str(damaged))
    assert code == 3
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"{damaged}:line 15: not a tcpdump packet line" in warnings[0]
    assert "line 15" not in out if not as_json else out.count("line 15") == 1  # JSON keeps it with its input, once


def test_a_jpeg_is_an_error_not_a_warning(monkeypatch, capsys, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8)
    code, out, err = run(monkeypatch, capsys, str(photo))
    assert code == 4 and out == ""
    assert err.startswith(f"error: {photo}:byte 0: not a capture: starts with ff d8 ff e0") and "warning" not in err
    # beside a good capture: the good one is reported, the photo is still an error
    code, out, err = run(monkeypatch, capsys, str(photo), str(CORPUS / "04-msazure-flannel-vxlan-e.txt"))
    assert code == 4 and "Findings (" in out and err.startswith(f"error: {photo}")


def test_text_with_no_packet_at_all_is_not_a_capture(monkeypatch, capsys, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("what I tried today\nping worked, curl did not\n")
    code, out, err = run(monkeypatch, capsys, str(notes))
    assert (code, out) == (4, "") and err == f"error: {notes}: no tcpdump packet line in 2 lines of text\n"


def _capture_dir(path: Path, inventory: bool = True) -> Path:
    """A capture directory as `cniscope lab capture` leaves it: manifest, the node's capture, cluster.yaml."""
    path.mkdir(parents=True)
    (path / "node3.txt").write_text((DATA / "seed" / "kube-router-curl-node3.txt").read_text())
    (path / "manifest.json").write_text(json.dumps({"format": "cniscope-capture", "nodes": [{"name": "node3", "file": "node3.txt"}]}))
    if inventory:
        (path / "cluster.yaml").write_text((DATA / "inventory" / "seed-node3.yaml").read_text())
    return path


def test_a_capture_directory_brings_its_cluster_inventory(monkeypatch, capsys, tmp_path: Path) -> None:
    directory = _capture_dir(tmp_path / "cap")
    code, out, err = run(monkeypatch, capsys, str(directory))
    assert code == 0 and f"info: cluster inventory {directory / 'cluster.yaml'}" in err
    assert "veth to pod default/nginx-7c5" in out  # the inventory named the pod
    code, out, _ = run(monkeypatch, capsys, "--filter", "pod nginx-7c5 and dst port 80", str(directory))
    assert code == 0 and "3 of 5 packets" in out


def test_a_lab_record_directory_gives_a_section_per_scenario(monkeypatch, capsys, tmp_path: Path) -> None:
    for scenario in ("cross-node", "same-node"):
        _capture_dir(tmp_path / scenario)
    (tmp_path / "notes.md").write_text("recorded by hand\n")
    code, out, _ = run(monkeypatch, capsys, str(tmp_path))
    assert code == 0
    headings = [line for line in out.splitlines() if line.startswith("=== scenario")]
    assert headings == [f"=== scenario cross-node (1 of 2): cniscope analyze {tmp_path / 'cross-node'}",
                        f"=== scenario same-node (2 of 2): cniscope analyze {tmp_path / 'same-node'}"]
    assert out.count("Findings (0)") == 2
    code, _, err = run(monkeypatch, capsys, "--json", str(tmp_path))
    assert code == 2 and "take one at a time" in err


def test_the_cycle_collector_is_paused_for_the_analysis_and_resumed(monkeypatch, capsys) -> None:
    """The analysis runs without the cycle collector (its objects make no cycles); it is on again after, even
    when the analysis fails, and stays off after when it was off before."""
    seen: list[bool] = []
    real = analysis.analyze_capture

    def watched(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(analysis, "analyze_capture", watched)
    assert gc.isenabled()
    code, out, _ = run(monkeypatch, capsys, "--json", str(NOTE))
    assert code == 0 and json.loads(out)["packets"] > 0
    assert seen == [False] and gc.isenabled()

    def failing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "analyze_capture", failing)
    assert run(monkeypatch, capsys, str(NOTE))[0] == 130 and gc.isenabled()
    gc.disable()
    try:
        monkeypatch.setattr(analysis, "analyze_capture", watched)
        assert run(monkeypatch, capsys, str(NOTE))[0] == 0 and not gc.isenabled()
    finally:
        gc.enable()


def test_json_of_a_small_capture_imports_no_terminal_code() -> None:
    """rich (the terminal report, the progress line) is imported only for what shows it: not for `--json` of a
    capture too small for a progress line; the terminal report imports it."""
    probe = ("import sys, io, contextlib\nfrom cniscope.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    code = main(sys.argv[1:])\n"
             "print(code, 'rich' in sys.modules)")
    for args, imported in ((["analyze", "--json", str(NOTE)], "False"), (["analyze", str(NOTE)], "True")):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
        assert done.stdout.split() == ["0", imported], done.stderr
