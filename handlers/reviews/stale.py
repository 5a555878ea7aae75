"""When a reviewer's reminder or an escalation of their batch, a sign-off request, or an ask to approve an undo,
waiting in the outbox (handlers/outbox.py), no longer holds: it is dropped, unsent, rather than ask about items
already decided, a step already signed or an undo already approved."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from handlers.reviews.links import ReviewLink, ReviewReminder, ReviewSignoffAsk, ReviewUndoAsk
from handlers.reviews.records import OPEN, SIGNOFF, CampaignRecord
from handlers.reviews.repository import ReviewRepository


async def batch_moved_on(raw: object, view: ReviewLink | ReviewReminder, now: datetime) -> str | None:
    """Why a review reminder or escalation no longer holds (None: it does, or it names no batch): its campaign is
    gone or no longer open for decisions (closed, or past its due time at ``now``), or every item it was sent for
    has been decided since."""
    if not view.waiting:
        return None
    found = await _on_record(raw, view.review_id)
    if not isinstance(found, tuple):
        return found
    repo, cid, campaign = found
    if not campaign.decidable_at(now):
        why = campaign.state if campaign.state != OPEN else "past its due time"
        return f"{view.review_id} is no longer open for decisions ({why})"
    final = await repo.final_decisions(cid)
    undecided = {i.number for i in await repo.items(cid) if i.state == OPEN and i.number not in final}
    if not undecided & set(view.waiting):
        return f"{view.review_id}: the items of {view.reviewer} it was sent for are decided"
    return None


async def signoff_moved_on(raw: object, ask: ReviewSignoffAsk, recipient: str) -> str | None:
    """Why a sign-off request no longer holds (None: it does): its campaign is gone or no longer waits for a
    sign-off (signed, denied, failed closed), a later step has been asked (the step was signed), or the recipient
    has signed already (one person signs once)."""
    found = await _on_record(raw, ask.review_id)
    if not isinstance(found, tuple):
        return found
    repo, cid, campaign = found
    if campaign.state != SIGNOFF:
        signed = f", sign-off {campaign.signoff}" if campaign.signoff not in (None, "pending") else ""
        return f"{ask.review_id} no longer waits for a sign-off ({campaign.state}{signed})"
    if any(int(k) > ask.step for k in campaign.signoff_asked or {} if k.isdigit()):
        return f"{ask.review_id}: step {ask.step + 1} of its sign-off is signed"
    if any(s.approver.lower() == recipient.lower() for s in await repo.signoffs(cid)):
        return f"{ask.review_id}: {recipient} has signed it off already"
    return None


async def undo_moved_on(raw: object, ask: ReviewUndoAsk) -> str | None:
    """Why an ask to approve an undo no longer holds (None: it does): its campaign is gone, or no undo of the item
    waits for approval any more (another member of the security team approved it)."""
    found = await _on_record(raw, ask.review_id)
    if not isinstance(found, tuple):
        return found
    repo, cid, _ = found
    undos = [u for u in await repo.undos(cid) if u.item == ask.item]
    if any(u.approved_by is None for u in undos):
        return None
    approved = next((u.approved_by for u in reversed(undos) if u.approved_by), None)
    by = f" (approved by {approved})" if approved else ""
    return f"{ask.review_id} item {ask.item}: no undo waits for approval{by}"


async def _on_record(raw: object, review_id: str) -> tuple[ReviewRepository, int, CampaignRecord] | str | None:
    """The store, number and campaign a stored notice names; else None when it names none this version writes
    (nothing to judge), or why it no longer holds when that campaign is not on record."""
    repo = cast(ReviewRepository, raw)
    cid, campaign = await _campaign(repo, review_id)
    if cid is None:
        return None
    if campaign is None:
        return f"{review_id} is not on record"
    return repo, cid, campaign


async def _campaign(repo: ReviewRepository, review_id: str) -> tuple[int | None, CampaignRecord | None]:
    """The campaign a stored notice names (``RV-n``): (None, None) when it names none this version writes."""
    if not review_id.startswith("RV-") or not review_id[3:].isdigit():
        return None, None
    cid = int(review_id[3:])
    return cid, await repo.get_campaign(cid)
