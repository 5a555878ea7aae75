"""Errors the command line prints without a traceback."""

from __future__ import annotations

import os
from pathlib import Path


class CliError(Exception):
    """A user-facing error: printed as ``accessbot: <message>``, exit code 2."""


def output_file(text: str | Path) -> Path:
    """The file a command is to write (``--out``), once a file can be written there: its folder is made when
    missing. A folder, a pipe or a device, a path under a file, or a folder that cannot be made or written to is a
    :class:`CliError` naming the path, raised before the command does any work (call it after the checks that must
    create nothing)."""
    path = Path(text)
    if path.is_dir():
        raise CliError(f"{path} is a folder: --out names the file to write")
    if path.exists() and not path.is_file():  # the file is written beside it and renamed over it: a pipe's
        # reader would get nothing, and a device (/dev/null, /dev/stdout) would be replaced by the file
        raise CliError(f"{path} is not a regular file (a pipe, a device or a socket): --out names the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot write {path}: its folder cannot be made ({exc.strerror or exc})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {path}: its folder {path.parent} is not writable")
    return path
