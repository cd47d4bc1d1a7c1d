"""Command line: parse arguments, call the library, map errors to exit codes.

`main()` owns error handling and exit codes (see cniscope.errors); each command
only does its work. Command groups of the larger parts (lab, capture, models)
live next to their code and are added here explicitly.
"""

from __future__ import annotations

import sys

import click

from cniscope import __version__
from cniscope.errors import CniscopeError, ExitCode
from cniscope.sources import Capture, InputSpec, read


def _warn(capture: Capture) -> None:
    for warning in capture.warnings:
        click.echo(f"warning: {warning}", err=True)


def _read(inputs: tuple[str, ...], nodes: tuple[str, ...] = ()) -> Capture:
    specs = [InputSpec.parse(text) for text in inputs]
    for text in nodes:
        node, sep, path = text.partition("=")
        if not sep or not node or not path:
            raise click.BadParameter(f"expected NODE=FILE, got {text!r}", param_hint="--node")
        specs.append(InputSpec(path=path, node=node))
    if not specs:
        raise click.UsageError("no input: give one or more capture files, or - for standard input")
    return read(specs)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cniscope")
def cli() -> None:
    """Record and explain packet captures across Kubernetes network models."""


@cli.command("read")
@click.argument("inputs", nargs=-1)
@click.option("--node", "nodes", multiple=True, metavar="NAME=FILE", help="An input that belongs to node NAME.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "parquet"]), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of standard output (required for parquet).")
def read_command(inputs: tuple[str, ...], nodes: tuple[str, ...], fmt: str, output: str | None) -> None:
    """Decode captures (pcap, pcapng, tcpdump text; gzip/zstd; - for stdin) into the packet table."""
    from cniscope.report import table_out

    specs = [InputSpec.parse(text) for text in inputs] + [InputSpec(path=p, node=n) for n, _, p in (t.partition("=") for t in nodes)]
    if not specs:
        raise click.UsageError("no input: give one or more capture files, or - for standard input")
    if fmt == "parquet":
        if not output:
            raise click.UsageError("--format parquet needs -o FILE")
        infos = table_out.stream_parquet(specs, output)
    else:
        capture = read(specs)
        infos = capture.inputs
        table_out.write(capture.table, fmt, output)
    for info in infos:
        for warning in info.warnings:
            click.echo(f"warning: {warning}", err=True)
    _exit_for_inputs(infos)


def _exit_for_inputs(infos: list) -> None:
    if infos and all(info.packets == 0 and info.damaged for info in infos):
        sys.exit(ExitCode.BAD_INPUT)
    if any(info.damaged for info in infos):
        sys.exit(ExitCode.DAMAGED_INPUT)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except CniscopeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(ExitCode.OK)
    except SystemExit:
        raise
    sys.exit(ExitCode.OK)
