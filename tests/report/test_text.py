"""The terminal report: golden files (fixed width, no colour), colour only on terminals.

Golden files live in tests/data/golden/text/. After a deliberate change of the
report, rewrite them with CNISCOPE_UPDATE_GOLDEN=1 and read the diff before
committing it.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from cniscope.analyze import analyze
from cniscope.cli import cli
from cniscope.report import text
from cniscope.report.format import delay
from cniscope.sources import InputSpec
from tests.paths import CORPUS, REPO, SEED
from tests.report.build import receiver_stamps_first, service_call

GOLDEN = REPO / "tests" / "data" / "golden" / "text"
# (golden name, directory, input as given on the command line): relative names keep the files machine-independent
CASES = [
    ("seed-kube-router-node3", SEED.parent, f"node3={SEED.name}"),
    ("04-msazure-flannel-vxlan-e", CORPUS, "04-msazure-flannel-vxlan-e.txt"),
    ("10-inksnw-kuberouter-bgp-any-v", CORPUS, "10-inksnw-kuberouter-bgp-any-v.txt"),
    ("22-weave3014-nodeport-any-dnat-snat", CORPUS, "22-weave3014-nodeport-any-dnat-snat.txt"),
    ("02-ysaied-pan-cn-calico-eth", CORPUS, "02-ysaied-pan-cn-calico-eth.pcap"),
]
ESC = "\x1b["


def _console(terminal: bool, width: int = 100) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=terminal, color_system="standard" if terminal else None,
                   highlight=False, soft_wrap=True), out


@pytest.mark.parametrize("name,directory,given", CASES, ids=[c[0] for c in CASES])
def test_golden(name: str, directory: Path, given: str, monkeypatch):
    monkeypatch.chdir(directory)
    report = analyze([InputSpec.parse(given)])
    rendered = text.render(report)
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("CNISCOPE_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    console, out = _console(terminal=False)
    text.show(report, console)
    assert out.getvalue() == rendered  # what a pipe gets: the same text, no escapes


def test_colour_on_a_terminal_only():
    report = service_call()
    console, out = _console(terminal=True)
    text.show(report, console)
    coloured = out.getvalue()
    assert "\x1b[36m  [info] \x1b[0m" in coloured  # the NAT finding's severity, cyan
    assert _strip(coloured).rstrip() == text.render(report).rstrip()  # same words and layout as the plain text


def _strip(coloured: str) -> str:
    return "\n".join(line.rstrip() for line in re.sub(r"\x1b\[[0-9;]*m", "", coloured).splitlines())


def test_no_color_and_dumb_terminals_get_plain_text(monkeypatch):
    report = service_call()
    monkeypatch.setenv("NO_COLOR", "1")
    console, out = _console(terminal=True)
    text.show(report, console)
    assert out.getvalue() == text.render(report)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    console, out = _console(terminal=True)
    text.show(report, console)
    assert out.getvalue() == text.render(report)


def test_a_hop_between_nodes_may_show_a_negative_delay_but_never_a_plus_minus():
    """Between nodes, delays are only as good as the clocks' alignment (microseconds apart at best)."""
    page = text.render(receiver_stamps_first())
    assert "+-" not in page
    assert re.search(r"node2 eth0 In\s+-20 us \(clocks \+/- 20 us\)", page)  # the delay is as good as the clocks
    assert re.search(r"node2 cni0 Out\s+\+9 us  pod bridge", page)  # on one node: one clock, no caveat
    assert [delay(n) for n in (None, 0, 9_000, -3_000, -1_500_000)] == ["-", "+0 ns", "+9 us", "-3 us", "-1.50 ms"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A capture of the reference generator (benchmarks/gen_capture.py): thousands of conversations, some unanswered."""
    out = tmp_path_factory.mktemp("generated") / "node.pcap"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gen_capture.py"), "-n", "40000", "--snaplen", "256",
                    "--pcap", str(out)], check=True, capture_output=True)
    return out


def test_a_large_capture_answers_first_on_one_page_with_true_counts(generated: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["analyze", str(generated)])
    data = json.loads(runner.invoke(cli, ["analyze", "--json", str(generated)]).output)
    page = shown.output.splitlines()
    assert len(page) <= 300
    assert page[1] == f"{data['journeys_total']:,} packets followed (journeys), {data['flows_total']:,} conversations"
    assert page[3].startswith("Findings (") and data["findings"]  # the answer, before anything else
    assert page.index("Capture") < next(n for n, line in enumerate(page) if line.startswith("Conversations (showing"))
    heading = next(line for line in page if line.startswith("Conversations (showing"))
    shown_flows = int(re.search(r"showing ([\d,]+) of", heading).group(1))
    assert f"of {data['flows_total']:,}, problems first)" in heading and 0 < shown_flows < data["flows_total"]
    assert sum(line.startswith("Conversation ") for line in page) == shown_flows
    # the first conversation shown is the worst one the summary ranks first
    ranked = next(line for line in page if line.startswith("    conversation "))
    first = next(line for line in page if line.startswith("Conversation "))
    assert first.split(":")[0] == "C" + ranked.strip().split(":")[0][1:]
    assert not any(re.search(r"\?\s+(In|Out)\b", line) for line in page)  # hops name their interface (ifindex N)
    assert "ifindex 2 Out" in shown.output


def test_all_prints_every_conversation_and_flow_one_with_every_packet(generated: Path) -> None:
    runner = CliRunner()
    everything = runner.invoke(cli, ["analyze", "--all", str(generated)]).output
    total = int(re.search(r"([\d,]+) conversations\n", everything).group(1).replace(",", ""))
    assert f"Conversations (showing {total:,} of {total:,})" in everything
    assert "more packet" not in everything and "more conversation" not in everything
    # the longest conversation, whole, even where the page shows a few packets of each
    longest = max(analyze([InputSpec(str(generated))]).flows, key=lambda f: f.packets)
    one = analyze([InputSpec(str(generated))], flow=longest.id)
    page = text.render(one, text.View(packets=2)).splitlines()
    assert page[1].startswith(f"selected by conversation {longest.id}: ") and " 1 of " in page[1]
    assert sum(line.startswith("  packet ") for line in page) == longest.packets > 2
    assert sum(line.startswith("Conversation ") for line in page) == 1


def test_findings_only() -> None:
    out = CliRunner().invoke(cli, ["analyze", "--findings-only", str(CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt")]).output
    assert out.splitlines()[3] == "Findings (2)" and "Capture" not in out and "Conversation" not in out


def test_the_summary_explains_tcpdumps_direction_letters_when_they_appear(tmp_path: Path) -> None:
    paste = tmp_path / "any.txt"
    paste.write_text("12:00:00.000001 eth0  P   IP 10.0.0.1.1000 > 10.0.0.2.80: Flags [S], seq 1, win 100, length 0\n"
                     "12:00:00.000002 eth0  B   ARP, Request who-has 10.0.0.9 tell 10.0.0.1, length 28\n")
    page = text.render(analyze([InputSpec(str(paste))]))
    assert "  tcpdump's direction letters: P = to another host (seen in passing: promiscuous, or a bridge port); " \
           "B = broadcast" in page
    assert "direction letters" not in text.render(analyze([InputSpec(str(SEED), "node3")]))


def test_every_findings_packets_read_in_numeric_order(generated: Path) -> None:
    """The tunnel finding met its packets envelope by envelope ("30, 34, 33, 37" here once): every finding's
    packets are listed in numeric order, the order they were first seen."""
    out = CliRunner().invoke(cli, ["analyze", "--findings-only", str(generated)]).output
    lists = [[int(n) for n in line.split(":", 1)[1].replace("...", "").split(",")]
             for line in out.splitlines() if line.startswith("      packets: ")]
    assert sum("] tunnel" in line for line in out.splitlines()) >= 2 and len(lists) >= 5
    assert all(numbers == sorted(set(numbers)) for numbers in lists), lists
