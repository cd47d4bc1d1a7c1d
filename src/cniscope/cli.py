"""Command line: parse arguments, call the library, map errors to exit codes.

As in httpie, `main()` owns error handling and exit codes (see cniscope.errors)
and `program()` runs the command; each command only does its work and returns
its exit code (None: success) or raises by blame. Anything else is a bug: exit
70, "internal error, please report it", the traceback only under --debug.
Command groups of the larger parts (lab, capture, models) live next to their
code and are added here explicitly.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import click

from cniscope import __version__
from cniscope.errors import CniscopeError, ExitCode, OutputError
from cniscope.models import MODELS
from cniscope.outputs import check_new_file
from cniscope.sources import InputInfo, InputSpec, read
from cniscope.terminal import printable

if TYPE_CHECKING:
    from cniscope.results import Report


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


class _Lazy(click.Group):
    """A group whose larger parts (lab, capture, demo, models) are imported only when their command runs: every
    command pays for the imports it uses, not for all of them (lab and demo alone cost a third of a second)."""

    LAZY = {"lab": "cniscope.lab.cli:lab_group", "demo": "cniscope.demo:demo_command",
            "capture": "cniscope.capture.cli:capture_command", "models": "cniscope.models.cli:models_group"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.LAZY:
            return super().get_command(ctx, name)
        import importlib

        module, attribute = self.LAZY[name].split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=_Lazy, context_settings={"help_option_names": ["-h", "--help"]})
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
    _tell(infos)
    return _input_code(infos)


@cli.command("analyze")
@click.argument("inputs", nargs=-1)
@click.option("--node", "nodes", multiple=True, metavar="NAME=FILE", help="An input that belongs to node NAME.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see report.schema.json).")
@click.option("--model", type=click.Choice(list(MODELS)), default=None, help="Force a network model instead of inferring it.")
@click.option("--cluster", type=click.Path(exists=True, dir_okay=False), help="Cluster inventory: kubectl JSON or short YAML.")
@click.option("--fail-on", type=click.Choice(["info", "warning", "error"]), default=None,
              help="Exit 1 when a finding of this severity or worse is found.")
@click.option("--max-journeys", type=int, default=20_000, show_default=True, help="Journeys kept in the report.")
@click.option("--memory", callback=lambda ctx, param, value: _size(value), metavar="SIZE",
              help="Working memory to plan correlation for (512M, 4G; default: half of this machine's memory): "
                   "above it, packets are correlated in partitions by fingerprint. The same report either way.")
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
    from cniscope.analyze import scenarios

    given = _specs(inputs, nodes)
    check_new_file(html_out, force, "--html")
    check_new_file(pcapng_out, force, "--pcapng")
    options = dict(model=model, cluster=cluster, fail_on=fail_on, max_journeys=None if everything else max_journeys,
                   memory=memory, dask_address=dask_address, select=select, flow=flow, as_json=as_json,
                   html_out=html_out, pcapng_out=pcapng_out, everything=everything, findings_only=findings_only)
    recorded = scenarios(given[0].path) if len(given) == 1 else []
    if not recorded:
        return _analyze(given, **options)  # type: ignore[arg-type]
    # a `lab record` directory: one section per scenario, each as `analyze DIR/SCENARIO` would print it
    if as_json or html_out or pcapng_out:
        raise click.UsageError(f"{given[0].path} holds {len(recorded)} recorded scenarios; --json, --html and --pcapng "
                               f"take one at a time: cniscope analyze {recorded[0]} ...")
    codes = []
    for n, directory in enumerate(recorded):
        click.echo(f"{'' if n == 0 else chr(10)}=== scenario {os.path.basename(directory)} "
                   f"({n + 1} of {len(recorded)}): cniscope analyze {directory}\n")
        codes.append(_analyze([InputSpec(directory)], **options))  # type: ignore[arg-type]
    return max(codes)


def _analyze(specs: list[InputSpec], *, model: str | None, cluster: str | None, fail_on: str | None,
             max_journeys: int | None, memory: int | None, dask_address: str | None, select: str | None,
             flow: int | None, as_json: bool, html_out: str | None, pcapng_out: str | None, everything: bool,
             findings_only: bool) -> int:
    """One analysis, printed; its exit code."""
    from cniscope.analyze import analyze_capture, expand, inventory_beside
    from cniscope.report.text import Progress
    from cniscope.results import Severity

    if cluster is None and (cluster := inventory_beside(specs)) is not None:
        click.echo(f"info: cluster inventory {printable(cluster)} (beside the capture; --cluster to use another)", err=True)
    specs = expand(specs)
    with Progress(specs) as progress, _on_dask(dask_address, progress.stage) as on_dask:  # progress: on a terminal only
        capture = on_dask.read(specs) if on_dask else progress.read(specs)
        report = None
        if not all(info.unusable for info in capture.inputs):  # else nothing to analyse: say why, no empty report
            spread = on_dask.spread(capture, memory) if on_dask else {}  # correlation's partitions on the cluster
            report = analyze_capture(capture, model=model, cluster=cluster, max_journeys=max_journeys, memory=memory,
                                     on_stage=progress.stage, select=select, flow=flow, **spread)
            if html_out:  # files first: a reader of standard output that stops early (| head) must not lose them
                from cniscope.report import html

                progress.stage(f"writing {html_out}")
                _write_output(html.write, report, html_out)
            if pcapng_out:
                from cniscope.report import pcapng_out as pcapng_report

                progress.stage(f"writing {pcapng_out}")
                _write_output(pcapng_report.write, report, pcapng_out)
    if report is None:
        _tell(capture.inputs)
        return ExitCode.BAD_INPUT
    if as_json:
        from cniscope.report.json_out import dumps

        click.echo(dumps(report))
    else:
        from cniscope.report.text import View, show

        show(report, view=View(everything=everything, findings_only=findings_only))
    _tell(report.inputs, report.warnings)
    code = _input_code(report.inputs)
    if code == ExitCode.OK and fail_on and any(f.severity.rank >= Severity(fail_on).rank for f in report.findings):
        return ExitCode.FINDINGS
    return code


def _on_dask(address: str | None, on_stage: Callable[[str], None]) -> AbstractContextManager[Any]:
    """The Dask cluster one analysis runs on (`--dask`), connected for its length; nothing without --dask."""
    if address is None:
        return nullcontext()
    from cniscope import dask_cluster

    return dask_cluster.Session(address, on_stage)


def _write_output(write: Callable[[Report, str], object], report: Report, path: str) -> None:
    """An output file that cannot be written is an OutputError naming it, not a traceback."""
    try:
        write(report, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _tell(infos: list[InputInfo], more: Sequence[str] = ()) -> None:
    """What reading found, on standard error only, each once: `error:` for an input that is no capture at all,
    `warning:` for damage, `info:` for what is normal (prose around a paste, nodes named by prompts)."""
    for info in infos:
        for said in info.warnings:
            level = "error" if info.unusable else said.level
            click.echo(f"{level}: {printable(str(said))}", err=True)
    for warning in more:
        click.echo(f"warning: {printable(warning)}", err=True)


def _input_code(infos: list[InputInfo]) -> int:
    """4 when an input is no capture at all (the others are still reported), 3 when capture data is damaged."""
    if any(info.unusable for info in infos):
        return ExitCode.BAD_INPUT
    if any(info.damaged for info in infos):
        return ExitCode.DAMAGED_INPUT
    return ExitCode.OK


def program(args: Sequence[str], defaults: dict[str, Any] | None = None) -> int:
    """Run the command `args` asks for; return its exit code. Errors propagate to main()."""
    try:
        code = cli.main(list(args), prog_name="cniscope", standalone_mode=False, default_map=defaults)
    except SystemExit as exc:  # a command that ends like the process it ran (lab exec)
        code = exc.code
    return code if isinstance(code, int) else ExitCode.OK


# A report is hundreds of thousands of small objects without cycles (journeys, hops, their JSON): at Python's
# default (700, 10, 10) the cycle collector ran thousands of times over them, a third of analyze's CPU time at 200k
# packets. Young objects are collected 14x less often and the whole heap practically only at exit.
GC_THRESHOLDS = (10_000, 50, 100)


def main(args: Sequence[str] | None = None, defaults: dict[str, Any] | None = None) -> int:
    """The process: run `program` and turn whatever it raises into a message and an exit code (README)."""
    args = sys.argv[1:] if args is None else list(args)
    debug = "--debug" in args  # known before parsing, as httpie does: a crash while parsing shows it too
    # a closed pipe (`cniscope read ... | head`) ends the process quietly, as it does tcpdump
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return program(args, defaults)
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


def kubectl_main() -> int:
    """`kubectl cniscope ...` (kubectl runs `kubectl-cniscope` from PATH): the same commands, `capture` through
    kubectl by default."""
    return main(defaults={"capture": {"via": "kubectl"}})


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(cniscope completion bash)"     (in ~/.bashrc)
    zsh:   eval "$(cniscope completion zsh)"      (in ~/.zshrc)
    fish:  cniscope completion fish > ~/.config/fish/completions/cniscope.fish
    """
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    assert completion is not None  # click ships all three
    click.echo(completion(cli, {}, "cniscope", "_CNISCOPE_COMPLETE").source())


def _size(text: str | None) -> int | None:
    """`512M`, `4G`, `1.5g`, `65536` (bytes) -> bytes; a usage error otherwise."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r}: a size such as 512M or 4G")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " "))
