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


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def children_peaks(parent: int) -> list[float]:
    """Peak RSS (VmHWM, MB) of each live child of ``parent`` (``accessbot serve``'s workers), read from
    /proc while they still run; empty where /proc is not there."""
    peaks = []
    try:
        with open(f"/proc/{parent}/task/{parent}/children") as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        return []
    for pid in pids:
        hwm = _status(pid).get("VmHWM", "").split()
        if hwm:
            peaks.append(int(hwm[0]) / 1024)
    return peaks


def workers_line(parent: int) -> str:
    peaks = children_peaks(parent)
    return ("peak RSS per serve worker: " + ", ".join(f"{p:.0f} MB" for p in peaks)) if peaks else ""
