"""The lab commands chain: `lab up` keeps its lab, `lab list` says so, `lab record`'s directory analyses whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from cniscope.cli import cli
from cniscope.lab.faults import KINDS
from tests.marks import needs_root

from .conftest import assert_no_leak, lab_name

CNISCOPE = [sys.executable, "-m", "cniscope"]


def cniscope(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CNISCOPE, *args], capture_output=True, text=True, timeout=timeout)


def test_fault_help_lists_every_fault_with_its_arguments_and_what_it_breaks() -> None:
    shown = CliRunner().invoke(cli, ["lab", "fault", "--help"], terminal_width=200).output
    for name, kind in KINDS.items():
        line = next(line.strip() for line in shown.splitlines() if line.strip().startswith(name + " ") or line.strip() == name)
        assert all(f"{p}={p.upper()}" in line for p in kind.params) and all(f"[{o}=" in line for o in kind.optional), line
        assert kind.breaks in shown
    assert "mtu node=NODE iface=IFACE mtu=MTU [blackhole=yes|no]" in shown


@needs_root
def test_a_lab_made_by_lab_up_is_kept_after_its_shell_is_gone() -> None:
    name = lab_name("kept")
    # the shell that ran `lab up` ends at once, as in a script or a CI step
    up = subprocess.run(["sh", "-c", " ".join([*CNISCOPE, "lab", "up", "kube-router", "--nodes", "2", "--name", name])],
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        listed = [line for line in cniscope("lab", "list").stdout.splitlines() if line.startswith(name + "\t")]
        assert listed and listed[0].endswith(f"kept (cniscope lab down {name} removes it)")
        assert f"reaped lab {name}" not in cniscope("lab", "reap").stdout
        (lab,) = [lab for lab in json.loads(cniscope("lab", "list", "--json").stdout)["labs"] if lab["name"] == name]
        assert lab["kept"] is True and lab["model"] == "kube-router" and lab["nodes"] == ["node1", "node2"]
        assert cniscope("lab", "curl", name, "client1", "web2").stdout == "web2 on node2\n"
    finally:
        assert cniscope("lab", "down", name).returncode == 0
    assert_no_leak()


@needs_root
def test_analyze_reads_a_lab_record_directory_scenario_by_scenario(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    recorded = cniscope("lab", "record", "kube-router", "--nodes", "2", "-o", str(out), timeout=300)
    assert recorded.returncode == 0, recorded.stderr
    scenarios = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(scenarios) >= 4
    shown = cniscope("analyze", str(out))
    assert shown.returncode == 0, shown.stderr
    headings = [line for line in shown.stdout.splitlines() if line.startswith("=== scenario ")]
    assert [h.split()[2] for h in headings] == scenarios
    assert shown.stdout.count("\nFindings (") == len(scenarios)
    assert shown.stderr.count("info: cluster inventory ") == len(scenarios)  # each scenario's cluster.yaml, unasked
    assert "pod default/" in shown.stdout  # the inventory names the pods on the hops


@needs_root
def test_a_failed_curl_comes_first_and_a_filter_keeps_only_it(tmp_path: Path) -> None:
    """The lab as a learner uses it: one curl that fails while BGP keeps talking; the report starts with it."""
    name = lab_name("failcurl")
    assert cniscope("lab", "up", "kube-router", "--nodes", "2", "--name", name).returncode == 0
    try:
        assert cniscope("lab", "fault", name, "drop", "node=node2", "iface=kube-bridge", "dir=out").returncode == 0
        out = tmp_path / "cap"
        cap = cniscope("lab", "capture", name, "-o", str(out), "--duration", "20", "--",
                       "client1", "curl", "-s", "--max-time", "3", "10.244.2.10")
        assert cap.returncode == 28, cap.stderr  # curl: timed out
    finally:
        assert cniscope("lab", "down", name).returncode == 0
    shown = cniscope("analyze", str(out))
    page = shown.stdout.splitlines()
    assert page[3].startswith("Findings (") and len(page) <= 300
    first = next(line for line in page if line.startswith("Conversation "))
    assert ":80  [" in first or first.rstrip().endswith(":80") or ":80 " in first, first  # the curl, before any BGP
    assert "conversations with problems" in shown.stdout
    focused = cniscope("analyze", "--filter", "tcp port 80", str(out)).stdout
    talks = [line for line in focused.splitlines() if line.startswith("Conversation ")]
    assert talks and all(":80" in line for line in talks) and ":179" not in focused
