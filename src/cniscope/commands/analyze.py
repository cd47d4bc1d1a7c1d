"""`cniscope analyze`: the analysis of captures, printed as text or JSON, written as HTML or pcapng on request.

What is used only when asked for is named in `ON_REQUEST` and imported then: the HTML and pcapng writers
(together a fifth of a second of CPU, more than the rest of this module's imports), the Dask session
(asyncio, ssl) and the terminal report (rich: not for --json). The analysis itself (polars, numpy's users: 0.3 s on
one core) is imported once the inputs are known, so that one capture file's records are walked on the other core
meanwhile (`cniscope.ahead`); this module's own imports leave polars out, and numpy: the walk's thread starts, and
maps the file in, while numpy is imported (tests/test_ahead.py).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from cniscope import ahead, collector, footprint
from cniscope.commands.inputs import exit_code, input_specs, tell
from cniscope.errors import ExitCode, OutputError
from cniscope.heap import small_pages
from cniscope.models import MODELS
from cniscope.outputs import check_new_file
from cniscope.packets.kinds import UNREAD
from cniscope.sources import InputSpec
from cniscope.terminal import printable

if TYPE_CHECKING:
    from cniscope.results import Report

# the options whose code is imported only when they are given (and the terminal report, only without --json)
ON_REQUEST = {"--html": "cniscope.report.html:write", "--pcapng": "cniscope.report.pcapng_out:write",
              "--dask": "cniscope.dask_cluster:Session", "no --json": "cniscope.report.text"}


def _on_request(option: str) -> Any:
    """What ON_REQUEST names for `option`: a module's attribute (`module:name`) or the module."""
    module, _, name = ON_REQUEST[option].partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, name) if name else loaded


@click.command("analyze")
@click.argument("inputs", nargs=-1)
@click.option("--node", "nodes", multiple=True, metavar="NAME=FILE", help="An input that belongs to node NAME.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see report.schema.json).")
@click.option("--model", type=click.Choice(list(MODELS)), default=None, help="Force a network model instead of inferring it.")
@click.option("--cluster", type=click.Path(exists=True, dir_okay=False), help="Cluster inventory: kubectl JSON or short YAML.")
@click.option("--fail-on", type=click.Choice(["info", "warning", "error"]), default=None,
              help="Exit 1 when a finding of this severity or worse is found.")
@click.option("--max-journeys", type=int, default=20_000, show_default=True, help="Journeys kept in the report.")
@click.option("--memory", callback=lambda ctx, param, value: _size(value), metavar="SIZE",
              help="Working memory to plan for (512M, 4G; default: half of this machine's memory): packets are "
                   "correlated in partitions by fingerprint to fit, and inputs too large for it are spilled to a "
                   "temporary directory ($TMPDIR; 2-3 times their size) and correlated there. The same report either way.")
@click.option("--filter", "select", metavar="EXPR",
              help="Only the packets EXPR selects, with every sighting of each: tcpdump's host, net, port, portrange, "
                   "tcp, udp, icmp, arp, src/dst, and/or/not, ( ); and node NAME, iface NAME, pod NAME, service NAME "
                   "(with an inventory). Example: --filter 'tcp port 80 and not node node1'.")
@click.option("--flow", type=click.IntRange(min=0), metavar="ID", help="One conversation (its number in the report) with all its packets.")
@click.option("--all", "everything", is_flag=True, help="Print every finding, conversation and packet (the page is bounded otherwise).")
@click.option("--findings-only", is_flag=True, help="Print the findings and nothing else.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False),
              help="Also write the report as one self-contained HTML page (topology, ladder diagrams, waterfalls).")
@click.option("--pcapng", "pcapng_out", type=click.Path(dir_okay=False),
              help="Also write the packets with node and interface names and a comment on each (for Wireshark); "
                   "packets of tcpdump text are rebuilt from their decoded fields.")
@click.option("--force", is_flag=True, help="Replace the --html and --pcapng files when they exist.")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Read the inputs as tasks on the Dask cluster whose scheduler is at ADDRESS (tcp://HOST:8786); "
                   "inputs are paths or URLs (s3://, gs://) the workers can read. Needs cniscope[dask] (docs/scale.md).")
def analyze_command(inputs: tuple[str, ...], nodes: tuple[str, ...], as_json: bool, model: str | None,
                    cluster: str | None, fail_on: str | None, max_journeys: int, memory: int | None, select: str | None,
                    flow: int | None, everything: bool, findings_only: bool, html_out: str | None, pcapng_out: str | None,
                    force: bool, dask_address: str | None) -> int:
    """Follow every packet hop by hop, rebuild conversations, infer the model, explain what went wrong.

    INPUTS are capture files (pcap, pcapng, tcpdump text, gzip/zstd, - for stdin), each optionally
    tagged with its node (node3=capture.pcap), or directories: one written by `cniscope capture`
    (nodes from its manifest), or any other, each capture file in it a node named after the file.
    In pasted text, a shell prompt that runs tcpdump (root@node3:~# tcpdump ...) names the node.
    A capture directory's cluster.yaml is used as --cluster; a `lab record` directory gives a section per scenario.

    The terminal report answers first: findings, a summary of the capture (nodes, interfaces, model, the
    conversations with problems), then a bounded number of conversations, problems first.
    """
    given = input_specs(inputs, nodes)
    check_new_file(html_out, force, "--html")
    check_new_file(pcapng_out, force, "--pcapng")
    unread = () if pcapng_out else UNREAD  # the annotated pcapng reads every column; the other reports none of UNREAD
    # one capture file: read while the analysis is imported, unless it will be spilled (read again, batch by batch)
    spilled = footprint.needed(given, memory or footprint.default_memory())
    walk = None if dask_address or spilled else ahead.start(given, unread=unread)
    with walk or nullcontext():
        from cniscope.ingest import scenarios  # the analysis's imports begin here (polars: this module's docstring)

        run = partial(_analyze, model=model, cluster=cluster, fail_on=fail_on, max_journeys=None if everything else max_journeys,
                      memory=memory, dask_address=dask_address, select=select, flow=flow, as_json=as_json, html_out=html_out,
                      pcapng_out=pcapng_out, everything=everything, findings_only=findings_only, unread=unread, walk=walk)
        recorded = scenarios(given[0].path) if len(given) == 1 else []
        if not recorded:
            return run(given)
    # a `lab record` directory: one section per scenario, each as `analyze DIR/SCENARIO` would print it
    if as_json or html_out or pcapng_out:
        raise click.UsageError(f"{given[0].path} holds {len(recorded)} recorded scenarios; --json, --html and --pcapng "
                               f"take one at a time: cniscope analyze {recorded[0]} ...")
    codes = []
    for n, directory in enumerate(recorded):
        click.echo(f"{'' if n == 0 else chr(10)}=== scenario {os.path.basename(directory)} "
                   f"({n + 1} of {len(recorded)}): cniscope analyze {directory}\n")
        codes.append(run([InputSpec(directory)]))
    return max(codes)


@collector.paused()  # the analysis makes no cycles (cniscope.collector)
@small_pages()  # nor asks for huge pages (cniscope.heap.small_pages)
def _analyze(specs: list[InputSpec], *, model: str | None, cluster: str | None, fail_on: str | None,
             max_journeys: int | None, memory: int | None, dask_address: str | None, select: str | None,
             flow: int | None, as_json: bool, html_out: str | None, pcapng_out: str | None, everything: bool,
             findings_only: bool, unread: tuple[str, ...] = (), walk: ahead.Ahead | None = None) -> int:
    """One analysis, printed; its exit code. `unread`: the columns its reports do not read (left unbuilt). `walk`: its
    one input's records read ahead."""
    from cniscope.analyze import analyze_capture, read_within
    from cniscope.commands.progress import Progress
    from cniscope.ingest import expand, inventory_beside
    from cniscope.results import Severity

    if cluster is None and (cluster := inventory_beside(specs)) is not None:
        click.echo(f"info: cluster inventory {printable(cluster)} (beside the capture; --cluster to use another)", err=True)
    specs = expand(specs)
    with Progress(specs) as progress, _on_dask(dask_address, progress.stage) as on_dask:  # progress: on a terminal only
        # beyond --memory, the capture is spilled to disk and correlated there (cniscope.spill)
        capture, correlated = (on_dask.read(specs), None) if on_dask else read_within(specs, memory, None, progress.reading(specs), unread, walk)
        report = None
        if not all(info.unusable for info in capture.inputs):  # else nothing to analyse: say why, no empty report
            spread = on_dask.spread(capture, memory) if on_dask else {}  # correlation's partitions on the cluster
            report = analyze_capture(capture, model=model, cluster=cluster, max_journeys=max_journeys, memory=memory,
                                     on_stage=progress.stage, select=select, flow=flow, correlated=correlated,
                                     keep_columns=bool(pcapng_out), **spread)  # the annotated pcapng reads every column
            # files first: a reader of standard output that stops early (| head) must not lose them
            for option, path in (("--html", html_out), ("--pcapng", pcapng_out)):
                if path:
                    progress.stage(f"writing {path}")
                    _write_output(_on_request(option), report, path)
    if report is None:
        tell(capture.inputs)
        return ExitCode.BAD_INPUT
    collector.hold(report)  # let go by the process's exit, not as this returns
    if as_json:
        _echo_json(report)
    else:
        text = _on_request("no --json")
        text.show(report, view=text.View(everything=everything, findings_only=findings_only))
    tell(report.inputs, report.warnings)
    code = exit_code(report.inputs)
    if code == ExitCode.OK and fail_on and any(f.severity.rank >= Severity(fail_on).rank for f in report.findings):
        return ExitCode.FINDINGS
    return code


def _on_dask(address: str | None, on_stage: Callable[[str], None]) -> AbstractContextManager[Any]:
    """The Dask cluster one analysis runs on (`--dask`), connected for its length; nothing without --dask."""
    if address is None:
        return nullcontext()
    session: AbstractContextManager[Any] = _on_request("--dask")(address, on_stage)
    return session


def _echo_json(report: Report) -> None:
    """The report's JSON and a newline on standard output, written a piece at a time (`json_out.write`) as bytes:
    click.echo scans text it writes to a file or a pipe for ANSI codes to strip (JSON holds none: its strings escape
    control characters); a StringIO (contextlib.redirect_stdout) takes it as text."""
    from cniscope.report import json_out

    sys.stdout.flush()  # what was written as text before, first
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(json_out.dumps(report).decode() + "\n")
        return
    json_out.write(report, out)
    out.write(b"\n")
    out.flush()


def _write_output(write: Callable[[Report, str], object], report: Report, path: str) -> None:
    """An output file that cannot be written is an OutputError naming it, not a traceback."""
    try:
        write(report, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _size(text: str | None) -> int | None:
    """`512M`, `4G`, `1.5g`, `65536` (bytes) -> bytes; a usage error otherwise."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r}: a size such as 512M or 4G")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " "))
