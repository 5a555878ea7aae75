"""A list of names in one block of a channel's text: as many as fit within the block's limit after the channel's
escaping, and how many were left out."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def fit_names(label: str, names: Sequence[str], *, escape: Callable[[str], str], measure: Callable[[str], int],
              limit: int) -> str:
    """``label`` and ``names`` joined by ", ", escaped; when that is longer than ``limit`` (as ``measure`` counts
    the escaped text), the most names from the start that fit followed by "… and N more" (N the names left out)."""
    whole = escape(label + ", ".join(names))
    if measure(whole) <= limit:
        return whole

    def line(shown: int) -> str:
        listed = escape(label + ", ".join(names[:shown]))
        return listed + (", " if shown else "") + f"… and {len(names) - shown} more"

    low, high = 0, len(names) - 1  # the line grows with each name shown: the most that fit, by halving
    while low < high:
        mid = (low + high + 1) // 2
        if measure(line(mid)) <= limit:
            low = mid
        else:
            high = mid - 1
    return line(low)
