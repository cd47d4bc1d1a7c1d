"""The progress line itself, drawn by rich on standard error: imported by `progress` only for inputs long enough
to show it (rich costs a `--json` of a small capture a fiftieth of a second for nothing)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from cniscope.report.text import plain_wanted


class Line:
    """A spinner, the stage and the time since `started`, redrawn in place; gone when stopped."""

    def __init__(self, console: Console, started: float) -> None:
        self.live = Live(Spinner("dots", "starting"), console=console, transient=True, refresh_per_second=8)
        self.started = started

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    def update(self, text: str) -> None:
        self.live.update(Spinner("dots", _Elapsed(text, self.started)), refresh=True)


def shown(console: Console | None, started: float) -> Line | None:
    """The line on `console` (standard error by default), or None where it would not show: not a terminal, a
    dumb one, NO_COLOR."""
    console = console or Console(stderr=True, highlight=False)
    return None if plain_wanted(console) else Line(console, started)


class _Elapsed:
    """A stage and the time since the start, measured each time the line is redrawn."""

    def __init__(self, text: str, started: float) -> None:
        self.text, self.started = text, started

    def __rich__(self) -> Text:
        return Text.assemble(self.text, (f"  {time.monotonic() - self.started:.1f} s", "dim"))
