"""Rollback of a review removal (SPEC §7): ``review undo RV-n ITEM because <text>`` by a security team
member, then ``approve RV-n ITEM`` by another one re-adds the member through the provisioning intents
(``membership.added`` reason ``review undo``). Both are recorded (``review.undo_requested``,
``review.undone``). A re-added member holds the group as a standing membership: a grant that the
review ended stays ended.

The other members of the security team asked to approve, and the one who asked told it was approved, are
written to the outbox with the record that decides it (handlers/outbox.py): a process that stops right after the
commit leaves them to the next delivery instead of telling nobody. An ask still unsent once another member approved
the undo is dropped, not sent (handlers/reviews/stale.py)."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.context import Deps
from handlers.grants import plan_membership_add, run_due_ops
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from handlers.reviews.campaign import repo_of
from handlers.reviews.close import REMOVED
from handlers.reviews.decide import refuse_in
from handlers.reviews.links import ReviewUndoAsk
from handlers.reviews.records import CLOSED, UndoRecord, rv_id
from handlers.views import Reply

RESTORED = "restored"
UNDO_REASON = "review undo"


@dataclass(frozen=True)
class ReviewUndo:
    campaign: int
    item: int
    reason: str | None


@dataclass(frozen=True)
class ReviewUndoApprove:
    campaign: int
    item: int


async def _leaver(deps: Deps, campaign: int, number: int) -> str | None:
    """The user of item ``number`` when the directory no longer knows them as active, else None.

    Provisioning never adds an inactive person (SPEC §3.6); an undo is no way around that."""
    async with deps.store.read() as raw:
        item = next((i for i in await repo_of(raw).items(campaign) if i.number == number), None)
    if item is None:
        return None
    if "@" not in item.user:  # a service principal is no person of the directory: as its snapshot saw it
        return None if item.active else item.user
    person = await deps.person(item.user)
    return item.user if person is None or not person.active else None


async def request_undo(deps: Deps, who: str, cmd: ReviewUndo) -> Reply:
    ref = rv_id(cmd.campaign)
    now = deps.now()
    reason = (cmd.reason or "").strip()
    leaver = await _leaver(deps, cmd.campaign, cmd.item) if reason else None
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        if not reason:
            return Reply(text=f"Say why: `review undo {ref} {cmd.item} because <reason>`.", ok=False,
                         kind="refusal", rule="reason")
        campaign = await repo.get_campaign(cmd.campaign)
        item = next((i for i in await repo.items(cmd.campaign) if i.number == cmd.item), None) if campaign else None
        if campaign is None or campaign.state != CLOSED or item is None or item.state != REMOVED \
                or item.outcome != "removed":
            return await refuse_in(repo, who, now, f"review undo {ref} {cmd.item}", "not a removed item", ref,
                                   f"Item {cmd.item} of {ref} was not removed by the review: nothing to undo.",
                                   "not-removed")
        if leaver is not None and leaver == item.user:
            return await refuse_in(repo, who, now, f"review undo {ref} {cmd.item}", "person not active", ref,
                                   f"{item.user} is not an active user any more: the removal stands.", "inactive")
        if any(u.item == cmd.item and u.approved_by is None for u in await repo.undos(cmd.campaign)):
            return Reply(text=f"An undo of item {cmd.item} of {ref} already waits for approval.", ok=False,
                         kind="refusal", rule="pending")
        await repo.add_undo(UndoRecord(campaign_id=cmd.campaign, item=cmd.item, requested_by=who, reason=reason,
                                       requested_at=now))
        await repo.append("review.undo_requested", actor=who, ts=now, data={
            "review_id": ref, "item": cmd.item, "user": item.user, "provider": item.provider, "group": item.group,
            "reason": reason})
        others = sorted(deps.policy.security_members() - {who})
        notices = [Notice(m, "approval", f"{who} asks to undo the removal of {item.user} from "
                          f"{item.provider}/{item.group} ({ref} item {cmd.item}): {reason}. Answer "
                          f"`approve {ref} {cmd.item}`.", None, ReviewUndoAsk(ref, cmd.item)) for m in others]
        await raw.queue_notices(notices, now)  # written with the request for it (handlers/outbox.py)
    if notices:
        await deliver_pending(deps)
    return Reply(text=f"{ref} item {cmd.item}: the undo waits for a second member of the security team "
                 f"(`approve {ref} {cmd.item}`).", data={"review_id": ref})


async def approve_undo(deps: Deps, who: str, cmd: ReviewUndoApprove) -> Reply:
    ref = rv_id(cmd.campaign)
    now = deps.now()
    leaver = await _leaver(deps, cmd.campaign, cmd.item)
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        pending = next((u for u in await repo.undos(cmd.campaign) if u.item == cmd.item and u.approved_by is None),
                       None)
        if pending is None:
            return await refuse_in(repo, who, now, f"approve {ref} {cmd.item}", "no undo pending", ref,
                                   f"No undo of item {cmd.item} of {ref} waits for approval.", "not-pending")
        if pending.requested_by == who:
            return await refuse_in(repo, who, now, f"approve {ref} {cmd.item}", "own undo request", ref,
                                   "A second member of the security team approves an undo, not the one who asked.",
                                   "second-approver")
        item = next(i for i in await repo.items(cmd.campaign) if i.number == cmd.item)
        if item.user.lower() == who:  # nobody approves their own access
            return await refuse_in(repo, who, now, f"approve {ref} {cmd.item}", "own membership", ref,
                                   f"The undo of item {cmd.item} of {ref} adds you back: another member of the "
                                   "security team approves it.", "self-approval")
        if leaver is not None and leaver == item.user:
            return await refuse_in(repo, who, now, f"approve {ref} {cmd.item}", "person not active", ref,
                                   f"{item.user} is not an active user any more: the removal stands.", "inactive")
        pending.approved_by, pending.approved_at = who, now
        await repo.save_undo(pending)
        await plan_membership_add(repo, item.provider, item.group, item.user, UNDO_REASON, now)
        item.state, item.outcome = RESTORED, f"re-added: undo by {pending.requested_by}, approved by {who}"
        await repo.save_item(item)
        await repo.append("review.undone", actor=who, ts=now, data={
            "review_id": ref, "item": cmd.item, "user": item.user, "provider": item.provider, "group": item.group,
            "requested_by": pending.requested_by, "reason": pending.reason})
        # the one who asked for it is told it was approved (the approver is answered below)
        await raw.queue_notices([Notice(pending.requested_by, "approval", f"{who} approved your undo of {ref} item "
                                        f"{cmd.item}: {item.user} is added back to {item.provider}/{item.group}.",
                                        None)], now)
    await run_due_ops(deps)
    await deliver_pending(deps)
    return Reply(text=f"{ref} item {cmd.item}: {item.user} is added back to {item.provider}/{item.group}.",
                 data={"review_id": ref})
