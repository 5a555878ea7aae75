"""Reading the files an operator names (policy, directory, anchors)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

NOT_REGULAR = "not a regular file: a device, a pipe or a socket is never read"


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the file at ``path`` (a link followed). A device, a pipe or a socket is an :class:`OSError`
    saying so, never opened: ``/dev/zero`` would be read until memory runs out, a pipe waits for a writer for
    ever. A folder is left to the read, which names it."""
    file = Path(path)
    mode = file.stat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise OSError(errno.EINVAL, NOT_REGULAR, str(file))
    return file.read_bytes()
