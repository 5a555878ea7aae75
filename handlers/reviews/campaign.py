"""Starting a campaign: read and validate the snapshot, keep it, number the items, tell the reviewers.

A snapshot that cannot be read or does not validate starts nothing: ``review.failed`` is recorded
and the security team is told; a scheduled start is tried again later. The reviewers' notices (and the security
team's of a failed start) are written to the outbox with ``review.started`` (``review.failed``) and sent once it is
committed (handlers/outbox.py): a start cut off before it told them has them sent by a later sweep.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import cast

from handlers.audit import format_ts
from handlers.context import Deps
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from handlers.records import HOLDING_STATES
from handlers.reviews.assign import plan_items
from handlers.reviews.calendar import BusinessCalendar, after
from handlers.reviews.links import ReviewLink
from handlers.reviews.model import Review
from handlers.reviews.records import CampaignRecord, ItemRecord, SnapshotRecord
from handlers.reviews.repository import ReviewRepository
from handlers.reviews.snapshot import SnapshotError, read_snapshot

MAX_PROBLEMS_SHOWN = 10
UNKNOWN_DEPARTMENT = "(no department)"


@dataclass
class StartOutcome:
    campaign: CampaignRecord | None = None
    items: list[ItemRecord] = field(default_factory=list)
    reason: str | None = None  # why nothing started
    already: bool = False  # the scheduled instant was started by another process meanwhile

    @property
    def ok(self) -> bool:
        return self.campaign is not None


def repo_of(repo: object) -> ReviewRepository:
    return cast(ReviewRepository, repo)


async def start_campaign(deps: Deps, review: Review, *, actor: str, now: datetime,
                         scheduled_for: datetime | None = None) -> StartOutcome:
    """Start one campaign of ``review`` now (``scheduled_for``: the scheduled instant it answers)."""
    try:
        snapshot = await read_snapshot(deps, review, now)
    except SnapshotError as exc:
        return await _failed(deps, review, actor, now, scheduled_for, f"snapshot could not be read: {exc}")
    async with deps.store.read() as repo:
        holdings = await repo.find_requests(states=HOLDING_STATES)
    plan = await plan_items(deps, review, snapshot, now, holdings)
    if plan.problems:
        shown = "; ".join(plan.problems[:MAX_PROBLEMS_SHOWN])
        more = f" (and {len(plan.problems) - MAX_PROBLEMS_SHOWN} more)" if len(plan.problems) > MAX_PROBLEMS_SHOWN \
            else ""
        return await _failed(deps, review, actor, now, scheduled_for, f"snapshot invalid: {shown}{more}")
    body = snapshot.canonical()
    sha = snapshot.sha256
    calendar = BusinessCalendar.of(review.schedule)
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        if scheduled_for is not None and await repo.campaign_for_schedule(review.id, scheduled_for) is not None:
            return StartOutcome(already=True)
        campaign = CampaignRecord(
            review=review.id, title=review.title, started_at=now, due_at=after(calendar, now, review.duration),
            started_by=actor, policy_version=deps.policy.version, policy_sha256=deps.policy.sha256,
            snapshot_sha256=sha, items=len(plan.items), scheduled_for=scheduled_for)
        cid = await repo.add_campaign(campaign)
        for item in plan.items:
            item.campaign_id = cid
        await repo.add_items(plan.items)
        await repo.add_snapshot(SnapshotRecord(campaign_id=cid, review=review.id, taken_at=now, sha256=sha,
                                               body=body))
        reviewers = sorted({i.reviewer for i in plan.items})
        await repo.append("review.started", actor=actor, ts=now, data={
            "review_id": campaign.ref, "review": review.id, "items": len(plan.items), "snapshot_sha256": sha,
            "reviewers": len(reviewers), "due_at": format_ts(campaign.due_at),
            "policy_version": campaign.policy_version, "policy_sha256": campaign.policy_sha256,
            "departments": dict(sorted(Counter(i.department or UNKNOWN_DEPARTMENT for i in plan.items).items())),
            "scheduled_for": format_ts(scheduled_for) if scheduled_for else None})
        await repo.queue_notices(_batch_notices(deps, campaign, plan.items), deps.now())  # sent once committed
    await deliver_pending(deps)
    return StartOutcome(campaign=campaign, items=plan.items)


async def unreadable(deps: Deps, campaign: CampaignRecord) -> str | None:
    """Why the policy version ``campaign`` started under cannot judge it (not stored, or refused by today's
    validator), or None. Its removals then never run: nothing is removed by a version it did not start under."""
    if not campaign.policy_sha256 or await deps.stored_policy(campaign.policy_sha256) is not None:
        return None
    return (f"the policy version {campaign.policy_version} it started under can no longer be read "
            f"(sha256 {campaign.policy_sha256[:12]}…)")


async def pinned(deps: Deps, campaign: CampaignRecord) -> Deps:
    """``deps`` judging ``campaign`` by the policy version it started under, to its end: its reviewer groups,
    justifications, timers, default and sign-off chain, as a request is judged by the version it was asked
    under. A later policy changes the campaigns started after it."""
    if not campaign.policy_sha256 or campaign.policy_sha256 == deps.policy.sha256:
        return deps
    policy = await deps.policy_by_sha(campaign.policy_sha256)
    return deps if policy is deps.policy else replace(deps, policy=policy)


def reviewer_people(deps: Deps, reviewer: str) -> list[str]:
    """The people a reviewer stands for: the email, or each member of the approver group."""
    if reviewer.startswith("group:"):
        return sorted(deps.policy.approver_groups.get(reviewer.removeprefix("group:"), ()))
    return [reviewer]


def _batch_notices(deps: Deps, campaign: CampaignRecord, items: list[ItemRecord]) -> list[Notice]:
    by_reviewer: dict[str, list[ItemRecord]] = defaultdict(list)
    for item in items:
        by_reviewer[item.reviewer].append(item)
    notices = []
    due = format_ts(campaign.due_at)
    for reviewer, batch in sorted(by_reviewer.items()):
        numbers = ", ".join(str(i.number) for i in batch[:20]) + (", …" if len(batch) > 20 else "")
        for person in reviewer_people(deps, reviewer):
            mine = [i for i in batch if i.user != person]  # nobody decides their own item
            if not mine:
                continue
            notices.append(Notice(person, "info", f"{campaign.ref} ({campaign.title}): you are asked to review "
                                  f"{len(mine)} access item(s) ({numbers}) by {due}. Say `review {campaign.ref}` "
                                  "to see them.", None, ReviewLink(campaign.ref, campaign.title, len(mine),
                                                                    campaign.due_at)))
    return notices


async def _failed(deps: Deps, review: Review, actor: str, now: datetime, scheduled_for: datetime | None,
                  reason: str) -> StartOutcome:
    text = f"Access review {review.id} did not start: {reason}"
    if scheduled_for is not None:
        text += " It will be tried again."
    async with deps.store.write() as repo:
        await repo.append("review.failed", actor=actor, ts=now, data={
            "review_id": None, "review": review.id, "reason": reason[:2000],
            "scheduled_for": format_ts(scheduled_for) if scheduled_for else None})
        await repo.queue_notices([Notice(m, "failure", text, None) for m in sorted(deps.policy.security_members())],
                                 deps.now())
    await deliver_pending(deps)
    return StartOutcome(reason=reason)
