"""Where results are written: never over something that exists, unless the user says --force.

A capture directory, an HTML page, a pcapng or a packet table that already
exists is someone's earlier work: replacing it silently loses it. Special
files (/dev/null, /dev/stdout, a pipe) are not someone's work and are always
written to.
"""

from __future__ import annotations

import os
import stat

from cniscope.errors import UsageError


def check_new_file(path: str | None, force: bool, option: str) -> None:
    """Refuse (UsageError, exit 2) to replace an existing regular file at `path` without --force."""
    if path is None or force:
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # nothing there (or nothing we can see): writing it says what is wrong
    if stat.S_ISREG(mode):
        raise UsageError(f"{option} {path}: the file exists; give --force to replace it")


def check_new_dir(path: str, force: bool, option: str = "-o") -> None:
    """Refuse to write into an existing directory that holds anything, without --force."""
    if force:
        return
    try:
        entries = os.listdir(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise UsageError(f"{option} {path}: not a directory") from None
    except OSError:
        return  # unreadable: creating files there says what is wrong
    if entries:
        raise UsageError(f"{option} {path}: the directory holds {len(entries)} entries already; give another "
                         "directory, or --force to write into it (files of the same name are replaced)")
