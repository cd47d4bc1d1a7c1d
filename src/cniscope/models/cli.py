"""`cniscope models`: list the network models; `cniscope models show NAME`: a model's textbook page."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from enum import Enum
from typing import Any

import click

from cniscope.models import MODELS, PROXIES
from cniscope.models.textbook import listing, page

# the model names, for help texts (click would wrap them at their hyphens)
CHOICES = "\b\n" + textwrap.fill(", ".join(MODELS), 78, break_on_hyphens=False)


def _plain(value: Any) -> Any:
    """Enums as their values, for JSON."""
    return value.value if isinstance(value, Enum) else str(value)


@click.group("models", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help='One JSON object: {"models": [{name, family, summary}], "service_proxies": [...]}.')
@click.pass_context
def models_group(ctx: click.Context, as_json: bool) -> None:
    """List the network models cniscope knows (show NAME for one model's page)."""
    if ctx.invoked_subcommand is not None:
        return
    if as_json:
        models = [{"name": m.name, "family": m.family, "summary": m.summary} for m in MODELS.values()]
        click.echo(json.dumps({"models": models, "service_proxies": list(PROXIES)}, indent=1))
        return
    click.echo(listing())


@models_group.command("show", help=f"Expected paths, interfaces and signatures of model NAME, one of:\n\n{CHOICES}")
@click.argument("name", type=click.Choice(list(MODELS)), metavar="NAME")
@click.option("--json", "as_json", is_flag=True, help="The model's tables as one JSON object.")
def show_command(name: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(asdict(MODELS[name]), indent=1, default=_plain))
        return
    click.echo(page(MODELS[name]))
