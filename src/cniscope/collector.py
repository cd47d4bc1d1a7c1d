"""Python's cycle collector, paused where a command makes many objects that make no cycles.

An analysis makes hundreds of thousands of objects (hops, journeys, flows, their JSON) and no cycles among
them: the collector's passes found nothing but the same 317 objects, at 25,000 text lines as at 200,000 and
2M packets, and took 0.18 s of 1.6, 0.29 of 3.0 and 0.6 of 9.1 s of CPU; the peak memory is the same without
them (2M: 1234 MB, 1238 with). Importing a command's modules makes thousands of functions and classes that
live as long as the process: 27 young collections, 16 ms at 25,000 text lines.

When the collector resumes, what the paused work left alive goes to the oldest generation, where the young
collections would have moved it had they run: the first young collection would otherwise go through all of
it once more (30 ms after 25,000 text lines, to collect 317 objects). The cycles among it are collected with
the oldest generation, as any long-lived object's.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """The collector off while the block runs, as it was after (a block run with it off leaves it off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:  # (what someone froze stays so)
                gc.freeze()  # every tracked object to the permanent generation,
                gc.unfreeze()  # and back into the oldest one
            gc.enable()


_until_exit: list[object] | None = None  # what the process lets go only at its end; None: nothing held


def ending_by_exit() -> None:
    """The process ends when the command returns (`cli.main` with no arguments, by `os._exit`): from now on `hold`
    keeps what it is given to that end."""
    global _until_exit
    _until_exit = []


def hold(report: object) -> None:
    """Keep `report` to the process's end where it ends by exit (`ending_by_exit`), else nothing: freed when its command
    returns, a report's hundreds of thousands of objects and its table took 24 ms at 2M packets (6 at 200k), which the
    exit does without. In-process callers (tests, `cli.program`) hold nothing."""
    if _until_exit is not None:
        _until_exit.append(report)
