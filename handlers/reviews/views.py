"""View-models of review batches that channels render (cards know only these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from handlers.audit import format_ts
from handlers.context import Deps
from handlers.reviews.campaign import pinned, repo_of
from handlers.reviews.decide import look, may_decide, reviewer_keys
from handlers.reviews.links import ReviewLink
from handlers.reviews.records import OPEN, PAST_DUE, ItemRecord, ReviewDecisionRecord


@dataclass(frozen=True)
class ReviewItemView:
    number: int
    user: str
    name: str
    title: str | None
    department: str | None
    profile: str
    group: str
    held_via: str
    since: str | None
    last_sign_in: str | None
    recommendation: str
    recommendation_reason: str
    decision: str | None
    decided_by: str | None
    gone: bool
    inactive: bool
    service: bool


@dataclass(frozen=True)
class ReviewBatchView:
    review_id: str
    title: str
    state: str
    due_at: datetime
    items: tuple[ReviewItemView, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)  # the live check's findings
    keep_reason_required: bool = False
    remove_reason_required: bool = True

    @property
    def decidable(self) -> bool:
        return self.state == OPEN


def item_view(item: ItemRecord, decision: ReviewDecisionRecord | None) -> ReviewItemView:
    held = item.held_via + (f" until {format_ts(item.expires_at)}" if item.expires_at else "")
    return ReviewItemView(
        number=item.number, user=item.user, name=item.name, title=item.title, department=item.department,
        profile=item.profile, group=f"{item.provider}/{item.group}", held_via=held,
        since=format_ts(item.since)[:10] if item.since else None,
        last_sign_in=format_ts(item.last_sign_in)[:10] if item.last_sign_in else None,
        recommendation=item.recommendation, recommendation_reason=item.recommendation_reason,
        decision=decision.decision if decision else None, decided_by=decision.actor if decision else None,
        gone=item.state == "gone", inactive=not item.active, service=item.kind == "service")


async def batch_view(deps: Deps, who: str, campaign_id: int, channel: str, *, opening: bool = True
                     ) -> ReviewBatchView | None:
    """``who``'s items of a campaign after the live check (records ``review.opened`` the first time);
    None when ``who`` decides nothing in it. ``opening=False``: the items as recorded, for a message
    sent to the reviewer before they look (no live check, nothing recorded)."""
    seen = await look(deps, who, campaign_id, channel, opening=opening)
    if seen is None:
        return None
    campaign = seen.campaign
    review = seen.deps.policy.review(campaign.review)
    state = PAST_DUE if campaign.state == OPEN and not campaign.decidable_at(seen.deps.now()) else campaign.state
    return ReviewBatchView(review_id=campaign.ref, title=campaign.title, state=state, due_at=campaign.due_at,
                           items=tuple(item_view(i, seen.final.get(i.number)) for i in seen.items),
                           notes=tuple(seen.notes),
                           keep_reason_required=review.keep_reason_required if review else False,
                           remove_reason_required=review.remove_reason_required if review else True)


async def open_batches(deps: Deps, who: str) -> list[ReviewLink]:
    """The open campaigns in which ``who`` still has undecided items."""
    links = []
    async with deps.store.read() as raw:
        campaigns = await repo_of(raw).campaigns(states=(OPEN,))
    for campaign in campaigns:
        if not campaign.decidable_at(deps.now()):  # past its due time: nothing waits for a decision any more
            continue
        judged = await pinned(deps, campaign)  # (outside a read connection: it may read a policy version)
        async with deps.store.read() as raw:
            repo = repo_of(raw)
            batches = await repo.batches(campaign.id or 0)
            candidates = [i for i in await repo.items(campaign.id or 0, reviewers=reviewer_keys(judged, who, batches))
                          if i.state == OPEN and may_decide(judged, i, who, batches)]
            final = await repo.final_decisions(campaign.id or 0, [i.number for i in candidates])
        waiting = [i for i in candidates if i.number not in final]
        if waiting:
            links.append(ReviewLink(campaign.ref, campaign.title, len(waiting), campaign.due_at))
    return links
