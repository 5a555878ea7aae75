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

from handlers.audit import format_ts
from handlers.context import Deps, fresh_lookups
from handlers.records import HOLDING_STATES
from handlers.reviews.campaign import pinned, repo_of
from handlers.reviews.records import OPEN, BatchRecord, CampaignRecord, ItemRecord, ReviewDecisionRecord, rv_id
from handlers.reviews.repository import ReviewRepository
from handlers.text import is_digits
from handlers.views import Reply

GONE = "gone"
DECISIONS = ("keep", "remove")
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
        if not is_digits(low) or (high and not is_digits(high)) or len(low) > 6 or len(high) > 6:
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


def reviewer_keys(deps: Deps, email: str, batches: dict[str, BatchRecord]) -> set[str]:
    """The reviewers of every item ``email`` may decide (:func:`may_decide`): them, the policy's groups they are
    in, and the reviewers whose batch was escalated to them. A campaign's items are read for these reviewers
    alone (``ReviewRepository.items(reviewers=...)``): a manager's share, not the whole campaign."""
    keys = {email}
    keys |= {f"group:{name}" for name, members in deps.policy.approver_groups.items() if email in members}
    keys |= {key for key, batch in batches.items() if in_reviewer(deps, batch.escalated_to, email)}
    return keys


def may_decide(deps: Deps, item: ItemRecord, email: str, batches: dict[str, BatchRecord]) -> bool:
    """The item's reviewer, or the person it was escalated to (the items undecided at the escalation, not
    those the reviewer had decided); never the person reviewed."""
    if item.user == email:
        return False
    if in_reviewer(deps, item.reviewer, email):
        return True
    batch = batches.get(item.reviewer)
    return batch is not None and in_reviewer(deps, batch.escalated_to, email) \
        and (batch.escalated_items is None or item.number in batch.escalated_items)


async def refuse_in(repo: ReviewRepository, who: str, now: datetime, command: str, reason: str,
                    review_id: str | None, text: str, rule: str) -> Reply:
    data = {"command": command, "reason": reason}
    if review_id:
        data["review_id"] = review_id
    await repo.append("command.refused", actor=who, ts=now, data=data)
    return Reply(text=text, ok=False, kind="refusal", rule=rule)


@dataclass(frozen=True)
class ReviewChoices:
    """Several items decided at once, each its own way (a card's keep/remove per item): every item is
    checked before anything is recorded, and all are recorded in one transaction."""

    campaign: int
    choices: tuple[tuple[int, str], ...]  # (item, keep | remove)
    reason: str | None = None
    shown: tuple[tuple[int, str], ...] | None = None  # (item, keep | remove | "" undecided): what the form showed,
    # when it says so; a choice left as shown is not a decision, whatever happened since
    bulk: bool = False  # "keep/remove all" of a form: an item decided otherwise since it was shown is left alone
    form: bool = False  # from a card or modal, which sends back every choice it shows: it must say what it showed


def _command(cmd: ReviewDecide | ReviewChoices) -> tuple[str, list[str]]:
    """The words a refusal records (``keep RV-n``, ``keep/remove RV-n``) and the decisions asked for."""
    kinds = [cmd.decision] if isinstance(cmd, ReviewDecide) else sorted({d for _, d in cmd.choices})
    return f"{'/'.join(kinds) or 'decide'} {rv_id(cmd.campaign)}", kinds


def _unchanged(last: ReviewDecisionRecord | None, decision: str, who: str, reason: str | None) -> bool:
    """The same person's decision again, word for word (a double click): nothing new to record."""
    return last is not None and (last.decision, last.actor, last.comment or None) == (decision, who, reason)


async def decide(deps: Deps, who: str, cmd: ReviewDecide | ReviewChoices) -> Reply:
    """The one path of every reviewer's decision, from the console, Slack and Teams alike."""
    ref = rv_id(cmd.campaign)
    command, _ = _command(cmd)
    now = deps.now()
    reason = (cmd.reason or "").strip() or None
    left = await _left_asked(deps, who, cmd)
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(cmd.campaign)
        deps = await pinned(deps, campaign) if campaign else deps  # its reviewers and rules: as it started
        batches = await repo.batches(cmd.campaign) if campaign else {}
        # the items they may decide, and those about them (their own access, which someone else reviews)
        items = await repo.items(cmd.campaign, reviewers=reviewer_keys(deps, who, batches), user=who) \
            if campaign else []
        mine = {i.number: i for i in items if may_decide(deps, i, who, batches)}
        if campaign is not None and campaign.decidable_at(now) and left & mine.keys():
            for item in await mark_gone(repo, campaign, left & mine.keys(), who, now):  # nobody certifies them
                mine[item.number] = item
        left_decided = {n for n in left & mine.keys() if mine[n].state == OPEN}  # left after their decision
        own = {i.number for i in items if i.user == who}
        if campaign is None or (not mine and not own):
            return await refuse_in(repo, who, now, command, "not a reviewer of it", ref,
                                   f"You may not decide anything in {ref}.", "not-allowed")
        if campaign.state != OPEN:
            return await refuse_in(repo, who, now, command, f"campaign {campaign.state}", ref,
                                   f"{ref} is {campaign.state}: decisions can no longer be changed.", "closed")
        if not campaign.decidable_at(now):  # closed at its due time, whether or not a sweep has recorded it yet
            due = format_ts(campaign.due_at)[:16].replace("T", " ")
            return await refuse_in(repo, who, now, command, "campaign past its due time", ref,
                                   f"{ref} is past its due time ({due} UTC): decisions can no longer be changed; "
                                   "undecided items get the review's default when it closes.", "closed")
        if isinstance(cmd, ReviewChoices) and cmd.form and cmd.shown is None and mine:  # a form of before forms
            # said what they showed (or forged): a choice it sends back as shown would overturn a decision made
            # since; nothing is recorded, and the reviewer looks again
            return Reply(text=f"Not saved: this form of {ref} is out of date. Look at the batch as it is now and "
                         "choose again.", ok=False, kind="refusal", rule="out-of-date")
        if isinstance(cmd, ReviewDecide) and cmd.items is None:
            chosen = [(i, cmd.decision) for i in mine.values() if i.state == OPEN and i.number not in left_decided]
        else:
            asked = [(n, cmd.decision) for n in cmd.items or ()] if isinstance(cmd, ReviewDecide) \
                else [(n, d) for n, d in cmd.choices  # a page's choice on an item that has gone meanwhile: skipped
                      if n not in left_decided and not (n in mine and mine[n].state == GONE)]
            for number, _ in asked:
                if number in own:
                    return await refuse_in(repo, who, now, command, "own item", ref,
                                           f"Item {number} of {ref} is your own access: someone else reviews it.",
                                           "own-item")
                if number not in mine:
                    return await refuse_in(repo, who, now, command, "not the reviewer of the item", ref,
                                           f"Item {number} of {ref} is not yours to decide.", "not-your-item")
                if mine[number].state == GONE or number in left_decided:
                    return await refuse_in(repo, who, now, command, "item gone", ref,
                                           f"Item {number} of {ref} is gone: {mine[number].user} is no longer in "
                                           f"{mine[number].group}; there is nothing to decide.", "gone")
            chosen = [(mine[n], d) for n, d in asked]
        if not chosen and not mine:  # the person reviewed, naming no item (`all`, a card's bulk): as anyone else
            return await refuse_in(repo, who, now, command, "not a reviewer of it", ref,
                                   f"You may not decide anything in {ref}.", "not-allowed")
        if not chosen:
            return Reply(text=f"Nothing left to decide in {ref}.", ok=False, kind="refusal", rule="nothing")
        final = await repo.final_decisions(cmd.campaign, [i.number for i, _ in chosen])
        moved: list[int] = []  # decided otherwise since the form showed them: left as they are now
        if isinstance(cmd, ReviewChoices):  # a page sends back every choice it shows, pre-selected ones too:
            # only a changed choice is a decision (an unchanged one would put this reviewer's name, and this
            # comment, on an item someone else decided)
            chosen, moved = _against_shown(cmd, chosen, final)
            fresh = [(i, d) for i, d in chosen if i.number not in final or final[i.number].decision != d]
        else:
            fresh = [(i, d) for i, d in chosen if not _unchanged(final.get(i.number), d, who, reason)]
        review = deps.policy.review(campaign.review)
        for decision in [d for d in DECISIONS if any(d == f for _, f in fresh)]:  # what this records, not what an
            # unchanged pre-selected choice says again
            needed = (review.remove_reason_required if review else True) if decision == "remove" else \
                (review.keep_reason_required if review else False)
            if needed and not reason:
                return await refuse_in(repo, who, now, command, "no justification", ref,
                                       f"Say why: `{decision} {ref} <items> because <reason>` (this review "
                                       f"requires a justification to {decision}).", "reason")
        for decision in DECISIONS:
            await record_decisions(repo, campaign, [i for i, d in fresh if d == decision], decision, who, now, reason)
    parts = []
    for decision in DECISIONS:
        done = [i.number for i, d in fresh if d == decision]
        if done:
            numbers = ", ".join(map(str, done[:30])) + (", …" if len(done) > 30 else "")
            parts.append(f"{decision} recorded for {len(done)} item(s) ({numbers})")
    recorded = {i.number for i, _ in fresh}
    same = [i.number for i, _ in chosen if i.number not in recorded]
    by_others = [(n, final[n].actor) for n in same if final[n].actor != who]
    if len(same) > len(by_others):
        parts.append(f"{len(same) - len(by_others)} item(s) unchanged (already decided so by you)")
    if by_others:
        parts.append(f"{len(by_others)} item(s) already decided so by someone else, left as they are ("
                     + ", ".join(f"{n} by {actor}" for n, actor in by_others[:10])
                     + (", …" if len(by_others) > 10 else "") + "; your comment is not recorded on them)")
    if moved:
        parts.append(f"{len(moved)} item(s) decided otherwise since this page was shown, left as they are now ("
                     + ", ".join(f"{n}: {final[n].decision} by {final[n].actor}" for n in moved[:10])
                     + (", …" if len(moved) > 10 else "") + "); look again to change them")
    gone = sorted(n for n in left if n in mine)
    if gone:
        parts.append(f"{len(gone)} item(s) gone, nothing to decide: no longer in their group ("
                     + ", ".join(map(str, gone[:30])) + (", …" if len(gone) > 30 else "") + ")")
    if not parts:
        parts.append("nothing recorded: every choice is as the page showed it")
    return Reply(text=f"{ref}: " + "; ".join(parts) + ". You can change it until the campaign closes.",
                 data={"review_id": ref})


def _against_shown(cmd: ReviewChoices, chosen: list[tuple[ItemRecord, str]],
                   final: dict[int, ReviewDecisionRecord]) -> tuple[list[tuple[ItemRecord, str]], list[int]]:
    """The choices of a form that are the submitter's, judged against what the form showed: one left as shown
    is not a decision (a later decision by someone else stands, and it needs no justification); a bulk leaves
    alone an item decided otherwise since. Returns those choices, and the items decided otherwise since the
    form showed them that the form would have changed."""
    if cmd.shown is None:  # a form that does not say what it showed: judged against the decisions now
        return chosen, []
    shown = dict(cmd.shown)
    kept: list[tuple[ItemRecord, str]] = []
    moved: list[int] = []
    for item, decision in chosen:
        was = shown.get(item.number, "")
        now = final[item.number].decision if item.number in final else ""  # a decision is never taken back: an
        changed = now != was and item.number in final  # undecided item was not decided otherwise since
        if decision == was and not cmd.bulk:  # untouched
            if changed:
                moved.append(item.number)
            continue
        if cmd.bulk and changed:
            if now != decision:
                moved.append(item.number)
            continue
        kept.append((item, decision))
    return kept, moved


async def _left_asked(deps: Deps, who: str, cmd: ReviewDecide | ReviewChoices) -> set[int]:
    """The live check of the open items a decision names (all of the asker's for ``all``), before it is
    recorded: nobody certifies a membership that has gone. A group that cannot be read is taken as the
    snapshot says (the close checks again)."""
    async with deps.store.read() as raw:
        campaign = await repo_of(raw).get_campaign(cmd.campaign)
    if campaign is None or not campaign.decidable_at(deps.now()):
        return set()
    deps = await pinned(deps, campaign)  # (it may read the policy version the campaign started with)
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        batches = await repo.batches(cmd.campaign)
        items = await repo.items(cmd.campaign, reviewers=reviewer_keys(deps, who, batches))
    if isinstance(cmd, ReviewDecide):
        named = None if cmd.items is None else set(cmd.items)
    else:
        named = {n for n, _ in cmd.choices}
    asked = [i for i in items if i.state == OPEN and (named is None or i.number in named)
             and may_decide(deps, i, who, batches)]
    left, _ = await left_groups(deps, asked)
    return left


async def record_decisions(repo: ReviewRepository, campaign: CampaignRecord, items: list[ItemRecord], decision: str,
                           actor: str, now: datetime, comment: str | None, *, closed_by: str | None = None) -> None:
    """One decision on each of ``items``: the rows in one statement, then a ``review.decided`` each. A default
    decided by a close names the person who closed (``closed_by``) in its event: the close's removals are theirs
    (:func:`handlers.reviews.close.concerned_by`), and the chain keeps that when the process stops before the
    brake has paused them."""
    if not items:
        return
    await repo.add_review_decisions([ReviewDecisionRecord(
        campaign_id=campaign.id or 0, item=item.number, decision=decision, actor=actor, decided_at=now,
        comment=comment, recommendation=item.recommendation) for item in items])
    for item in items:
        await _decided(repo, campaign, item, decision, actor, now, comment, closed_by=closed_by)


async def _decided(repo: ReviewRepository, campaign: CampaignRecord, item: ItemRecord, decision: str, actor: str,
                   now: datetime, comment: str | None, *, closed_by: str | None = None) -> None:
    await repo.append("review.decided", actor=actor, ts=now, data={
        "review_id": campaign.ref, "item": item.number, "decision": decision, "comment": comment,
        "recommendation": item.recommendation, "user": item.user, "profile": item.profile,
        "department": item.department, **({"closed_by": closed_by} if closed_by else {})})


def live_checked(item: ItemRecord, holding: set[int], principals: bool) -> bool:
    """Whether the live check judges ``item``: a membership its provider's member list names. An item held
    through a grant that still holds (``holding``: those requests) is certified as the grant (a removal ends
    it, in or out of the group at that moment: the sweep would put a holder back); once the grant has ended
    it is judged as any membership. A service principal is judged only where the provider lists principals
    too (``principals``); elsewhere its absence from a list of users says nothing."""
    named = "@" in item.user or principals
    return named and (item.request_id is None or item.request_id not in holding)


async def _members(provider: object, group: str) -> tuple[set[str], bool]:
    """The group's members as the review names them, and whether service principals are among them.

    Always the group's own listing, as the snapshot was read: asking the provider about each person instead
    (``member_of``) finds the person by another rule (Entra: a UPN before a mail; Okta: a login before an email),
    and an address that names one account in the listing may name another there (a guest whose mail is a member's
    UPN): that item would be taken for gone, and its removal never run."""
    listing = getattr(provider, "review_members", None)  # users and service principals (Entra)
    if listing is not None:
        return {m.lower() for m in await listing(group)}, True
    return {m.lower() for m in await provider.list_members(group)}, False  # type: ignore[attr-defined]


async def holding_grants(deps: Deps, items: list[ItemRecord]) -> set[int]:
    """The requests behind ``items`` whose grants still hold (or are being provisioned)."""
    ids = sorted({i.request_id for i in items if i.request_id is not None})
    if not ids:
        return set()
    async with deps.store.read() as raw:
        records = [await raw.get_request(n) for n in ids]
    return {r.id for r in records if r is not None and r.id is not None and r.state in HOLDING_STATES}


async def left_groups(deps: Deps, items: list[ItemRecord], *,
                      unread: str = "shown as of the snapshot") -> tuple[set[int], list[str]]:
    """The live check: the numbers of ``items`` whose person is no longer in the item's group at the provider,
    and a line for each group that could not be read (its items are then taken as the snapshot says: ``unread``
    says what that means for the caller)."""
    by_group: dict[tuple[str, str], list[ItemRecord]] = defaultdict(list)
    holding = await holding_grants(deps, items)
    for item in items:
        if live_checked(item, holding, principals=True):  # principals filtered below, by what the provider lists
            by_group[(item.provider, item.group)].append(item)
    left: set[int] = set()
    notes: list[str] = []
    for (provider, group), group_items in sorted(by_group.items()):
        try:
            members, principals = await _group_members(deps, provider, group)
        except Exception as exc:  # the caller goes on; the check says it could not run
            notes.append(f"live check of {provider}/{group} failed ({type(exc).__name__}); {unread}")
            continue
        left |= {i.number for i in group_items
                 if live_checked(i, holding, principals) and i.user.lower() not in members}
    return left, notes


async def _group_members(deps: Deps, provider: str, group: str) -> tuple[set[str], bool]:
    """The members of ``group`` as the live check names them (:func:`_members`)."""
    source = deps.provider(provider)
    # one listing for every live check of the group asking at the same time (handlers/shared_reads.py: each
    # answered by a listing begun after it asked): a campaign's reviewers opening their batches together list a
    # group of thousands a few times, not once each

    async def listing() -> tuple[set[str], bool]:
        # it may run for callers who came after the one whose context it runs in: it rests on nothing that
        # caller's scope looked up before (the embedded directory's copy of its file)
        with fresh_lookups():
            return await _members(source, group)

    return await deps.shared_reads.get(("review-members", provider, group), listing)


async def mark_gone(repo: ReviewRepository, campaign: CampaignRecord, numbers: set[int], actor: str,
                    now: datetime) -> list[ItemRecord]:
    """Items found out of their group before any decision: gone (``review.item_gone``), never decided.

    An item already decided keeps its decision (it left after one: a removal then finds nothing to remove)."""
    if not numbers:
        return []
    final = await repo.final_decisions(campaign.id or 0)
    gone = []
    for item in await repo.items(campaign.id or 0):
        if item.number not in numbers or item.state != OPEN or item.number in final:
            continue
        item.state, item.outcome = GONE, f"left {item.group} before a decision"
        await repo.save_item(item)
        await repo.append("review.item_gone", actor=actor, ts=now, data={
            "review_id": campaign.ref, "item": item.number, "user": item.user, "provider": item.provider,
            "group": item.group})
        gone.append(item)
    return gone


def _opening(deps: Deps, who: str, key: str, batch: BatchRecord) -> str | None:
    """What ``who`` looking at batch ``key`` now opens for the first time (``review.opened``): the reviewer's own
    batch ("own"), the items handed over to the manager it was escalated to ("escalated"), or nothing (None)."""
    if batch.opened_at is None and in_reviewer(deps, key, who):
        return "own"
    if batch.escalation_opened_at is None and batch.escalated_to is not None \
            and in_reviewer(deps, batch.escalated_to, who) and not in_reviewer(deps, key, who):
        return "escalated"
    return None


def _first_opening(deps: Deps, who: str, keys: list[str], batches: dict[str, BatchRecord], campaign_id: int) -> bool:
    """Whether looking at ``keys`` now records a first opening by ``who`` (:func:`_opening`, as :func:`open_batch`
    judges each batch under the write lock)."""
    return any(_opening(deps, who, key, batches.get(key) or BatchRecord(campaign_id=campaign_id, reviewer=key))
               for key in keys)


async def open_batch(deps: Deps, who: str, campaign: CampaignRecord, channel: str, batches: dict[str, BatchRecord],
                     items: list[ItemRecord]) -> list[str]:
    """The first opening of each of ``who``'s batches (``review.opened``) and the live check, ``deps`` judging
    as the campaign does (:func:`pinned`), with its batches and items as just read (``items``: at least ``who``'s
    share, :func:`look`); what is recorded is judged again under the write lock.

    Membership is read again at the provider: an open item no longer in its group becomes gone
    (``review.item_gone``); a person no longer active is flagged. Returns lines to show (problems).
    """
    now = deps.now()
    mine = [i for i in items if may_decide(deps, i, who, batches)]
    notes: list[str] = []
    inactive: list[ItemRecord] = []
    left: set[int] = set()
    if campaign.decidable_at(now):  # past its due time the close checks, as the system
        left, notes = await left_groups(deps, [i for i in mine if i.state == OPEN])
        for item in mine:
            if item.state == OPEN and item.number not in left and item.active:
                person = await deps.person(item.user)
                if person is None or not person.active:
                    inactive.append(item)
    keys = sorted({i.reviewer for i in mine if in_reviewer(deps, i.reviewer, who)}
                  | {k for k, b in batches.items() if in_reviewer(deps, b.escalated_to, who)})
    if not left and not inactive and not _first_opening(deps, who, keys, batches, campaign.id or 0):
        # nothing to record: every batch already opened (an opening is never undone), no item found gone or
        # inactive. A card refreshed again takes no write lock (300 reviewers refreshing at 08:00 would queue
        # behind it one by one).
        return notes
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        fresh_batches = await repo.batches(campaign.id or 0)
        for key in keys:
            batch = fresh_batches.get(key) or BatchRecord(campaign_id=campaign.id or 0, reviewer=key)
            opening = _opening(deps, who, key, batch)
            if opening == "own":
                batch.opened_at, batch.opened_by = now, who
                await repo.save_batch(batch)
                await repo.append("review.opened", actor=who, ts=now, data={
                    "review_id": campaign.ref, "reviewer": who, "batch": key, "channel": channel})
            elif opening == "escalated":
                # the manager the batch was escalated to looks at the items handed over: recorded as the
                # reviewer's own first opening is, once
                batch.escalation_opened_at = now
                await repo.save_batch(batch)
                await repo.append("review.opened", actor=who, ts=now, data={
                    "review_id": campaign.ref, "reviewer": who, "batch": key, "channel": channel,
                    "escalated": True})
        gone = await mark_gone(repo, campaign, left, who, now)
        fresh = {i.number: i for i in await repo.items(campaign.id or 0, reviewers={i.reviewer for i in inactive})}
        for item in inactive:
            current = fresh.get(item.number)
            if current is not None and current.active:
                current.active = False
                await repo.save_item(current)
    notes += [f"item {i.number}: {i.user} is no longer in {i.group} — gone, nothing to decide" for i in gone]
    notes += [f"item {i.number}: {i.user} is no longer active" for i in inactive]
    return notes


@dataclass(frozen=True)
class Look:
    """What a reviewer looking at a campaign sees: its items for them, the decisions that count and the lines of
    the live check; ``deps`` as the campaign judges (its policy version)."""

    campaign: CampaignRecord
    deps: Deps
    items: list[ItemRecord]
    final: dict[int, ReviewDecisionRecord]
    notes: list[str]


async def look(deps: Deps, who: str, campaign_id: int, channel: str, *, everything: bool = False,
               opening: bool = True) -> Look | None:
    """``who``'s items of a campaign after the live check (:func:`open_batch`: ``review.opened`` the first time),
    every item of it for ``everything`` (the security team); None when there is no such campaign, or ``who``
    decides nothing in it and may not see everything. ``opening=False``: the items as recorded, for a message sent
    to the reviewer before they look (no live check, nothing recorded)."""
    async with deps.store.read() as raw:
        campaign = await repo_of(raw).get_campaign(campaign_id)
    if campaign is None:
        return None
    deps = await pinned(deps, campaign)  # (it may read the policy version the campaign started with)
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        batches = await repo.batches(campaign_id)
        # a reviewer's share of the campaign (the whole of it for the security team)
        items = await repo.items(campaign_id, reviewers=None if everything else reviewer_keys(deps, who, batches))
    if not everything and not any(may_decide(deps, i, who, batches) for i in items):
        return None
    notes = await open_batch(deps, who, campaign, channel, batches, items) if opening else []
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        if opening:  # as the live check left them (gone, inactive), and an escalation may have come meanwhile
            batches = await repo.batches(campaign_id)
            items = await repo.items(campaign_id, reviewers=None if everything else reviewer_keys(deps, who, batches))
        shown = [i for i in items if everything or may_decide(deps, i, who, batches)]
        final = await repo.final_decisions(campaign_id, None if everything else [i.number for i in shown])
    return Look(campaign, deps, shown, final, notes)
