"""An in-process harness for the command line, as httpie's tests have: run `main(args)`, get the code and both streams."""

from __future__ import annotations

import io
import sys
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest import mock

from cniscope.cli import main


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def run(*args: str, stdin: bytes = b"") -> Ran:
    """`cniscope ARGS...` in this process, with `stdin` as its standard input."""
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with ExitStack() as stack:
        stack.enter_context(redirect_stdout(out))
        stack.enter_context(redirect_stderr(err))
        stack.enter_context(mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin))))
        code = main(list(args))
    return Ran(code, _text(out), _text(err))


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", "backslashreplace")  # type: ignore[attr-defined]
