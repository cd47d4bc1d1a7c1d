"""What the read and analyze commands share: inputs from their arguments, and what reading them found."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from cniscope.errors import ExitCode
from cniscope.sources import InputInfo, InputSpec
from cniscope.terminal import printable

if TYPE_CHECKING:
    from cniscope.results import InputSummary  # imports polars: the command names its inputs before that


def input_specs(inputs: tuple[str, ...], nodes: tuple[str, ...]) -> list[InputSpec]:
    """The inputs as given: arguments (`node3=capture.pcap`, a path, `-`) and `--node NAME=FILE` options."""
    specs = [InputSpec.parse(text) for text in inputs]
    for text in nodes:
        node, sep, path = text.partition("=")
        if not sep or not node or not path:
            raise click.BadParameter(f"expected NODE=FILE, got {text!r}", param_hint="--node")
        specs.append(InputSpec(path=path, node=node))
    if not specs:
        raise click.UsageError("no input: give one or more capture files, or - for standard input")
    return specs


def tell(infos: Sequence[InputInfo | InputSummary], more: Sequence[str] = ()) -> None:
    """What reading found, on standard error only, each once: `error:` for an input that is no capture at all,
    `warning:` for damage, `info:` for what is normal (prose around a paste, nodes named by prompts)."""
    for info in infos:
        for said in info.warnings:
            level = "error" if info.unusable else said.level
            click.echo(f"{level}: {printable(str(said))}", err=True)
    for warning in more:
        click.echo(f"warning: {printable(warning)}", err=True)


def exit_code(infos: Sequence[InputInfo | InputSummary]) -> int:
    """4 when an input is no capture at all (the others are still reported), 3 when capture data is damaged."""
    if any(info.unusable for info in infos):
        return ExitCode.BAD_INPUT
    if any(info.damaged for info in infos):
        return ExitCode.DAMAGED_INPUT
    return ExitCode.OK
