"""The timers of open campaigns, driven by the sweep (SPEC §7): reminders every ``remind_after``,
escalation at ``escalate_after`` to the reviewer's manager (the security team when the reviewer is a
group or has no manager), and the close at ``duration`` or once every item is decided.

Each reminder and escalation is recorded on the reviewer's batch in the same write transaction as
its event, after checking the batch again, so two processes sweeping one database send it once; its notices are
written to the outbox in that transaction (handlers/outbox.py), so a sweep cut off after the record still has
them sent, by a later sweep if need be. One whose items were all decided before it was sent is dropped.

A reminder or an escalation counts only the items that still need a decision: the groups of the batches due are
listed again, as the close does, and an item whose person left its group since the snapshot is not asked about
(the close marks it gone); a batch with nothing left is neither reminded nor escalated. A group the provider
cannot list is counted as recorded, and the sweep's report says so (``unchecked``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from handlers.context import SYSTEM, Deps
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from handlers.reviews.calendar import BusinessCalendar, after
from handlers.reviews.campaign import pinned, repo_of, reviewer_people
from handlers.reviews.close import (
    PAUSED_LINE,
    close_campaign,
    fail_stuck_signoffs,
    finish_stalled,
    held_removals,
    record_late_removals,
    release_held,
)
from handlers.reviews.decide import in_reviewer, left_groups
from handlers.reviews.links import ReviewLink, ReviewReminder
from handlers.reviews.records import OPEN, BatchRecord, CampaignRecord, ItemRecord


@dataclass
class TimerReport:
    reminded: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # a live check that could not run: counted as recorded
    paused: int = 0  # removals of held campaigns waiting for ``resume removals`` (SPEC §3.6)


async def escalation_target(deps: Deps, reviewer: str) -> str:
    """The reviewer's active manager; the security team when the reviewer is a group or has none."""
    security = f"group:{deps.policy.security_team}"
    if reviewer.startswith("group:"):
        return security
    person = await deps.person(reviewer)
    if person is None or not person.manager:
        return security
    manager = await deps.person(person.manager)
    return manager.email.lower() if manager is not None and manager.active else security


async def run_review_timers(deps: Deps, now: datetime, *, dry_run: bool = False) -> TimerReport:
    report = TimerReport()
    if not dry_run:
        report.closed += await finish_stalled(deps)
        released, report.paused = await release_held(deps)
        report.closed += released
        report.closed += await record_late_removals(deps)
    # a sign-off nobody can complete any more
    report.closed += await fail_stuck_signoffs(deps, dry_run=dry_run, failed=report.failed)
    async with deps.store.read() as raw:
        campaigns = await repo_of(raw).campaigns(states=(OPEN,))
    for campaign in campaigns:
        try:
            await _campaign_timers(deps, campaign, now, report, dry_run=dry_run)
        except Exception as exc:  # one campaign's trouble does not stop the others; the next sweep retries
            report.failed.append(f"{campaign.ref}: {type(exc).__name__}: {exc}")
    if not dry_run:
        await deliver_pending(deps)  # the reminders and escalations written with their records
    return report


async def _campaign_timers(deps: Deps, campaign: CampaignRecord, now: datetime, report: TimerReport, *,
                           dry_run: bool) -> None:
    cid = campaign.id or 0
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        items = await repo.items(cid)
        final = await repo.final_decisions(cid)
    undecided = [i for i in items if i.state == OPEN and i.number not in final]
    if now >= campaign.due_at or not undecided:
        if dry_run:
            report.closed.append(campaign.ref)
            return
        line = await close_campaign(deps, cid, now)
        if line and PAUSED_LINE in line:
            report.paused += await held_removals(deps, cid)
        if line:
            report.closed.append(line)
        return
    deps = await pinned(deps, campaign)  # reminders and escalation as the version the campaign started under
    review = deps.policy.review(campaign.review)
    if review is None:
        return
    calendar = BusinessCalendar.of(review.schedule)
    by_reviewer: dict[str, list[ItemRecord]] = defaultdict(list)
    for item in undecided:
        by_reviewer[item.reviewer].append(item)
    due: list[tuple[str, list[ItemRecord], BatchRecord, bool]] = []
    async with deps.store.read() as raw:
        batches = await repo_of(raw).batches(cid)
    for reviewer, waiting in sorted(by_reviewer.items()):
        batch = batches.get(reviewer) or BatchRecord(campaign_id=cid, reviewer=reviewer)
        escalate = review.escalate_after is not None and batch.escalated_at is None and \
            now >= after(calendar, campaign.started_at, review.escalate_after)
        remind = not escalate and review.remind_after is not None and \
            now >= after(calendar, batch.reminded_at or campaign.started_at, review.remind_after)
        if escalate or remind:
            due.append((reviewer, waiting, batch, escalate))
    if not due:
        return
    # the live check, as the close makes it (one listing of each group for the campaign's due batches): an item
    # whose person left its group since the snapshot needs no decision, so it is neither counted nor asked about
    left, notes = await left_groups(deps, [i for _, waiting, _, _ in due for i in waiting],
                                    unread="its reminders count the items as recorded")
    report.unchecked += [f"{campaign.ref}: {note}" for note in notes]
    for reviewer, waiting, batch, escalate in due:
        still = [i for i in waiting if i.number not in left]
        if still:  # a batch whose every item has gone waits for nothing: the close marks them gone
            await _batch_timers(deps, campaign, reviewer, still, batch, escalate, now, report, dry_run=dry_run)


async def _batch_timers(deps: Deps, campaign: CampaignRecord, reviewer: str, waiting: list[ItemRecord],
                        batch: BatchRecord, escalate: bool, now: datetime, report: TimerReport, *,
                        dry_run: bool) -> None:
    numbers = [i.number for i in waiting]
    label = f"{campaign.ref} {reviewer}"
    if dry_run:
        (report.escalated if escalate else report.reminded).append(label)
        return
    target = await escalation_target(deps, reviewer) if escalate else None
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        fresh = (await repo.batches(campaign.id or 0)).get(reviewer) or batch
        if (fresh.escalated_at is not None) if escalate else (fresh.reminded_at != batch.reminded_at):
            return  # another process escalated or reminded meanwhile
        final = await repo.final_decisions(campaign.id or 0)  # decided since ``waiting`` was read: not asked about
        numbers = [n for n in numbers if n not in final]
        if not numbers:
            return
        waiting = [i for i in waiting if i.number in numbers]
        if escalate:
            fresh.escalated_at, fresh.escalated_to, fresh.escalated_items = now, target, numbers
            await repo.save_batch(fresh)
            await repo.append("review.escalated", actor=SYSTEM, ts=now, data={
                "review_id": campaign.ref, "reviewer": reviewer, "to": target, "items": numbers})
        else:
            fresh.reminded_at, fresh.reminders = now, fresh.reminders + 1
            await repo.save_batch(fresh)
            await repo.append("review.reminded", actor=SYSTEM, ts=now, data={
                "review_id": campaign.ref, "reviewer": reviewer, "items": numbers})
        # written to the outbox with the record (handlers/outbox.py); dropped unsent once its items are decided
        await repo.queue_notices(_batch_notices(deps, campaign, reviewer, waiting, numbers, target), deps.now())
    (report.escalated if escalate else report.reminded).append(f"{label} → {target}" if escalate else label)


def _batch_notices(deps: Deps, campaign: CampaignRecord, reviewer: str, waiting: list[ItemRecord],
                   numbers: list[int], target: str | None) -> list[Notice]:
    """A reviewer's reminder (``target`` None), or the escalation of their batch to ``target``."""
    listed = ", ".join(map(str, numbers[:30])) + (", …" if len(numbers) > 30 else "")
    if target is not None:
        people = reviewer_people(deps, target)
        text = (f"{campaign.ref} ({campaign.title}): {len(numbers)} item(s) ({listed}) of {reviewer} are still "
                f"undecided; you may decide them now (`review {campaign.ref}`, then `keep`/`remove`).")
        view: ReviewLink | ReviewReminder = ReviewLink(campaign.ref, campaign.title, len(numbers), campaign.due_at,
                                                       reviewer, tuple(numbers))
    else:
        people = reviewer_people(deps, reviewer)
        text = (f"Reminder: {campaign.ref} ({campaign.title}) waits for your decision on {len(numbers)} item(s) "
                f"({listed}) by {campaign.due_at:%Y-%m-%d %H:%M} UTC. Say `review {campaign.ref}`.")
        view = ReviewReminder(campaign.ref, reviewer, tuple(numbers))
    return [Notice(p, "reminder", text, None, view) for p in people  # escalated: the batch itself, to decide
            if any(i.user != p for i in waiting) and (target is not None or in_reviewer(deps, reviewer, p))]
