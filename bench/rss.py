"""Peak resident memory of the benchmark's processes (``getrusage``: ru_maxrss is KiB on Linux)."""

from __future__ import annotations

import resource
import sys


def _mb(kib: int) -> float:
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024  # macOS reports bytes


def peak_rss_line(children: str = "the largest child process") -> str:
    """This process's peak RSS and that of the largest child it waited for (the load generator, the workers)."""
    own = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    line = f"peak RSS: this process {own:.0f} MB"
    if child:
        line += f", {children} {_mb(child):.0f} MB"
    return line
