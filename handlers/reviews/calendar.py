"""Calendar rules of access reviews (SPEC §7), as pure functions.

Business days skip the weekend and the public holidays of a country (and subdivision) as the
``holidays`` package knows them. Local times are read in an IANA time zone (``zoneinfo``, with
``tzdata`` where the machine has no zone database): arithmetic happens on local dates and times,
and only the result is converted to UTC, so "08:00 Europe/Berlin" is 07:00 UTC in winter and
06:00 UTC in summer.

Cron schedules are evaluated by a :data:`CronNext` function handed in by the caller (the
composition root uses APScheduler's ``CronTrigger``), so this module needs no scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from handlers.reviews.model import Quarterly, ReviewDuration, ReviewSchedule

# next_fire(cron, timezone, after) -> the first instant strictly after ``after`` that the 5-field
# cron names, read in ``timezone`` (aware UTC), or None when it never fires again
CronNext = Callable[[str, str, datetime], datetime | None]

MAX_QUARTERS_BACK = 400  # a hundred years: the latest due quarter is found long before
MAX_SCAN = 100_000  # cron fires looked at while searching backwards; plenty for any 5-field cron


@cache
def _holidays(country: str, subdivision: str | None, year: int) -> tuple[frozenset[date], frozenset[int]]:
    import holidays

    found = holidays.country_holidays(country, subdiv=subdivision, years=year)
    weekend = frozenset(getattr(found, "weekend", None) or (5, 6))
    return frozenset(found), weekend


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekends and the public holidays of ``country`` (and ``subdivision``), in ``timezone``."""

    timezone: str = "UTC"
    country: str | None = None
    subdivision: str | None = None

    @classmethod
    def of(cls, schedule: ReviewSchedule) -> BusinessCalendar:
        return cls(schedule.timezone, schedule.country, schedule.subdivision)

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    def is_business_day(self, day: date) -> bool:
        if self.country is None:
            return day.weekday() < 5
        holidays, weekend = _holidays(self.country, self.subdivision, day.year)
        return day.weekday() not in weekend and day not in holidays

    def business_day_on_or_after(self, day: date) -> date:
        for _ in range(366):
            if self.is_business_day(day):
                return day
            day += timedelta(days=1)
        raise ValueError(f"no business day within a year after {day}")  # a calendar of nothing but holidays

    def add_business_days(self, day: date, n: int) -> date:
        """The ``n``-th business day after ``day`` (``day`` itself never counts)."""
        for _ in range(n):
            day = self.business_day_on_or_after(day + timedelta(days=1))
        return day

    def at(self, day: date, clock: time) -> datetime:
        """``clock`` on local ``day``, in UTC. A local time that does not exist (the hour skipped when
        summer time starts) is read with the offset before the change, as ``zoneinfo`` does."""
        return datetime.combine(day, clock, tzinfo=self.zone).astimezone(UTC)

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)


def after(calendar: BusinessCalendar, instant: datetime, duration: ReviewDuration) -> datetime:
    """``instant`` plus ``duration``: ``Nbd`` is the same local time on the Nth business day after the
    instant's local date; a plain duration is added as elapsed time."""
    if duration.business_days is None:
        return instant + (duration.span or timedelta())
    local = calendar.local(instant)
    day = calendar.add_business_days(local.date(), duration.business_days)
    return calendar.at(day, local.time().replace(tzinfo=None))


def quarter_of(day: date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3 + 1


def quarter_day(calendar: BusinessCalendar, year: int, quarter: int, rule: Quarterly) -> date:
    """The quarter's start day: its first business day, or its first Monday moved to the next
    business day when that Monday is a holiday."""
    first = date(year, 3 * (quarter - 1) + 1, 1)
    if rule == "first_business_day":
        return calendar.business_day_on_or_after(first)
    monday = first + timedelta(days=(7 - first.weekday()) % 7)
    return calendar.business_day_on_or_after(monday)


def _previous_quarter(year: int, quarter: int) -> tuple[int, int]:
    return (year, quarter - 1) if quarter > 1 else (year - 1, 4)


def _latest_quarterly(schedule: ReviewSchedule, since: datetime, at: datetime) -> datetime | None:
    assert schedule.quarterly is not None
    calendar = BusinessCalendar.of(schedule)
    year, quarter = quarter_of(calendar.local(at).date())
    for _ in range(MAX_QUARTERS_BACK):
        instant = calendar.at(quarter_day(calendar, year, quarter, schedule.quarterly), schedule.at)
        if instant <= since:
            return None
        if instant <= at:
            return instant
        year, quarter = _previous_quarter(year, quarter)
    return None


def _latest_cron(cron: str, timezone: str, since: datetime, at: datetime, next_fire: CronNext) -> datetime | None:
    """The last fire in (since, at]: windows that double backwards from ``at`` until one holds a fire."""
    width = timedelta(hours=1)
    scanned = 0
    while True:
        start = max(since, at - width)
        latest = None
        fire = next_fire(cron, timezone, start)
        while fire is not None and fire <= at and scanned < MAX_SCAN:
            latest, scanned = fire, scanned + 1
            fire = next_fire(cron, timezone, fire)
        if latest is not None or start <= since or scanned >= MAX_SCAN:
            return latest
        width *= 2


def latest_due(schedule: ReviewSchedule, *, since: datetime, at: datetime,
               next_fire: CronNext | None = None) -> datetime | None:
    """The latest scheduled instant after ``since`` (when the review was first in force) and at or
    before ``at``; None when there is none. Only this one counts: missed earlier instants never
    start a backlog of campaigns."""
    if at <= since:
        return None
    if schedule.cron is not None:
        if next_fire is None:
            raise ValueError("a cron schedule needs a cron evaluator")
        return _latest_cron(schedule.cron, schedule.timezone, since, at, next_fire)
    if schedule.quarterly is not None:
        return _latest_quarterly(schedule, since, at)
    return None


def next_due(schedule: ReviewSchedule, *, after: datetime, next_fire: CronNext | None = None) -> datetime | None:
    """The first scheduled instant strictly after ``after`` (for waking the sweep in time)."""
    if schedule.cron is not None:
        if next_fire is None:
            raise ValueError("a cron schedule needs a cron evaluator")
        return next_fire(schedule.cron, schedule.timezone, after)
    if schedule.quarterly is None:
        return None
    calendar = BusinessCalendar.of(schedule)
    year, quarter = quarter_of(calendar.local(after).date())
    for _ in range(8):
        instant = calendar.at(quarter_day(calendar, year, quarter, schedule.quarterly), schedule.at)
        if instant > after:
            return instant
        year, quarter = (year, quarter + 1) if quarter < 4 else (year + 1, 1)
    return None
