"""Durations as people write them: ``15m``, ``4h``, ``2d``, ``1h30m``, ``1.5h``, ``2 hours``, ``1w``."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

MAX_DAYS = 3650
UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
}
MAX_DIGITS = 9  # more digits than this can only be a mistake; never build huge integers
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)\s*", re.ASCII)
_TOO_LONG = re.compile(rf"(?<![.0-9])0*[1-9][0-9]{{{MAX_DIGITS},}}", re.ASCII)
MAX_TEXT = 64  # no duration a person writes is longer; bounds the work done on garbage


class DurationError(ValueError):
    """Not a usable duration; the message says why in words a requester understands."""


def parse_duration(text: str) -> timedelta:
    """``4h`` → 4 hours. Raises :class:`DurationError` with a message fit to show the requester."""
    raw = str(text).strip().lower()
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    if not raw:
        raise DurationError("no duration given (use e.g. 30m, 4h or 2d)")
    if raw.startswith("-"):
        raise DurationError(f"a duration must be positive, not {shown!r}")
    if _TOO_LONG.search(raw):
        raise DurationError(f"{shown!r} is longer than {MAX_DAYS}d")
    if len(raw) > MAX_TEXT:
        raise DurationError(f"{shown!r} is not a duration (use e.g. 30m, 4h or 2d)")
    pos, total = 0, Decimal(0)
    for m in _PART.finditer(raw):
        if m.start() != pos:
            break
        unit = UNITS.get(m.group(2))
        if unit is None:
            raise DurationError(f"unknown unit {m.group(2)!r} in {shown!r} (use m, h, d or w)")
        total += Decimal(m.group(1)) * unit
        pos = m.end()
    if pos != len(raw) or pos == 0:
        if re.fullmatch(r"[0-9]+", raw):
            raise DurationError(f"{shown!r} needs a unit (e.g. {raw}h or {raw}m)")
        raise DurationError(f"{shown!r} is not a duration (use e.g. 30m, 4h or 2d)")
    total = total.to_integral_value(ROUND_HALF_UP)
    if total <= 0:
        raise DurationError(f"a duration must be longer than zero, not {shown!r}")
    if total > MAX_DAYS * 86400:
        raise DurationError(f"{shown!r} is longer than {MAX_DAYS}d")
    return timedelta(seconds=int(total))


def format_duration(td: timedelta) -> str:
    """The short form: ``4h``, ``1h30m``, ``2d4h``; ``30s`` below a minute."""
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
