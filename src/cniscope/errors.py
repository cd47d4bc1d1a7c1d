"""Errors by blame, and the exit codes the CLI maps them to.

Exit codes (documented in the README):
  0  success
  1  the analysis found problems at or above --fail-on
  2  usage error: bad options or arguments, an output that exists already (without --force)
  3  input damaged: every readable packet was used, warnings on stderr say where it broke
  4  input unusable: missing, unreadable, or not a capture at all
  5  environment: not root, a tool or kernel feature missing, an output that cannot be written
 70  internal error (a bug in cniscope: please report it)
130  interrupted (Ctrl-C)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FINDINGS = 1
    USAGE = 2
    DAMAGED_INPUT = 3
    BAD_INPUT = 4
    ENVIRONMENT = 5
    BUG = 70
    INTERRUPTED = 130


class CniscopeError(Exception):
    exit_code = ExitCode.BUG


class UsageError(CniscopeError):
    """The command asks for something it cannot mean: a bad argument, an output in the way (the user's to fix)."""

    exit_code = ExitCode.USAGE


class InputError(CniscopeError):
    """The user's input cannot be used at all (the user's to fix)."""

    exit_code = ExitCode.BAD_INPUT


class EnvironmentProblem(CniscopeError):
    """This machine lacks something: root, a tool, a kernel feature."""

    exit_code = ExitCode.ENVIRONMENT


class OutputError(EnvironmentProblem):
    """An output cannot be written: no space left, no permission, a directory in the way."""


class NodeProblem(CniscopeError):
    """A remote node could not do what was asked: unreachable, refused, lacking tcpdump (the node's to fix)."""

    exit_code = ExitCode.ENVIRONMENT


class Bug(CniscopeError):
    """Something only a mistake in cniscope explains: a command it built that cannot fail otherwise."""

    exit_code = ExitCode.BUG


@dataclass(frozen=True)
class ReadWarning:
    """Damage in an input, or something worth saying about it, that did not stop the reading (`level`)."""

    source: str  # file name as given
    where: str  # "byte 1234", "line 17", "" when the whole input is concerned
    message: str
    level: str = "warning"  # "info": worth saying, not a problem (prose around a paste, nodes named by prompts)

    def __str__(self) -> str:
        where = f":{self.where}" if self.where else ""
        return f"{self.source}{where}: {self.message}"
