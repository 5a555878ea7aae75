"""The review timers the sweep drives: scheduled starts (reminders, escalation and close come later).

A scheduled instant that passed without its campaign starts it at the next sweep; only the latest
missed instant counts, and only instants after the review was first in force. Each start is
claimed under the store's write lock with a lease, as provider calls are: two processes sweeping
one database start a scheduled campaign exactly once (the unique scheduled instant of a campaign
backs this up). A failed start is tried again after a backoff.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from handlers.audit import format_ts
from handlers.context import SYSTEM, Deps
from handlers.reviews.calendar import latest_due
from handlers.reviews.campaign import repo_of, start_campaign
from handlers.reviews.model import Review
from handlers.reviews.records import ScheduleRecord

LEASE = timedelta(minutes=10)  # reading a large snapshot takes minutes, not hours
RETRY_FIRST = timedelta(minutes=15)
RETRY_MAX = timedelta(hours=6)


def retry_delay(attempts: int) -> timedelta:
    return min(RETRY_MAX, RETRY_FIRST * (2 ** max(0, attempts - 1)))


async def _schedule(deps: Deps, review: Review, *, dry_run: bool) -> ScheduleRecord:
    """The review's bookkeeping; the first sweep that sees a review records when its policy was loaded.

    That is a real instant: a sweep judged as of an earlier one (``sweep --as-of``) must not date the review
    back, or the next sweep would start the quarter already under way when it was added."""
    async with deps.store.read() as raw:
        found = await repo_of(raw).get_schedule(review.id)
        loaded = await repo_of(raw).policy_loaded_at(deps.policy.sha256)
    if found is not None:
        return found
    real = deps.now()
    record = ScheduleRecord(review=review.id, first_seen=min(loaded or real, real))
    if not dry_run:
        async with deps.store.write() as raw:
            repo = repo_of(raw)
            existing = await repo.get_schedule(review.id)
            if existing is not None:
                return existing
            await repo.save_schedule(record)
    return record


async def _claim(deps: Deps, review: Review, due: datetime, now: datetime) -> bool:
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        record = await repo.get_schedule(review.id)
        if record is None or (record.done_for is not None and record.done_for >= due):
            return False
        if await repo.campaign_for_schedule(review.id, due) is not None:
            record.done_for, record.pending_for, record.lease_until = due, None, None
            await repo.save_schedule(record)
            return False
        if record.lease_until is not None and record.lease_until > now:
            return False  # another process is starting it
        if record.pending_for == due and record.next_attempt_at is not None and record.next_attempt_at > now:
            return False  # failed before: waits for its retry
        if record.pending_for != due:
            record.pending_for, record.attempts = due, 0
        record.attempts += 1
        record.lease_until = now + LEASE
        await repo.save_schedule(record)
        return True


async def _settle(deps: Deps, review: Review, due: datetime, now: datetime, error: str | None) -> None:
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        record = await repo.get_schedule(review.id)
        if record is None:
            return
        record.lease_until = None
        if error is None:
            record.done_for, record.pending_for, record.next_attempt_at, record.last_error = due, None, None, None
        else:
            record.next_attempt_at, record.last_error = now + retry_delay(record.attempts), error[:2000]
        await repo.save_schedule(record)


async def start_scheduled(deps: Deps, now: datetime, *, dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Start every review whose scheduled instant is due. Returns (started, failed) lines."""
    started: list[str] = []
    failed: list[str] = []
    for review in deps.policy.reviews:
        if not review.schedule.automatic:
            continue
        record = await _schedule(deps, review, dry_run=dry_run)
        due = latest_due(review.schedule, since=record.first_seen, at=now, next_fire=deps.cron)
        if due is None or (record.done_for is not None and due <= record.done_for):
            continue
        if dry_run:
            started.append(f"{review.id} (scheduled {format_ts(due)})")
            continue
        if not await _claim(deps, review, due, now):
            continue
        try:
            outcome = await start_campaign(deps, review, actor=SYSTEM, now=now, scheduled_for=due)
        except Exception as exc:  # the lease runs out and a later sweep tries again
            failed.append(f"review {review.id}: {type(exc).__name__}: {exc}")
            continue
        await _settle(deps, review, due, now, outcome.reason)
        if outcome.campaign is not None:
            started.append(f"{outcome.campaign.ref} {review.id} ({outcome.campaign.items} items)")
        elif outcome.reason is not None:
            failed.append(f"review {review.id}: {outcome.reason}")
    return started, failed
