"""`cniscope demo`: rebuild the seed capture's cluster, record it, explain it, remove it; the capture stays.

The seed: kube-router, master2 (192.168.200.21), node2, node3 (192.168.200.23)
with pod CIDR 10.244.3.0/24 and an nginx pod at 10.244.3.10; `curl
10.244.3.10` from master2, captured on node3, where each packet shows three
times: eth0, then kube-bridge, then the pod's veth.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from cniscope.analyze import analyze
from cniscope.lab.cluster import Lab
from cniscope.lab.cluster_yaml import write_inventory
from cniscope.lab.record import capture
from cniscope.lab.spec import seed_spec
from cniscope.report import html
from cniscope.report.text import render
from cniscope.results import Report
from cniscope.sources import InputSpec


def run_demo(output: Path, echo: Callable[[str], None] = click.echo) -> Report:
    """Build, capture into `output`, tear down, analyze; return the report."""
    spec = seed_spec(name=f"demo{os.getpid()}")
    echo(f"building the seed cluster ({spec.model}: {', '.join(f'{n.name} {n.ip}' for n in spec.nodes)}) ...")
    with Lab.up(spec) as lab:
        echo(f"  up in {lab.state.up_seconds:.2f} s, BGP routes in {lab.state.converge_seconds:.2f} s")
        echo("master2$ curl 10.244.3.10   (node3# tcpdump -i any port 80)")
        captures, result = capture(lab, ["node3"], output, lambda: lab.curl("master2", "10.244.3.10"), bpf="port 80")
        if result.returncode != 0:
            echo(f"  curl failed: {result.stderr.strip()}")
        else:
            echo(f"  {result.stdout.strip()}")
        inventory = write_inventory(spec, output / "cluster.yaml")
    echo(f"lab removed; capture in {captures[0].path} ({captures[0].packets} packets), inventory {inventory}\n")
    return analyze([InputSpec(str(c.path), node=c.node) for c in captures], cluster=str(inventory))


@click.command("demo")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Directory for the capture, its inventory and the HTML report (default: a new one under /tmp).")
def demo_command(output: str | None) -> None:
    """Build the seed's kube-router cluster, curl the nginx pod from master2, capture on node3, explain, tear down.

    The capture directory stays, with the HTML report in it: the demo ends by saying how to open it and how to
    analyse the capture again.
    """
    if output:
        Path(output).mkdir(parents=True, exist_ok=True)
    directory = Path(output) if output else Path(tempfile.mkdtemp(prefix="cniscope-demo-"))
    report = run_demo(directory)
    page = directory / "report.html"
    html.write(report, str(page))
    click.echo(render(report))
    click.echo(next_steps(directory, page))


def next_steps(directory: Path, page: Path) -> str:
    """What to do with what the demo leaves."""
    return (f"The capture stays in {directory} (node3.pcapng, manifest.json, cluster.yaml, report.html):\n"
            f"  open the HTML report:  xdg-open {page}   (or any browser: {page.resolve().as_uri()})\n"
            f"  analyse it again:      cniscope analyze {directory}\n"
            f"  one conversation:      cniscope analyze --flow 0 {directory}\n"
            f"  in Wireshark:          wireshark {directory / 'merged.pcapng'}\n")
