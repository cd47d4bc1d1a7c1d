"""Command line: parse arguments, call the library, map errors to exit codes.

As in httpie, `main()` owns error handling and exit codes (see cniscope.errors)
and `program()` runs the command; each command only does its work and returns
its exit code (None: success) or raises by blame. Anything else is a bug: exit
70, "internal error, please report it", the traceback only under --debug.
The commands live next to their code (`commands/` holds read and analyze, and
joins capture's command to the lab's `lab:NAME`; lab, capture and models have
their own `cli.py`), named in one table, `COMMANDS`.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click
from click.shell_completion import get_completion_class

from cniscope import __version__, collector
from cniscope.errors import CniscopeError, ExitCode
from cniscope.terminal import printable

# Every command and where it lives. A command's module is imported when the command runs (or `--help` lists it):
# each pays only for its own imports, and `cniscope --version` for none of them (the package's modules import
# polars, numpy, rich). This table is the only way the CLI reaches a command: there is no other import below.
COMMANDS = {
    "read": "cniscope.commands.read:read_command",
    "analyze": "cniscope.commands.analyze:analyze_command",
    "capture": "cniscope.commands.capture:capture_command",
    "lab": "cniscope.lab.cli:lab_group",
    "models": "cniscope.models.cli:models_group",
    "demo": "cniscope.demo:demo_command",
}
# numpy's OpenBLAS starts a thread a core when imported, which spins a while; nothing here multiplies matrices. Set
# before a command imports numpy (the user's own setting wins): `import numpy` 0.14-0.17 -> 0.11-0.13 s of CPU,
# 0.67-0.71 -> 0.57-0.64 s of wall (with a 0.3 s sleep; 2 cores, load 7).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class _Commands(click.Group):
    """The group of `COMMANDS` (and `completion`, which needs the group itself)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return super().get_command(ctx, name)
        module, attribute = COMMANDS[name].split(":")
        with collector.paused():  # thousands of functions and classes, for the process's life
            command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cniscope")
@click.option("--debug", is_flag=True, help="On an internal error, print its traceback (for the bug report).")
def cli(debug: bool) -> None:
    """Record and explain packet captures across Kubernetes network models."""


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
    """The process: run `program` and turn whatever it raises into a message and an exit code (README).

    Without `args` (the console scripts, `python -m cniscope`) this is the whole process, which ends when it
    returns: everything it allocated is then frozen out of the cycle collector's sight (`gc.freeze`), whose last
    pass over the report's objects at exit cost a tenth of a second at 20,000 journeys, for nothing.
    """
    if args is None:
        collector.ending_by_exit()
    code = _handled(sys.argv[1:] if args is None else list(args), defaults)
    if args is None:
        gc.freeze()
        _leave(code)
    return code


def _leave(code: int) -> None:
    """End the process with `code` at once, when nothing is left to run but the exit handlers (`atexit`, run here):
    the interpreter's own teardown frees every module and object one by one, 0.02-0.025 s of the 2M reference capture's
    analyze, for nothing; and the kernel frees the process's memory before its parent's wait returns (`_exit.c`: 14-19
    ms at 200k, 53-61 ms at 2M), which a helper sharing the memory does after it. Returns (to the interpreter's exit)
    while another thread runs, or when the output cannot be flushed (the interpreter says why, as it always did)."""
    if threading.active_count() > 1:
        return
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):  # (None when the process was started without it)
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    _end(code)


_end: Callable[[int], NoReturn]
try:
    from cniscope._exit import leave as _end
except ImportError:  # built without a C compiler
    _end = os._exit


def _handled(args: list[str], defaults: dict[str, Any] | None) -> int:
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
    completion = get_completion_class(shell)
    assert completion is not None  # click ships all three
    click.echo(completion(cli, {}, "cniscope", "_CNISCOPE_COMPLETE").source())

