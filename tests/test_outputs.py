"""Outputs that exist are never replaced without --force (capture -o, --html, --pcapng, read -o)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cniscope.errors import ExitCode, UsageError
from cniscope.outputs import check_new_dir, check_new_file, opened
from cniscope.wire import pcap as pcap_file
from tests.cli import run
from tests.frames import ethernet, ipv4, tcp


@pytest.fixture
def capture(tmp_path: Path) -> str:
    path = tmp_path / "in.pcap"
    path.write_bytes(pcap_file.encode([ethernet(ipv4(tcp(flags="S")))], [1_700_000_000_000_000_000], 1))
    return str(path)


def test_an_existing_file_is_refused_a_special_one_written(tmp_path: Path) -> None:
    earlier = tmp_path / "report.html"
    earlier.write_text("my notes")
    with pytest.raises(UsageError, match="report.html: the file exists; give --force to replace it"):
        check_new_file(str(earlier), False, "--html")
    check_new_file(str(earlier), True, "--html")
    check_new_file("/dev/null", False, "-o")
    check_new_file(str(tmp_path / "new.html"), False, "--html")


def test_a_directory_holding_files_is_refused(tmp_path: Path) -> None:
    check_new_dir(str(tmp_path / "new"), False)
    check_new_dir(str(tmp_path), False)  # empty
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds 1 entries already"):
        check_new_dir(str(tmp_path), False)
    check_new_dir(str(tmp_path), True)
    with pytest.raises(UsageError, match="not a directory"):
        check_new_dir(str(tmp_path / "notes.txt"), False)


@pytest.mark.parametrize("option", [["read", "-o"], ["read", "--format", "parquet", "-o"], ["analyze", "--html"],
                                    ["analyze", "--pcapng"]])
def test_commands_keep_an_existing_output(option: list[str], capture: str, tmp_path: Path) -> None:
    earlier = tmp_path / "earlier"
    earlier.write_text("someone's earlier work")
    refused = run(*option, str(earlier), capture)
    assert refused.code == ExitCode.USAGE and "give --force to replace it" in refused.err
    assert earlier.read_text() == "someone's earlier work"
    forced = run(option[0], "--force", *option[1:], str(earlier), capture)
    assert forced.code == ExitCode.OK, forced.err
    assert earlier.read_bytes() != b"someone's earlier work"


@pytest.mark.parametrize("command", [["capture", "--via", "netns:cst-none-", "--nodes", "a"], ["lab", "capture", "nolab"]])
def test_capture_into_a_directory_holding_files_is_refused(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "a.pcapng").write_text("an earlier capture")
    ran = run(*command, "-o", str(tmp_path), *(["--", "node1", "true"] if command[0] == "lab" else []))
    assert ran.code == ExitCode.USAGE and "holds 1 entries already" in ran.err and "--force" in ran.err
    assert (tmp_path / "a.pcapng").read_text() == "an earlier capture"


def test_a_regular_file_replaced_is_written_anew_not_truncated(tmp_path: Path) -> None:
    """--force over a regular file writes a new one (ext4 writes back a truncated file at its close, on the writer's
    time): a hard link to the old one keeps the old bytes. A symlink is written through, left a link."""
    earlier, kept = tmp_path / "out.csv", tmp_path / "kept.csv"
    earlier.write_text("old\n")
    kept.hardlink_to(earlier)
    with opened(str(earlier), binary=True) as target:
        target.write(b"new\n")
    assert earlier.read_text() == "new\n" and kept.read_text() == "old\n"
    link, through = tmp_path / "link.csv", tmp_path / "through.csv"
    through.write_text("old\n")
    link.symlink_to(through)
    with opened(str(link)) as target:
        target.write("new\n")
    assert link.is_symlink() and through.read_text() == "new\n"
