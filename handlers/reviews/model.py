"""The ``reviews:`` block of the policy (SPEC §7) as typed, frozen objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from typing import Literal

from handlers.durations import format_duration
from handlers.policy import Step

Quarterly = Literal["first_business_day", "first_monday"]


@dataclass(frozen=True)
class ReviewDuration:
    """Either ``business_days`` (``10bd``: weekends and the calendar's holidays skipped) or a plain ``span``."""

    business_days: int | None = None
    span: timedelta | None = None

    def label(self) -> str:
        if self.business_days is not None:
            return f"{self.business_days}bd"
        return format_duration(self.span or timedelta())


@dataclass(frozen=True)
class ReviewSchedule:
    """When campaigns start, and the calendar that business days are counted in.

    ``quarterly`` or ``cron`` (5 fields) make the review start by itself; with neither it starts
    only when the security team says so. ``at`` is the local time of a quarterly start, read in
    ``timezone`` like the cron; ``country`` (ISO 3166, as the ``holidays`` package knows it) and
    ``subdivision`` name the public holidays that are not business days.
    """

    quarterly: Quarterly | None = None
    cron: str | None = None
    at: time = time(9, 0)
    timezone: str = "UTC"
    country: str | None = None
    subdivision: str | None = None

    @property
    def automatic(self) -> bool:
        return self.quarterly is not None or self.cron is not None

    def describe(self) -> str:
        where = f"{self.timezone}" + (f", holidays {self.country}" + (f"-{self.subdivision}" if self.subdivision
                                                                       else "") if self.country else "")
        if self.cron:
            return f"cron '{self.cron}' ({where})"
        if self.quarterly:
            return f"quarterly on the {self.quarterly.replace('_', ' ')} at {self.at:%H:%M} ({where})"
        return f"started by hand ({where})"


@dataclass(frozen=True)
class Review:
    id: str
    title: str
    profiles: tuple[str, ...]
    reviewer: Step  # manager | owner | any_of | user
    fallback: Step
    schedule: ReviewSchedule
    duration: ReviewDuration
    remind_after: ReviewDuration | None
    escalate_after: ReviewDuration | None
    if_not_reviewed: Literal["remove", "keep"]
    inactive_days: int | None
    keep_reason_required: bool
    remove_reason_required: bool
    sign_off: tuple[Step, ...]
