"""Closing a campaign (SPEC §7): defaults for undecided items, the sign-off chain on the removal list,
then the removals through the provisioning intents, and ``review.closed``.

Close runs in steps so that two processes never close one campaign twice: the first write
transaction moves the campaign from ``open`` to ``signoff`` (waiting for its approvers) or to
``held`` (its removal list is final); a held list passes the safety brake (SPEC §3.6: above
``safety.max_removals`` it waits for ``resume removals``, ``automation.paused`` {reason: ``review
RV-n``, count, sample}), then one transaction moves it to ``closing`` and records every removal's
intent; the provider calls run as every other operation does; the last transaction moves
``closing`` to ``closed`` and records what happened. A process that stops in between leaves
``held`` or ``closing``, which the next sweep carries on.
"""

from __future__ import annotations

from datetime import datetime

from handlers.compliance.brake import may_remove
from handlers.context import SYSTEM, Deps
from handlers.grants import STANDING, end_grant_in, plan_membership_removal, run_due_ops
from handlers.ports import Notice
from handlers.records import HOLDING_STATES
from handlers.reviews.campaign import repo_of
from handlers.reviews.decide import GONE, record_decision
from handlers.reviews.records import CLOSED, OPEN, SIGNOFF, CampaignRecord, ItemRecord
from handlers.reviews.repository import ReviewRepository

HELD = "held"  # the removal list is final; it waits for the safety brake (and passes it at once when small)
CLOSING = "closing"
PAUSED_LINE = "paused by the safety brake"
REMOVING = "removing"
KEPT = "kept"
REMOVED = "removed"
FAILED = "failed"
NOT_REMOVED = "not removed"


async def close_campaign(deps: Deps, campaign_id: int, now: datetime, *, actor: str = SYSTEM) -> str | None:
    """Close an open campaign now. Returns a line saying what happened, or None when it was not open."""
    notices: list[Notice] = []
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != OPEN:
            return None
        review = deps.policy.review(campaign.review)
        default = review.if_not_reviewed if review else "keep"
        items = await repo.items(campaign_id)
        final = await repo.final_decisions(campaign_id)
        for item in items:
            if item.state == OPEN and item.number not in final:
                await record_decision(repo, campaign, item, default, SYSTEM, now, "not reviewed before the close")
        final = await repo.final_decisions(campaign_id)
        removals = [i for i in items if i.state == OPEN and final[i.number].decision == "remove"]
        for item in items:
            if item.state == OPEN and final[item.number].decision == "keep":
                item.state, item.outcome = KEPT, "kept"
                await repo.save_item(item)
        if review is not None and review.sign_off and removals:
            campaign.state, campaign.signoff = SIGNOFF, "pending"
            await repo.save_campaign(campaign)
            approvers = signoff_pool(deps, campaign, 0)
            await repo.append("review.signoff_requested", actor=actor, ts=now, data={
                "review_id": campaign.ref, "removals": len(removals), "step": 1, "approvers": sorted(approvers)})
            notices += signoff_notices(campaign, removals, approvers)
        else:
            campaign.state = HELD
            await repo.save_campaign(campaign)
    await deps.notifier.notify(notices)
    if notices:
        return f"{campaign.ref} waits for sign-off of {len(removals)} removal(s)"
    return await release(deps, campaign_id, actor=actor)


async def release(deps: Deps, campaign_id: int, *, actor: str = SYSTEM) -> str | None:
    """A held campaign's removals through the safety brake: paused above the limit, else planned and run.

    Returns a line saying what happened, or None when the campaign was not held (another process has it).
    """
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != HELD:
            return None
        removals = [i for i in await repo.items(campaign_id) if i.state == OPEN]
    sample = [f"{i.user} from {i.provider}/{i.group}" for i in removals]
    if not await may_remove(deps, len(removals), sample, f"review {campaign.ref}"):
        return (f"{campaign.ref}: {len(removals)} removal(s) {PAUSED_LINE} "
                "(a security team member says `resume removals` to run them)")
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != HELD:
            return None
        removals = [i for i in await repo.items(campaign_id) if i.state == OPEN]
        await plan_removals(repo, campaign, removals, deps.now())
    return await finish(deps, campaign_id, actor=actor)


async def release_held(deps: Deps) -> tuple[list[str], int]:
    """Held campaigns (paused by the brake, or left by a process that stopped): what ran, and how many wait."""
    async with deps.store.read() as raw:
        held = await repo_of(raw).campaigns(states=(HELD,))
    lines, waiting = [], 0
    for campaign in held:
        line = await release(deps, campaign.id or 0)
        if line and PAUSED_LINE in line:
            waiting += await held_removals(deps, campaign.id or 0)
        elif line:
            lines.append(line)
    return lines, waiting


async def held_removals(deps: Deps, campaign_id: int) -> int:
    """How many removals a held campaign waits to run."""
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != HELD:
            return 0
        return sum(i.state == OPEN for i in await repo.items(campaign_id))


def signoff_pool(deps: Deps, campaign: CampaignRecord, step: int) -> set[str]:
    review = deps.policy.review(campaign.review)
    if review is None or step >= len(review.sign_off):
        return set()
    s = review.sign_off[step]
    if s.kind == "user" and s.user:
        return {s.user.lower()}
    return set(deps.policy.approver_groups.get(s.group or "", ())) if s.group else set(deps.policy.security_members())


def signoff_need(deps: Deps, campaign: CampaignRecord, step: int) -> int:
    review = deps.policy.review(campaign.review)
    s = review.sign_off[step] if review and step < len(review.sign_off) else None
    if s is None:
        return 1
    if s.kind == "all_of":
        return max(1, len(signoff_pool(deps, campaign, step)))
    return s.n if s.kind == "n_of" else 1


def signoff_notices(campaign: CampaignRecord, removals: list[ItemRecord], approvers: set[str]) -> list[Notice]:
    listed = "; ".join(f"{i.number}. {i.user} from {i.provider}/{i.group}" for i in removals[:50])
    more = f" (and {len(removals) - 50} more)" if len(removals) > 50 else ""
    text = (f"{campaign.ref} ({campaign.title}) closed with {len(removals)} removal(s) waiting for your sign-off: "
            f"{listed}{more}. Answer `approve {campaign.ref}` or `deny {campaign.ref} because <reason>`.")
    return [Notice(a, "approval", text, None) for a in sorted(approvers)]


async def plan_removals(repo: ReviewRepository, campaign: CampaignRecord, removals: list[ItemRecord],
                        now: datetime) -> None:
    """Move the campaign to ``closing`` and record the intent of every removal (one transaction)."""
    for item in removals:
        outcome = None
        if item.request_id:
            record = await repo.get_request(item.request_id)
            if record is not None and record.state in HOLDING_STATES:
                await end_grant_in(repo, record, "revoked", "grant.revoked", now,
                                   {"reason": "review", "review_id": campaign.ref, "item": item.number})
            else:
                outcome = "the grant had already ended"
        else:
            op = await plan_membership_removal(repo, item.provider, item.group, item.user, "review", now)
            if op is None:
                outcome = "a grant covers the membership now: not removed"
        item.state, item.outcome = (REMOVED, outcome) if outcome else (REMOVING, None)
        if outcome:
            item.removed_at = now
        await repo.save_item(item)
    campaign.state = CLOSING
    campaign.closed_at = now
    await repo.save_campaign(campaign)


async def finish(deps: Deps, campaign_id: int, *, actor: str = SYSTEM) -> str | None:
    """Run the removals that are due and close a ``closing`` campaign with ``review.closed``."""
    async with deps.store.read() as raw:
        removing = sum(i.state == REMOVING for i in await repo_of(raw).items(campaign_id))
    await run_due_ops(deps, limit=2 * removing + 500)  # every removal of the campaign, not one chunk
    now = deps.now()
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != CLOSING:
            return None
        items = await repo.items(campaign_id)
        for item in items:
            if item.state not in (REMOVING, FAILED):
                continue
            ops = await repo.ops_for(item.request_id or STANDING)
            mine = [o for o in ops if o.op == "remove" and (o.provider, o.group, o.email) ==
                    (item.provider, item.group, item.user.lower()) and o.created_at >= (campaign.closed_at or now)]
            op = mine[-1] if mine else None
            if op is None or op.status in ("done", "skipped"):
                item.state, item.removed_at = REMOVED, op.done_at if op and op.done_at else now
                item.outcome = "removed" if op is None or op.status == "done" else "a grant covers it: not removed"
            else:
                item.state = FAILED
                item.outcome = f"not removed yet (correlation id {op.correlation_id}): {op.last_error}; retried"
            await repo.save_item(item)
        campaign.state = CLOSED
        await repo.save_campaign(campaign)
        counts = await closed_counts(repo, campaign, items)
        await repo.append("review.closed", actor=actor, ts=now, data={"review_id": campaign.ref, **counts})
    return (f"{campaign.ref} closed: kept {counts['kept']}, removed {counts['removed']}, defaulted "
            f"{counts['defaulted']}, gone {counts['gone']}, failed {counts['failed']}")


async def closed_counts(repo: ReviewRepository, campaign: CampaignRecord, items: list[ItemRecord]) -> dict:
    final = await repo.final_decisions(campaign.id or 0)
    live = [i for i in items if i.state != GONE]
    return {
        "kept": sum(final[i.number].decision == "keep" for i in live if i.number in final),
        "removed": sum(final[i.number].decision == "remove" for i in live if i.number in final),
        "defaulted": sum(final[i.number].actor == SYSTEM for i in live if i.number in final),
        "gone": len(items) - len(live),
        "failed": sum(i.state == FAILED for i in items),
        "signoff": campaign.signoff,
    }


async def deny_removals(repo: ReviewRepository, campaign: CampaignRecord, actor: str, now: datetime) -> dict:
    """A denied sign-off: nothing is removed and the campaign closes with ``signoff: denied``."""
    items = await repo.items(campaign.id or 0)
    for item in items:
        if item.state == OPEN:
            item.state, item.outcome = NOT_REMOVED, "sign-off denied: not removed"
            await repo.save_item(item)
    campaign.state, campaign.signoff, campaign.closed_at = CLOSED, "denied", now
    await repo.save_campaign(campaign)
    counts = await closed_counts(repo, campaign, items)
    await repo.append("review.closed", actor=actor, ts=now, data={"review_id": campaign.ref, **counts})
    return counts


async def finish_stalled(deps: Deps) -> list[str]:
    """Campaigns left ``closing`` by a process that stopped: run their removals and close them."""
    async with deps.store.read() as raw:
        stalled = await repo_of(raw).campaigns(states=(CLOSING,))
    return [line for c in stalled if (line := await finish(deps, c.id or 0))]
