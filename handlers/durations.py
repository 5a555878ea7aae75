"""Durations as people write them: ``15m``, ``4h``, ``2d``, ``1h30m``, ``2 hours``, ``1w``."""

from __future__ import annotations

import re
from datetime import timedelta

MAX_DAYS = 3650
UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
}
_PART = re.compile(r"(\d{1,9})\s*([a-z]+)\s*")


class DurationError(ValueError):
    """Not a usable duration; the message says why in words a requester understands."""


def parse_duration(text: str) -> timedelta:
    raw = str(text).strip().lower()
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    if not raw:
        raise DurationError("no duration given (use e.g. 30m, 4h or 2d)")
    if raw.startswith("-"):
        raise DurationError(f"a duration must be positive, not {shown!r}")
    pos, total = 0, 0
    for m in _PART.finditer(raw):
        if m.start() != pos:
            break
        unit = UNITS.get(m.group(2))
        if unit is None:
            raise DurationError(f"unknown unit {m.group(2)!r} in {shown!r} (use m, h, d or w)")
        total += int(m.group(1)) * unit
        pos = m.end()
    if pos != len(raw) or pos == 0:
        if re.fullmatch(r"\d+", raw):
            raise DurationError(f"{shown!r} needs a unit (e.g. {raw[:6]}h)")
        raise DurationError(f"{shown!r} is not a duration (use e.g. 30m, 4h or 2d)")
    if total <= 0:
        raise DurationError(f"a duration must be longer than zero, not {shown!r}")
    if total > MAX_DAYS * 86400:
        raise DurationError(f"{shown!r} is longer than {MAX_DAYS}d")
    return timedelta(seconds=total)


def format_duration(td: timedelta) -> str:
    seconds = int(td.total_seconds())
    if seconds < 0:
        return "-" + format_duration(-td)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    out = "".join(f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v)
    if seconds or not out:
        out += f"{seconds}s"
    return out
