"""`cniscope read`: captures decoded into the packet table, written as a table, JSON Lines, CSV or parquet."""

from __future__ import annotations

import click

from cniscope import ingest
from cniscope.commands.inputs import exit_code, input_specs, tell
from cniscope.heap import small_pages
from cniscope.outputs import check_new_file
from cniscope.report import table_out
from cniscope.sources import InputInfo


@click.command("read")
@click.argument("inputs", nargs=-1)
@click.option("--node", "nodes", multiple=True, metavar="NAME=FILE", help="An input that belongs to node NAME.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "parquet"]), default="table", show_default=True,
              help="table: for reading by eye; json: JSON Lines, one object per sighting; csv; parquet: the typed table.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of standard output (required for parquet).")
@click.option("--force", is_flag=True, help="Replace the output file when it exists.")
@small_pages()  # each batch's arrays are fresh memory: a huge page's fault zeroed 2 MB (cniscope.heap.small_pages)
def read_command(inputs: tuple[str, ...], nodes: tuple[str, ...], fmt: str, output: str | None, force: bool) -> int:
    """Decode captures (pcap, pcapng, tcpdump text; gzip/zstd/xz/bzip2; - for stdin) into the packet table.

    Tag an input with its node as node3=capture.pcap. Exit status 3 when an input is
    damaged (what could be read is still written), 4 when no input held a capture.
    """
    given = input_specs(inputs, nodes)
    check_new_file(output, force, "-o")
    infos: list[InputInfo] = []
    if fmt == "parquet":
        if not output:
            raise click.UsageError("--format parquet needs -o FILE")
        table_out.stream_parquet(ingest.batches(given, infos, table_out.PARQUET_BATCH), output)
    elif fmt in ("json", "csv"):  # streamed batch by batch, like parquet
        table_out.stream(ingest.batches(given, infos), fmt, output)
    else:
        capture = ingest.read(given)
        infos = capture.inputs
        table_out.write(capture.table, fmt, output)
    tell(infos)
    return exit_code(infos)
