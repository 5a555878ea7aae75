"""Reviewers' decisions (SPEC §7): ``keep RV-n <items|all> [because <text>]`` and ``remove RV-n <items|all>
because <text>``, and the live check when a reviewer opens their batch.

Only the reviewer of an item (a member of the group when the reviewer is a group), or the person it
was escalated to, decides it; the person reviewed never decides their own item. Anyone else gets a
refusal recorded as ``command.refused``. Decisions can be changed until the campaign closes; every
one is kept and the last one counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from handlers.context import Deps
from handlers.reviews.campaign import repo_of
from handlers.reviews.records import OPEN, BatchRecord, CampaignRecord, ItemRecord, ReviewDecisionRecord, rv_id
from handlers.reviews.repository import ReviewRepository
from handlers.views import Reply

GONE = "gone"
MAX_ITEMS_IN_WORDS = 10000  # a range wider than any campaign is a typo, not a request


@dataclass(frozen=True)
class ReviewDecide:
    campaign: int
    decision: str  # keep | remove
    items: tuple[int, ...] | None  # None: all of the asker's open items
    reason: str | None = None


def parse_items(words: list[str]) -> tuple[int, ...] | str | None:
    """``all`` → None; ``3``, ``3 5 7``, ``3-9`` (commas allowed) → the numbers; a text → what is wrong."""
    tokens = [t for w in words for t in w.split(",") if t]
    if not tokens:
        return "say which items: a number, a list (`3 5 7`), a range (`3-9`) or `all`"
    if [t.lower() for t in tokens] == ["all"]:
        return None
    numbers: set[int] = set()
    for token in tokens:
        low, _, high = token.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or len(low) > 6 or len(high) > 6:
            return f"{token!r} is not an item number or range"
        first, last = int(low), int(high or low)
        if first < 1 or last < first or last - first >= MAX_ITEMS_IN_WORDS:
            return f"{token!r} is not a valid range"
        numbers.update(range(first, last + 1))
        if len(numbers) > MAX_ITEMS_IN_WORDS:
            return "too many items in one command"
    return tuple(sorted(numbers))


def in_reviewer(deps: Deps, reviewer: str | None, email: str) -> bool:
    """Whether ``email`` is ``reviewer`` (an email) or one of its members (``group:<name>``)."""
    if not reviewer:
        return False
    if reviewer.startswith("group:"):
        return email in deps.policy.approver_groups.get(reviewer.removeprefix("group:"), ())
    return reviewer == email


def may_decide(deps: Deps, item: ItemRecord, email: str, batches: dict[str, BatchRecord]) -> bool:
    """The item's reviewer, or the person it was escalated to; never the person reviewed."""
    if item.user == email:
        return False
    batch = batches.get(item.reviewer)
    return in_reviewer(deps, item.reviewer, email) or (batch is not None and in_reviewer(deps, batch.escalated_to,
                                                                                         email))


async def refuse_in(repo: ReviewRepository, who: str, now: datetime, command: str, reason: str,
                    review_id: str | None, text: str, rule: str) -> Reply:
    data = {"command": command, "reason": reason}
    if review_id:
        data["review_id"] = review_id
    await repo.append("command.refused", actor=who, ts=now, data=data)
    return Reply(text=text, ok=False, kind="refusal", rule=rule)


async def decide(deps: Deps, who: str, cmd: ReviewDecide) -> Reply:
    ref = rv_id(cmd.campaign)
    command = f"{cmd.decision} {ref}"
    now = deps.now()
    reason = (cmd.reason or "").strip() or None
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(cmd.campaign)
        items = await repo.items(cmd.campaign) if campaign else []
        batches = await repo.batches(cmd.campaign) if campaign else {}
        mine = {i.number: i for i in items if may_decide(deps, i, who, batches)}
        own = {i.number for i in items if i.user == who}
        if campaign is None or (not mine and not own):
            return await refuse_in(repo, who, now, command, "not a reviewer of it", ref,
                                   f"You may not decide anything in {ref}.", "not-allowed")
        if campaign.state != OPEN:
            return await refuse_in(repo, who, now, command, f"campaign {campaign.state}", ref,
                                   f"{ref} is {campaign.state}: decisions can no longer be changed.", "closed")
        review = deps.policy.review(campaign.review)
        needed = (review.remove_reason_required if review else True) if cmd.decision == "remove" else \
            (review.keep_reason_required if review else False)
        if needed and not reason:
            return await refuse_in(repo, who, now, command, "no justification", ref,
                                   f"Say why: `{cmd.decision} {ref} <items> because <reason>` (this review "
                                   f"requires a justification to {cmd.decision}).", "reason")
        if cmd.items is None:
            chosen = [i for i in mine.values() if i.state == OPEN]
        else:
            for number in cmd.items:
                if number in own:
                    return await refuse_in(repo, who, now, command, "own item", ref,
                                           f"Item {number} of {ref} is your own access: someone else reviews it.",
                                           "own-item")
                if number not in mine:
                    return await refuse_in(repo, who, now, command, "not the reviewer of the item", ref,
                                           f"Item {number} of {ref} is not yours to decide.", "not-your-item")
                if mine[number].state == GONE:
                    return await refuse_in(repo, who, now, command, "item gone", ref,
                                           f"Item {number} of {ref} is gone: {mine[number].user} is no longer in "
                                           f"{mine[number].group}; there is nothing to decide.", "gone")
            chosen = [mine[n] for n in cmd.items]
        if not chosen:
            return Reply(text=f"Nothing left to decide in {ref}.", ok=False, kind="refusal", rule="nothing")
        for item in chosen:
            await record_decision(repo, campaign, item, cmd.decision, who, now, reason)
    numbers = ", ".join(str(i.number) for i in chosen[:30]) + (", …" if len(chosen) > 30 else "")
    return Reply(text=f"{ref}: {cmd.decision} recorded for {len(chosen)} item(s) ({numbers}). You can change it "
                 "until the campaign closes.", data={"review_id": ref})


async def record_decision(repo: ReviewRepository, campaign: CampaignRecord, item: ItemRecord, decision: str,
                          actor: str, now: datetime, comment: str | None) -> None:
    await repo.add_review_decision(ReviewDecisionRecord(
        campaign_id=campaign.id or 0, item=item.number, decision=decision, actor=actor, decided_at=now,
        comment=comment, recommendation=item.recommendation))
    await repo.append("review.decided", actor=actor, ts=now, data={
        "review_id": campaign.ref, "item": item.number, "decision": decision, "comment": comment,
        "recommendation": item.recommendation, "user": item.user, "profile": item.profile})


async def open_batch(deps: Deps, who: str, campaign: CampaignRecord, channel: str) -> list[str]:
    """The first opening of each of ``who``'s batches (``review.opened``) and the live check.

    Membership is read again at the provider: an open item no longer in its group becomes gone
    (``review.item_gone``); a person no longer active is flagged. Returns lines to show (problems).
    """
    now = deps.now()
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        items = await repo.items(campaign.id or 0)
        batches = await repo.batches(campaign.id or 0)
    mine = [i for i in items if may_decide(deps, i, who, batches)]
    notes: list[str] = []
    gone: list[ItemRecord] = []
    inactive: list[ItemRecord] = []
    if campaign.state == OPEN:
        by_group: dict[tuple[str, str], list[ItemRecord]] = defaultdict(list)
        for item in mine:
            if item.state == OPEN:
                by_group[(item.provider, item.group)].append(item)
        for (provider, group), group_items in sorted(by_group.items()):
            try:
                members = {m.lower() for m in await deps.provider(provider).list_members(group)}
            except Exception as exc:  # the batch still shows; the check says it could not run
                notes.append(f"live check of {provider}/{group} failed ({type(exc).__name__}); shown as of the "
                             "snapshot")
                continue
            gone += [i for i in group_items if i.user.lower() not in members]
        for item in mine:
            if item.state == OPEN and item not in gone and item.active:
                person = await deps.person(item.user)
                if person is None or not person.active:
                    inactive.append(item)
    keys = sorted({i.reviewer for i in mine if in_reviewer(deps, i.reviewer, who)}
                  | {k for k, b in batches.items() if in_reviewer(deps, b.escalated_to, who)})
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        fresh_batches = await repo.batches(campaign.id or 0)
        for key in keys:
            batch = fresh_batches.get(key) or BatchRecord(campaign_id=campaign.id or 0, reviewer=key)
            if batch.opened_at is None and in_reviewer(deps, key, who):
                batch.opened_at, batch.opened_by = now, who
                await repo.save_batch(batch)
                await repo.append("review.opened", actor=who, ts=now, data={
                    "review_id": campaign.ref, "reviewer": who, "batch": key, "channel": channel})
        fresh = {i.number: i for i in await repo.items(campaign.id or 0)}
        for item in gone:
            current = fresh.get(item.number)
            if current is None or current.state != OPEN:
                continue
            current.state, current.outcome = GONE, f"left {item.group} before a decision"
            await repo.save_item(current)
            await repo.append("review.item_gone", actor=who, ts=now, data={
                "review_id": campaign.ref, "item": item.number, "user": item.user, "provider": item.provider,
                "group": item.group})
        for item in inactive:
            current = fresh.get(item.number)
            if current is not None and current.active:
                current.active = False
                await repo.save_item(current)
    notes += [f"item {i.number}: {i.user} is no longer in {i.group} — gone, nothing to decide" for i in gone]
    notes += [f"item {i.number}: {i.user} is no longer active" for i in inactive]
    return notes
