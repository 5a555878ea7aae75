"""Business days, quarter starts, cron and the latest due instant (SPEC §7), as table tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.cron import next_cron_fire
from handlers.reviews.calendar import BusinessCalendar, after, latest_due, next_due, quarter_day
from handlers.reviews.model import ReviewDuration, ReviewSchedule

DE = BusinessCalendar("Europe/Berlin", "DE")
BY = BusinessCalendar("Europe/Berlin", "DE", "BY")
PLAIN = BusinessCalendar("Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.mark.parametrize(("calendar", "day", "business"), [
    (DE, date(2026, 4, 2), True),    # Maundy Thursday is a working day in Germany
    (DE, date(2026, 4, 3), False),   # Good Friday
    (DE, date(2026, 4, 6), False),   # Easter Monday
    (DE, date(2026, 4, 7), True),
    (DE, date(2026, 4, 4), False),   # a Saturday
    (DE, date(2026, 1, 6), True),    # Epiphany is no holiday in Germany as a whole ...
    (BY, date(2026, 1, 6), False),   # ... but in Bavaria
    (DE, date(2027, 3, 26), False),  # Good Friday moves: 2027's is in March
    (PLAIN, date(2026, 4, 6), True),  # no holiday calendar: only weekends
    (PLAIN, date(2026, 4, 5), False),
])
def test_business_days(calendar, day, business):
    assert calendar.is_business_day(day) is business


@pytest.mark.parametrize(("calendar", "year", "quarter", "rule", "expected"), [
    (DE, 2026, 2, "first_monday", date(2026, 4, 7)),   # Easter Monday 2026 moves Q2's first Monday to Tuesday
    (PLAIN, 2026, 2, "first_monday", date(2026, 4, 6)),
    (DE, 2026, 4, "first_monday", date(2026, 10, 5)),
    (DE, 2027, 1, "first_monday", date(2027, 1, 4)),
    (DE, 2026, 1, "first_business_day", date(2026, 1, 2)),  # New Year's Day is a holiday
    (DE, 2026, 2, "first_business_day", date(2026, 4, 1)),
    (DE, 2027, 1, "first_business_day", date(2027, 1, 4)),  # Friday 1 January is a holiday, then a weekend
    (DE, 2027, 2, "first_business_day", date(2027, 4, 1)),
    (DE, 2026, 3, "first_business_day", date(2026, 7, 1)),
    (BusinessCalendar("UTC", "US"), 2026, 3, "first_monday", date(2026, 7, 6)),
    (BusinessCalendar("UTC", "GB"), 2027, 2, "first_business_day", date(2027, 4, 1)),
])
def test_quarter_start_days(calendar, year, quarter, rule, expected):
    assert quarter_day(calendar, year, quarter, rule) == expected


@pytest.mark.parametrize(("calendar", "start", "duration", "expected"), [
    # 08:00 Berlin (CEST) on 1 April 2026, plus 3 business days: Good Friday and Easter Monday skipped
    (DE, "2026-04-01T06:00:00Z", ReviewDuration(business_days=3), "2026-04-08T06:00:00Z"),
    (DE, "2026-04-01T06:00:00Z", ReviewDuration(business_days=10), "2026-04-17T06:00:00Z"),
    (PLAIN, "2026-04-01T06:00:00Z", ReviewDuration(business_days=3), "2026-04-06T06:00:00Z"),
    # summer time starts on 29 March 2026: 08:00 CET is 07:00 UTC, 08:00 CEST is 06:00 UTC
    (DE, "2026-03-27T07:00:00Z", ReviewDuration(business_days=1), "2026-03-30T06:00:00Z"),
    # and ends on 25 October 2026: the local time stays, the UTC hour moves back
    (DE, "2026-10-23T06:00:00Z", ReviewDuration(business_days=1), "2026-10-26T07:00:00Z"),
    # a Saturday start counts from Monday
    (DE, "2026-04-11T10:00:00Z", ReviewDuration(business_days=1), "2026-04-13T10:00:00Z"),
    # the local date decides: 23:30 UTC on Thursday 2 April is 01:30 on Good Friday in Berlin, and one
    # business day later is 01:30 on Tuesday 7 April in Berlin, still the 6th in UTC
    (DE, "2026-04-02T23:30:00Z", ReviewDuration(business_days=1), "2026-04-06T23:30:00Z"),
    # a plain duration is elapsed time, whatever the calendar
    (DE, "2026-04-02T10:00:00Z", ReviewDuration(span=timedelta(hours=48)), "2026-04-04T10:00:00Z"),
])
def test_business_day_durations(calendar, start, duration, expected):
    assert after(calendar, utc(start), duration) == utc(expected)


def test_a_local_time_that_does_not_exist_is_read_before_the_change():
    # 02:30 on 29 March 2026 is skipped in Berlin; it is read as 02:30 CET (01:30 UTC)
    assert PLAIN.at(date(2026, 3, 29), time(2, 30)) == utc("2026-03-29T01:30:00Z")


Q2_MONDAY = ReviewSchedule(quarterly="first_monday", at=time(8, 0), timezone="Europe/Berlin", country="DE")
Q_FIRST = ReviewSchedule(quarterly="first_business_day", at=time(8, 0), timezone="Europe/Berlin", country="DE")
CRON = ReviewSchedule(cron="0 8 1 */3 *", timezone="Europe/Berlin", country="DE")


@pytest.mark.parametrize(("schedule", "since", "at", "expected"), [
    (Q2_MONDAY, "2026-03-01T00:00:00Z", "2026-04-07T05:59:59Z", None),  # Q1's start was before the review existed
    (Q2_MONDAY, "2026-03-01T00:00:00Z", "2026-04-07T06:00:00Z", "2026-04-07T06:00:00Z"),
    (Q2_MONDAY, "2026-03-01T00:00:00Z", "2026-04-20T12:00:00Z", "2026-04-07T06:00:00Z"),  # missed: starts late
    # downtime over three quarter starts: only the latest counts, never a backlog
    (Q2_MONDAY, "2026-03-01T00:00:00Z", "2026-12-31T00:00:00Z", "2026-10-05T06:00:00Z"),
    (Q2_MONDAY, "2026-04-10T00:00:00Z", "2026-06-30T00:00:00Z", None),  # added mid-quarter: waits for the next
    (Q2_MONDAY, "2026-04-07T06:00:00Z", "2026-04-08T00:00:00Z", None),  # strictly after the review was added
    (Q_FIRST, "2025-12-01T00:00:00Z", "2026-01-02T07:00:00Z", "2026-01-02T07:00:00Z"),  # 08:00 CET
    (Q_FIRST, "2025-12-01T00:00:00Z", "2026-01-02T06:59:00Z", None),
    (CRON, "2026-01-15T00:00:00Z", "2026-08-01T00:00:00Z", "2026-07-01T06:00:00Z"),
    (CRON, "2026-01-15T00:00:00Z", "2026-07-01T05:59:00Z", "2026-04-01T06:00:00Z"),
    (CRON, "2026-01-15T00:00:00Z", "2026-03-31T00:00:00Z", None),
    (CRON, "2025-06-01T00:00:00Z", "2026-01-01T07:00:00Z", "2026-01-01T07:00:00Z"),  # cron does not skip holidays
    (ReviewSchedule(cron="*/5 * * * *"), "2026-01-01T00:00:00Z", "2026-04-07T10:03:00Z", "2026-04-07T10:00:00Z"),
    (ReviewSchedule(cron="30 9 * * 1-5", timezone="America/New_York"), "2026-01-01T00:00:00Z",
     "2026-03-09T00:00:00Z", "2026-03-06T14:30:00Z"),  # Friday, EST (summer time starts Sunday 8 March)
    (ReviewSchedule(cron="30 9 * * 1-5", timezone="America/New_York"), "2026-01-01T00:00:00Z",
     "2026-03-09T14:00:00Z", "2026-03-09T13:30:00Z"),  # Monday, EDT
    (ReviewSchedule(cron="0 0 29 2 *"), "2025-01-01T00:00:00Z", "2031-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
    (ReviewSchedule(timezone="Europe/Berlin"), "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", None),  # by hand
])
def test_latest_due(schedule, since, at, expected):
    found = latest_due(schedule, since=utc(since), at=utc(at), next_fire=next_cron_fire)
    assert found == (utc(expected) if expected else None)


@pytest.mark.parametrize(("schedule", "start", "expected"), [
    (Q2_MONDAY, "2026-03-01T00:00:00Z", "2026-04-07T06:00:00Z"),
    (Q2_MONDAY, "2026-04-07T06:00:00Z", "2026-07-06T06:00:00Z"),
    (Q_FIRST, "2026-11-01T00:00:00Z", "2027-01-04T07:00:00Z"),
    (CRON, "2026-04-01T06:00:00Z", "2026-07-01T06:00:00Z"),
    (ReviewSchedule(), "2026-04-01T06:00:00Z", None),
])
def test_next_due(schedule, start, expected):
    found = next_due(schedule, after=utc(start), next_fire=next_cron_fire)
    assert found == (utc(expected) if expected else None)


def test_cron_needs_an_evaluator():
    with pytest.raises(ValueError, match="cron evaluator"):
        latest_due(CRON, since=utc("2026-01-01T00:00:00Z"), at=utc("2026-08-01T00:00:00Z"))


@pytest.mark.parametrize(("field", "expected"), [
    ("*", "*"), ("mon-fri", "mon-fri"), ("1-5", "mon,tue,wed,thu,fri"), ("0", "sun"), ("6", "sat"),
    ("0,6", "sun,sat"), ("*/2", "sun,tue,thu,sat"), ("1-5/2", "mon,wed,fri"), ("3/2", "wed,fri"),
    ("6-0", "sun,sat"), ("fri-mon", "sun,mon,fri,sat"), ("5-1/2", "sun,fri"),
])
def test_cron_weekdays_are_read_as_cron_reads_them(field, expected):
    from bot.cron import standard_weekdays

    assert standard_weekdays(field) == expected


@pytest.mark.parametrize(("cron", "start", "expected"), [
    ("30 9 * * 1-5", "2026-04-03T12:00:00Z", "2026-04-06T07:30:00Z"),  # Friday afternoon → Monday, not Saturday
    ("0 8 * * 0", "2026-04-01T00:00:00Z", "2026-04-05T06:00:00Z"),  # 0 is Sunday
    ("0 8 * * mon", "2026-04-01T00:00:00Z", "2026-04-06T06:00:00Z"),
])
def test_cron_weekdays_fire_on_the_days_cron_means(cron, start, expected):
    assert next_cron_fire(cron, "Europe/Berlin", utc(start)) == utc(expected)
