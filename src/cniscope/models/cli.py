"""`cniscope models`: list the network models; `cniscope models show NAME`: a model's textbook page."""

from __future__ import annotations

import click

from cniscope.models import MODELS


@click.group("models", invoke_without_command=True)
@click.pass_context
def models_group(ctx: click.Context) -> None:
    """List the network models cniscope knows (show NAME for one model's page)."""
    if ctx.invoked_subcommand is None:
        from cniscope.models.textbook import listing

        click.echo(listing())


@models_group.command("show")
@click.argument("name", type=click.Choice(list(MODELS)), metavar="NAME")
def show_command(name: str) -> None:
    """Expected paths, interfaces and signatures of model NAME."""
    from cniscope.models.textbook import page

    click.echo(page(MODELS[name]))
