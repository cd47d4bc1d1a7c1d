"""Command line: parse arguments, call the library, map errors to exit codes.

As in httpie, `main()` owns error handling and exit codes (see cniscope.errors)
and `program()` runs the command; each command only does its work and returns
its exit code (None: success) or raises by blame. Anything else is a bug: exit
70, "internal error, please report it", the traceback only under --debug.
Command groups of the larger parts (lab, capture, models) live next to their
code and are added here explicitly.
"""

from __future__ import annotations

import re
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from cniscope import __version__
from cniscope.errors import CniscopeError, ExitCode, OutputError
from cniscope.outputs import check_new_file
from cniscope.sources import InputSpec, read
from cniscope.terminal import printable

if TYPE_CHECKING:
    from cniscope.report.text import Progress
    from cniscope.results import Report
    from cniscope.sources import Capture


def _specs(inputs: tuple[str, ...], nodes: tuple[str, ...]) -> list[InputSpec]:
    specs = [InputSpec.parse(text) for text in inputs]
    for text in nodes:
        node, sep, path = text.partition("=")
        if not sep or not node or not path:
            raise click.BadParameter(f"expected NODE=FILE, got {text!r}", param_hint="--node")
        specs.append(InputSpec(path=path, node=node))
    if not specs:
        raise click.UsageError("no input: give one or more capture files, or - for standard input")
    return specs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cniscope")
@click.option("--debug", is_flag=True, help="On an internal error, print its traceback (for the bug report).")
def cli(debug: bool) -> None:
    """Record and explain packet captures across Kubernetes network models."""


@cli.command("read")
@click.argument("inputs", nargs=-1)
@click.option("--node", "nodes", multiple=True, metavar="NAME=FILE", help="An input that belongs to node NAME.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "parquet"]), default="table", show_default=True,
              help="table: for reading by eye; json: JSON Lines, one object per sighting; csv; parquet: the typed table.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of standard output (required for parquet).")
@click.option("--force", is_flag=True, help="Replace the output file when it exists.")
def read_command(inputs: tuple[str, ...], nodes: tuple[str, ...], fmt: str, output: str | None, force: bool) -> int:
    """Decode captures (pcap, pcapng, tcpdump text; gzip/zstd/xz/bzip2; - for stdin) into the packet table.

    Tag an input with its node as node3=capture.pcap. Exit status 3 when an input is
    damaged (what could be read is still written), 4 when no input held a capture.
    """
    from cniscope.report import table_out

    specs = _specs(inputs, nodes)
    check_new_file(output, force, "-o")
    if fmt == "parquet":
        if not output:
            raise click.UsageError("--format parquet needs -o FILE")
        infos = table_out.stream_parquet(specs, output)
    elif fmt in ("json", "csv"):  # streamed batch by batch, like parquet
        infos = table_out.stream(specs, fmt, output)
    else:
        capture = read(specs)
        infos = capture.inputs
        table_out.write(capture.table, fmt, output)
    for info in infos:
        for warning in info.warnings:
            click.echo(f"warning: {printable(str(warning))}", err=True)
    return _input_code(infos)


@cli.command("analyze")
@click.argument("inputs", nargs=-1)
@click.option("--node", "nodes", multiple=True, metavar="NAME=FILE", help="An input that belongs to node NAME.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see report.schema.json).")
@click.option("--model", type=str, default=None, help="Force a network model instead of inferring it.")
@click.option("--cluster", type=click.Path(exists=True, dir_okay=False), help="Cluster inventory: kubectl JSON or short YAML.")
@click.option("--fail-on", type=click.Choice(["info", "warning", "error"]), default=None,
              help="Exit 1 when a finding of this severity or worse is found.")
@click.option("--max-journeys", type=int, default=20_000, show_default=True, help="Journeys kept in the report.")
@click.option("--memory", callback=lambda ctx, param, value: _size(value), metavar="SIZE",
              help="Working memory to plan correlation for (512M, 4G; default: half of this machine's memory): "
                   "above it, packets are correlated in partitions by fingerprint. The same report either way.")
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
                    cluster: str | None, fail_on: str | None, max_journeys: int, memory: int | None,
                    html_out: str | None, pcapng_out: str | None, force: bool, dask_address: str | None) -> int:
    """Follow every packet hop by hop, rebuild conversations, infer the model, explain what went wrong.

    INPUTS are capture files (pcap, pcapng, tcpdump text, gzip/zstd, - for stdin), each optionally
    tagged with its node (node3=capture.pcap), or directories: one written by `cniscope capture`
    (nodes from its manifest), or any other, each capture file in it a node named after the file.
    In pasted text, a shell prompt that runs tcpdump (root@node3:~# tcpdump ...) names the node.
    """
    from cniscope.analyze import analyze_capture, expand
    from cniscope.report.text import Progress
    from cniscope.results import Severity

    check_new_file(html_out, force, "--html")
    check_new_file(pcapng_out, force, "--pcapng")
    specs = expand(_specs(inputs, nodes))
    with Progress(specs) as progress:  # on standard error, only on a terminal and for long inputs
        if dask_address:
            capture = _read_on_dask(dask_address, specs, progress)
        else:
            capture = progress.read(specs)
        report = analyze_capture(capture, model=model, cluster=cluster, max_journeys=max_journeys, memory=memory,
                                 on_stage=progress.stage)
        if html_out:  # files first: a reader of standard output that stops early (| head) must not lose them
            from cniscope.report import html

            progress.stage(f"writing {html_out}")
            _write_output(html.write, report, html_out)
        if pcapng_out:
            from cniscope.report import pcapng_out as pcapng_report

            progress.stage(f"writing {pcapng_out}")
            _write_output(pcapng_report.write, report, pcapng_out)
    if as_json:
        from cniscope.report.json_out import dumps

        click.echo(dumps(report))
    else:
        from cniscope.report.text import show

        show(report)
    for info in report.inputs:
        for warning in info.warnings:
            click.echo(f"warning: {printable(str(warning))}", err=True)
    code = _input_code(report.inputs)
    if code == ExitCode.OK and fail_on and any(f.severity.rank >= Severity(fail_on).rank for f in report.findings):
        return ExitCode.FINDINGS
    return code


def _read_on_dask(address: str, specs: list[InputSpec], progress: Progress) -> Capture:
    from cniscope import dask_cluster

    progress.stage(f"connecting to the Dask scheduler at {address}")
    with dask_cluster.connect(address) as client:
        progress.stage("reading the inputs on the Dask cluster")
        return dask_cluster.read(client, specs)


def _write_output(write: Callable[[Report, str], object], report: Report, path: str) -> None:
    """An output file that cannot be written is an OutputError naming it, not a traceback."""
    try:
        write(report, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _input_code(infos: list) -> int:
    if infos and all(info.packets == 0 and info.damaged for info in infos):
        return ExitCode.BAD_INPUT
    if any(info.damaged for info in infos):
        return ExitCode.DAMAGED_INPUT
    return ExitCode.OK


def program(args: Sequence[str]) -> int:
    """Run the command `args` asks for; return its exit code. Errors propagate to main()."""
    try:
        code = cli.main(list(args), prog_name="cniscope", standalone_mode=False)
    except SystemExit as exc:  # a command that ends like the process it ran (lab exec)
        code = exc.code
    return code if isinstance(code, int) else ExitCode.OK


def main(args: Sequence[str] | None = None) -> int:
    """The process: run `program` and turn whatever it raises into a message and an exit code (README)."""
    args = sys.argv[1:] if args is None else list(args)
    debug = "--debug" in args  # known before parsing, as httpie does: a crash while parsing shows it too
    # a closed pipe (`cniscope read ... | head`) ends the process quietly, as it does tcpdump
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return program(args)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    except CniscopeError as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        return exc.exit_code
    except Exception as exc:  # the one catch-all: anything else is a bug
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (cniscope --debug COMMAND ... shows the traceback)"
        click.echo(f"internal error, please report it: {type(exc).__name__}: {printable(str(exc))}{hint}", err=True)
        return ExitCode.BUG


from cniscope.demo import demo_command  # noqa: E402  (groups of the larger parts, added explicitly)
from cniscope.lab.cli import lab_group  # noqa: E402
from cniscope.capture.cli import capture_command  # noqa: E402
from cniscope.models.cli import models_group  # noqa: E402

cli.add_command(lab_group)
cli.add_command(demo_command)
cli.add_command(capture_command)
cli.add_command(models_group)


def _size(text: str | None) -> int | None:
    """`512M`, `4G`, `1.5g`, `65536` (bytes) -> bytes; a usage error otherwise."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r}: a size such as 512M or 4G")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " "))
