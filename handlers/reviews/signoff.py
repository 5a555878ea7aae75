"""The words that end a campaign: ``approve RV-n`` / ``deny RV-n because <text>`` by the sign-off chain
(one person once, step by step, as a request's chain) and ``review close RV-n`` by the security team.

What a signature tells others (the next step's approvers asked, the security team told of a sign-off failed
closed) is written to the outbox with the ``review.signoff_requested`` or ``review.closed`` that decides it, as
the close's request of the first step is (handlers/outbox.py): the signer is answered at once, and the others'
notices survive a process that stops before they were sent."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.context import SYSTEM, Deps
from handlers.outbox import deliver_pending
from handlers.reviews.campaign import pinned, repo_of, unreadable
from handlers.reviews.close import (
    HELD,
    NOBODY,
    ask_step,
    close_campaign,
    concerned_in,
    fail_signoff,
    open_signoff_step,
    release,
    signoff_chain,
    signoff_need,
    signoff_notices,
    signoff_pool,
    signoff_stuck,
    standing_in_for,
)
from handlers.reviews.decide import refuse_in
from handlers.reviews.records import OPEN, SIGNOFF, CampaignRecord, SignoffRecord, rv_id
from handlers.views import Reply


@dataclass(frozen=True)
class ReviewSignoff:
    campaign: int
    approve: bool
    reason: str | None = None


@dataclass(frozen=True)
class ReviewClose:
    campaign: int


async def close_now(deps: Deps, who: str, cmd: ReviewClose) -> Reply:
    ref = rv_id(cmd.campaign)
    async with deps.store.read() as raw:
        campaign = await repo_of(raw).get_campaign(cmd.campaign)
    if campaign is None or campaign.state != OPEN:
        state = "not found" if campaign is None else campaign.state
        return Reply(text=f"{ref} is {state}: there is nothing to close.", ok=False, kind="refusal", rule="closed")
    line = await close_campaign(deps, cmd.campaign, deps.now(), actor=who, say_waiting=True)
    return Reply(text=line or f"{ref} was closed meanwhile.", data={"review_id": ref})


async def asked_in_chain(deps: Deps, campaign: CampaignRecord) -> set[str]:
    """Whom the campaign's sign-off steps asked, as its ``review.signoff_requested`` events name them (for a
    campaign that asked before the asked people were kept on it; read once, on a rare path)."""
    asked: set[str] = set()
    async for event in deps.store.audit_events():  # type: ignore[attr-defined]
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == "review.signoff_requested" and data.get("review_id") == campaign.ref:
            asked |= {str(p).lower() for p in data.get("approvers") or () if isinstance(p, str)}
    return asked


async def sign(deps: Deps, who: str, cmd: ReviewSignoff) -> Reply:
    ref = rv_id(cmd.campaign)
    word = "approve" if cmd.approve else "deny"
    now = deps.now()
    reason = (cmd.reason or "").strip() or None
    notices = []
    async with deps.store.read() as raw:
        found = await repo_of(raw).get_campaign(cmd.campaign)
    lost = await unreadable(deps, found) if found is not None and found.state == SIGNOFF else None
    if lost is not None:  # its chain is not known any more: nobody can sign it, nothing is removed
        async with deps.store.write() as raw:
            repo = repo_of(raw)
            campaign = await repo.get_campaign(cmd.campaign)
            concerned = (NOBODY if campaign is None else await concerned_in(
                repo, campaign, [i for i in await repo.items(cmd.campaign) if i.state == OPEN],
                closer=await repo.closed_by(ref)))
            asked = {p for people in ((campaign.signoff_asked if campaign else None) or {}).values() for p in people}
            if campaign is not None and campaign.signoff_asked is None:  # asked before the asked were kept:
                asked = await asked_in_chain(deps, campaign)  # whom review.signoff_requested named
            if who in concerned or not (deps.is_security(who) or who in asked):  # an approver's answer, or none
                return await refuse_in(repo, who, now, f"{word} {ref}", "not an approver of the open sign-off step",
                                       ref, f"You are not asked to sign off {ref}.", "not-approver")
            if campaign is not None and campaign.state == SIGNOFF:
                notices = await fail_signoff(await pinned(deps, campaign), repo, campaign, lost, SYSTEM, now,
                                             deps.policy.security_members())
                await repo.queue_notices(notices, now)  # written with the close (handlers/outbox.py)
        if notices:
            await deliver_pending(deps)
        return Reply(text=f"{ref}: the sign-off cannot be judged: {lost}. The campaign is closed with its sign-off "
                     "failed, nothing is removed, and the security team is told.", ok=False, kind="refusal",
                     rule="signoff-failed", data={"review_id": ref})
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(cmd.campaign)
        if campaign is None or campaign.state != SIGNOFF:
            return await refuse_in(repo, who, now, f"{word} {ref}", "no sign-off pending", ref,
                                   f"{ref} does not wait for a sign-off.", "not-pending")
        current, deps = deps, await pinned(deps, campaign)  # the chain of the version the campaign started under
        done = await repo.signoffs(cmd.campaign)
        removals = [i for i in await repo.items(cmd.campaign) if i.state == OPEN]
        closer = await repo.closed_by(ref)
        concerned = await concerned_in(repo, campaign, removals, closer=closer)
        if who.lower() in concerned.members:  # as the person reviewed never decides their own item
            return await refuse_in(repo, who, now, f"{word} {ref}", "own membership on the removal list", ref,
                                   f"Your own access is on the removal list of {ref}: another approver signs it "
                                   "off.", "self-approval")
        if who.lower() in concerned.deciders:  # as a requester never approves their own request
            return await refuse_in(repo, who, now, f"{word} {ref}", "decided a removal on the list", ref,
                                   f"You decided a removal on the list of {ref}: the sign-off is a second pair of "
                                   "eyes, so another approver signs it off.", "own-decision")
        review = deps.policy.review(campaign.review)
        steps = len(review.sign_off) if review else 0
        step = open_signoff_step(deps, campaign, done, concerned)
        pool = signoff_pool(deps, campaign, step, concerned)
        if who not in pool:
            return await refuse_in(repo, who, now, f"{word} {ref}", "not an approver of the open sign-off step",
                                   ref, f"You are not asked to sign off {ref}.", "not-approver")
        if any(s.approver == who for s in done):
            return await refuse_in(repo, who, now, f"{word} {ref}", "already signed", ref,
                                   f"You already signed off {ref}; one person signs once.", "once")
        if not cmd.approve and not reason:
            return Reply(text=f"Say why: `deny {ref} because <reason>`.", ok=False, kind="refusal", rule="reason")
        signature = SignoffRecord(campaign_id=cmd.campaign, step=step, approver=who,
                                  decision="approved" if cmd.approve else "denied", decided_at=now, comment=reason)
        await repo.add_signoff(signature)
        await repo.append("review.signoff", actor=who, ts=now, data={
            "review_id": ref, "step": step + 1, "decision": "approved" if cmd.approve else "denied",
            "comment": reason})
        if not cmd.approve:
            from handlers.reviews.close import deny_removals

            await deny_removals(repo, campaign, who, now)
            return Reply(text=f"{ref}: sign-off denied; nothing is removed and the campaign is closed.",
                         data={"review_id": ref})
        satisfied = sum(s.step == step for s in done) + 1 >= signoff_need(deps, campaign, step, concerned)
        stuck = None if satisfied and step + 1 >= steps else \
            signoff_stuck(deps, campaign, await signoff_chain(deps, campaign, concerned, step), [*done, signature],
                          concerned)
        if stuck is not None:  # the people who have not signed can no longer complete the chain: fail closed
            notices = await fail_signoff(deps, repo, campaign, stuck, who, now, current.policy.security_members())
        elif satisfied and step + 1 < steps:
            approvers = await ask_step(deps, campaign, step + 1, concerned)
            await repo.save_campaign(campaign)
            notices = signoff_notices(campaign, removals, approvers - {who}, step + 1)
            await repo.append("review.signoff_requested", actor=who, ts=now, data={
                "review_id": ref, "removals": len(removals), "step": step + 2, "approvers": sorted(approvers),
                **standing_in_for(deps, campaign, step + 1, concerned)})
        elif satisfied:  # the list is final: it passes the safety brake before anything is removed
            campaign.signoff, campaign.state = "approved", HELD
            await repo.save_campaign(campaign)
        await repo.queue_notices(notices, now)  # written with what decides them (handlers/outbox.py)
    if notices:
        await deliver_pending(current)
    if stuck is not None:
        return Reply(text=f"{ref}: your sign-off is recorded, but the chain can no longer be completed at {stuck} "
                     "(one person signs once): the campaign is closed with its sign-off failed, nothing is removed, "
                     "and the security team is told.", data={"review_id": ref})
    if campaign.signoff == "approved":
        # the brake's pause keeps out a closer whose close decided removals, as the sign-off did
        line = await release(current, cmd.campaign, actor=who, say_waiting=True,
                             closed_by=closer if closer and closer.lower() in concerned.deciders else None)
        return Reply(text=f"{ref}: sign-off approved. {line or ''}".strip(), data={"review_id": ref})
    return Reply(text=f"{ref}: your sign-off is recorded; the next step is asked.", data={"review_id": ref})
