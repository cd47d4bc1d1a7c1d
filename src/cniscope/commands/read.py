"""`cniscope read`: captures decoded into the packet table, written as a table, JSON Lines, CSV or parquet."""

from __future__ import annotations

import os

import click

from cniscope import ingest
from cniscope.commands.inputs import exit_code, input_specs, tell
from cniscope.heap import small_pages
from cniscope.outputs import check_new_file
from cniscope.report import parquet_out, parquet_parts
from cniscope.sources import InputInfo

# rows a batch (and a row group) of `read --format parquet`: twice ingest's, for its per-batch cost (the readers' and
# decoder's Python, ~4 ms a batch): 10M pcapng 7.2-7.7 -> 6.8-7.0 s of CPU, the peak 275 -> 416 MB (256k: 680 MB)
PARQUET_BATCH = 1 << 17


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
        parquet_out.stream_parquet(ingest.batches_as(parquet_out.arrow_table, given, infos, PARQUET_BATCH,
                                                      decoders=_decoders()), output)
    elif fmt in ("json", "csv"):  # streamed batch by batch, like parquet
        from cniscope.report import table_out  # (polars: parquet of binary inputs does without it)

        table_out.stream(ingest.batches(given, infos), fmt, output)
    else:
        from cniscope.report import table_out

        capture = ingest.read(given)
        infos = capture.inputs
        table_out.write(capture.table, fmt, output)
    tell(infos)
    return exit_code(infos)


def _decoders() -> int:
    """Threads decoding parquet's batches: the cores its encoders leave (`parquet_parts.WORKERS`), at least one (none
    on one core: the reading thread). On 2 cores one thread, not 2 (5 threads on 2 cores): 10M pcapng 2.42 -> 2.35 s,
    pcap 2.64 -> 2.545 s, page faults 112-122k -> 83-97k; against decoding on the reading thread (each batch right after
    its walk): pcapng 2.46 -> 2.36 and 2.45 -> 2.37 s, 2.29 against 2.35 once; pcap 2.71 -> 2.55, 2.73 -> 2.50, 2.635
    -> 2.545 (medians of 4-5 rounds alternating, chrt -f 10)."""
    return min(ingest.DECODERS, max(1, (os.cpu_count() or 1) - parquet_parts.WORKERS))
