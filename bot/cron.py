"""Cron schedules evaluated by APScheduler's ``CronTrigger`` (the handlers' ``CronNext`` port).

APScheduler 3 numbers the days of the week from Monday (0) to Sunday (6), while cron numbers them
from Sunday (0) to Saturday (6): ``1-5`` would mean Tuesday to Saturday. Numeric day-of-week
fields are therefore spelled out as day names before APScheduler reads them, which both agree on.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's numbering: 0 = Sunday


def _day(value: str) -> int:
    return CRON_DAYS.index(value) if value in CRON_DAYS else int(value) % 7


def standard_weekdays(field: str) -> str:
    """A cron day-of-week field with every numeric part spelled as day names (``1-5`` → ``mon,…,fri``)."""
    field = field.strip().lower()
    wraps = any(_day(a) > _day(b) for a, b in re.findall(r"([a-z]{3})-([a-z]{3})", field)
                if a in CRON_DAYS and b in CRON_DAYS)
    if not re.search(r"[0-9]", field) and not wraps:
        return field  # names and a bare star mean the same to cron and APScheduler (a range may wrap: below)
    days: set[int] = set()
    for item in field.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, last = base.split("-", 1)
            low, high = _day(first), _day(last)
        else:
            low = high = _day(base)
            if step:
                high = 6
        if high < low:  # a range through the week's end ("6-0", "fri-mon") wraps round to the start
            high += 7
        days.update(d % 7 for d in range(low, high + 1, int(step) if step else 1))
    return ",".join(CRON_DAYS[d] for d in sorted(days))


@lru_cache(maxsize=256)
def cron_trigger(cron: str, timezone: str) -> CronTrigger:
    """APScheduler's trigger for a 5-field cron expression read as cron reads it, in ``timezone``."""
    fields = cron.split()
    if len(fields) == 5:
        fields[4] = standard_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=ZoneInfo(timezone))


def _repeated(fire: datetime, zone: ZoneInfo) -> bool:
    """``fire`` is the second occurrence of its local time: the hour the clocks go back repeats."""
    local = fire.astimezone(zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def next_cron_fire(cron: str, timezone: str, after: datetime) -> datetime | None:
    """The first instant strictly after ``after`` named by the 5-field ``cron`` read in ``timezone``.

    When summer time ends the local hour that repeats is run once, as cron runs a job at a fixed time: a
    fixed minute and hour ("30 2 * * *") names the first 02:30 only; a minute or hour of ``*`` goes on
    through the repeated hour by the clock on the wall, as cron's wildcard jobs do."""
    trigger = cron_trigger(cron, timezone)
    fields = cron.split()
    fixed = len(fields) == 5 and not (fields[0].startswith("*") or fields[1].startswith("*"))
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while fire is not None and fixed and _repeated(fire, trigger.timezone):
        # in UTC: local time plus a microsecond would lose the fold and land on the first 02:30 again
        fire = trigger.get_next_fire_time(None, fire.astimezone(UTC) + timedelta(microseconds=1))
    return fire.astimezone(UTC) if fire is not None else None
