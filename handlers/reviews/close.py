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

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.audit import format_ts
from handlers.chains import ResolvedStep, first_unsatisfiable
from handlers.compliance.brake import may_remove
from handlers.context import SYSTEM, Deps
from handlers.grants import STANDING, end_grant_in, holding_group, plan_membership_removal, run_due_ops
from handlers.groups import GroupIds, stored_groups
from handlers.outbox import deliver_pending
from handlers.policy import Step
from handlers.ports import Notice
from handlers.records import HOLDING_STATES, OpRecord
from handlers.reviews.campaign import pinned, repo_of, unreadable
from handlers.reviews.decide import GONE, left_groups, mark_gone, record_decisions
from handlers.reviews.links import ReviewSignoffAsk
from handlers.reviews.records import (
    CLOSED,
    OPEN,
    SIGNOFF,
    CampaignRecord,
    ItemRecord,
    ReviewDecisionRecord,
    SignoffRecord,
)
from handlers.reviews.repository import ReviewRepository

HELD = "held"  # the removal list is final; it waits for the safety brake (and passes it at once when small)
CLOSING = "closing"
PAUSED_LINE = "paused by the safety brake"
REMOVING = "removing"
KEPT = "kept"
REMOVED = "removed"
FAILED = "failed"
NOT_REMOVED = "not removed"
SIGNOFF_FAILED = "failed"  # the campaign's ``signoff`` when its chain could no longer be completed
SIGNOFF_FAILED_LINE = "sign-off failed, it can no longer be completed"
MAX_FAILURES_RECORDED = 200


@dataclass(frozen=True)
class Concerned:
    """Who may not sign a removal list off.

    ``members``: the people whose own memberships the list ends (as the person reviewed never decides their own
    item; a step naming only them goes to the security team). ``deciders``: the people who made a final
    ``remove`` decision on the list (as a requester never approves their own request, the second pair of eyes
    is someone else's; a step nobody else can sign fails closed).
    """

    members: frozenset[str] = frozenset()
    deciders: frozenset[str] = frozenset()

    @property
    def barred(self) -> frozenset[str]:
        return self.members | self.deciders

    def __contains__(self, who: object) -> bool:
        return isinstance(who, str) and who.lower() in self.barred


NOBODY = Concerned()


async def close_campaign(deps: Deps, campaign_id: int, now: datetime, *, actor: str = SYSTEM,
                         say_waiting: bool = False) -> str | None:
    """Close an open campaign now. Returns a line saying what happened, or None when it was not open
    (or, unless ``say_waiting``, when its removals still wait for the provider: a later sweep closes it)."""
    notices: list[Notice] = []
    left = await _left_undecided(deps, campaign_id)
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != OPEN:
            return None
        current, deps = deps, await pinned(deps, campaign)  # its default and sign-off: the version it started under
        lost = await unreadable(current, campaign)
        await mark_gone(repo, campaign, left, SYSTEM, now)  # no default decides a membership that has gone
        review = deps.policy.review(campaign.review)
        default = review.if_not_reviewed if review else "keep"
        items = await repo.items(campaign_id)
        final = await repo.final_decisions(campaign_id)
        undecided = [i for i in items if i.state == OPEN and i.number not in final]
        if lost is None:  # without the version it started under, no default is known: they stay undecided
            await record_decisions(repo, campaign, undecided, default, SYSTEM, now, "not reviewed before the close",
                                   closed_by=actor if actor != SYSTEM else None)
            final = await repo.final_decisions(campaign_id)
        removals = [i for i in items if i.state == OPEN and i.number in final and final[i.number].decision == "remove"]
        kept = [i.number for i in items if i.state == OPEN and i.number in final and final[i.number].decision == "keep"]
        await repo.set_items_state(campaign_id, kept, KEPT, "kept")  # one statement, however many
        failed = None
        if lost is not None and (removals or undecided):  # nothing is removed by a version it did not start under
            failed = lost
            notices += await fail_signoff(deps, repo, campaign, lost, actor, now, current.policy.security_members())
        elif review is not None and review.sign_off and removals:
            campaign.state, campaign.signoff = SIGNOFF, "pending"
            concerned = await concerned_in(repo, campaign, removals, closer=actor, final=final)
            await ask_step(deps, campaign, 0, concerned)
            failed = signoff_stuck(deps, campaign, await signoff_chain(deps, campaign, concerned), [], concerned)
            if failed is not None:  # nobody could complete it: fail closed now rather than wait for ever
                notices += await fail_signoff(deps, repo, campaign, failed, actor, now,
                                              current.policy.security_members())
            else:
                await repo.save_campaign(campaign)
                approvers = signoff_pool(deps, campaign, 0, concerned)
                await repo.append("review.signoff_requested", actor=actor, ts=now, data={
                    "review_id": campaign.ref, "removals": len(removals), "step": 1, "approvers": sorted(approvers),
                    **standing_in_for(deps, campaign, 0, concerned)})
                notices += signoff_notices(campaign, removals, approvers, 0)
        else:
            campaign.state = HELD
            await repo.save_campaign(campaign)
        await repo.queue_notices(notices, current.now())  # written with the close, sent once it is committed
    await deliver_pending(current)
    if failed is not None:
        return f"{campaign.ref} closed: {SIGNOFF_FAILED_LINE} ({failed}); nothing is removed"
    if notices:
        return f"{campaign.ref} waits for sign-off of {len(removals)} removal(s)"
    return await release(current, campaign_id, actor=actor, say_waiting=say_waiting, closed_by=actor)


async def _left_undecided(deps: Deps, campaign_id: int) -> set[int]:
    """The live check of a closing campaign's undecided items (a default must not decide a membership that
    has gone; a group that cannot be read is taken as the snapshot says)."""
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        final = await repo.final_decisions(campaign_id)
        undecided = [i for i in await repo.items(campaign_id) if i.state == OPEN and i.number not in final]
    left, _ = await left_groups(deps, undecided)
    return left


async def release(deps: Deps, campaign_id: int, *, actor: str = SYSTEM, say_waiting: bool = False,
                  closed_by: str | None = None) -> str | None:
    """A held campaign's removals through the safety brake: paused above the limit, else planned and run.

    A pause bars from ``resume removals`` the people who decided its removals and ``closed_by`` (the person who
    closed the campaign, when this is that close): above ``safety.max_removals`` a second person releases them.

    Returns a line saying what happened, or None when the campaign was not held (another process has it).
    """
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != HELD:
            return None
        removals = [i for i in await repo.items(campaign_id) if i.state == OPEN]
        # the closer, when this is not the close's own call (a sweep after a stop): as the chain names them
        closer = closed_by if closed_by is not None else await repo.closed_by(campaign.ref)
        barred = set((await concerned_in(repo, campaign, removals, closer=closer)).deciders)
    if closed_by and closed_by != SYSTEM:
        barred.add(closed_by.lower())
    left, _ = await left_groups(deps, removals)  # a member who left meanwhile: nothing to remove
    removals = [i for i in removals if i.number not in left]
    sample = [f"{i.user} from {i.provider}/{i.group}" for i in removals]
    if not await may_remove(deps, len(removals), sample, f"review {campaign.ref}", barred=barred):
        return (f"{campaign.ref}: {len(removals)} removal(s) {PAUSED_LINE} "
                "(a security team member who neither closed the campaign nor decided its removals says "
                "`resume removals` to run them)")
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != HELD:
            return None
        removals = [i for i in await repo.items(campaign_id) if i.state == OPEN]
        now = deps.now()
        for item in removals:
            if item.number in left:
                item.state, item.outcome = NOT_REMOVED, f"left {item.group} before the removal: nothing to remove"
                await repo.save_item(item)
                await repo.append("review.removal_skipped", actor=SYSTEM, ts=now, data={
                    "review_id": campaign.ref, "item": item.number, "user": item.user, "provider": item.provider,
                    "group": item.group, "reason": "not a member any more: nothing to remove"})
        await plan_removals(repo, campaign, [i for i in removals if i.number not in left], now)
    return await finish(deps, campaign_id, actor=actor, say_waiting=say_waiting)


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


def signoff_pool(deps: Deps, campaign: CampaignRecord, step: int, concerned: Concerned = NOBODY) -> set[str]:
    """Who may sign step ``step`` off: its approvers, less the ``concerned`` (people whose own membership is on
    the removal list: as the person reviewed never decides their own item, they never sign its removal; and
    people who decided a removal on it: as a requester never approves their own request)."""
    review = deps.policy.review(campaign.review)
    if review is None or step >= len(review.sign_off):
        return set()
    barred = concerned.barred
    asked = (campaign.signoff_asked or {}).get(str(step))
    if asked is not None:  # the step is open: the people it asked when it opened
        return set(asked) - barred
    pool = _step_people(deps, review.sign_off[step])
    if pool and pool <= concerned.members:  # every approver of the step is on the list (`{user: X}` removing X's
        # access): the step goes to the security team, as an item whose reviewer is the person reviewed goes to
        # the fallback, less the people a later step needs (one person signs once: their signature here would
        # leave it unsigned); never to someone who decided a removal on the list
        fallback = set(deps.policy.security_members()) - barred
        later = set().union(*(_step_people(deps, s) for s in review.sign_off[step + 1:]))
        return (fallback - later) or fallback
    return pool - barred


def standing_in_for(deps: Deps, campaign: CampaignRecord, step: int, concerned: Concerned) -> dict[str, Any]:
    """What ``review.signoff_requested`` adds when step ``step`` went to the security team because every
    approver it names is on the removal list: ``instead_of`` (those approvers); nothing otherwise."""
    review = deps.policy.review(campaign.review)
    if review is None or step >= len(review.sign_off):
        return {}
    named = _step_people(deps, review.sign_off[step])
    return {"instead_of": sorted(named)} if named and named <= concerned.members else {}


def _step_people(deps: Deps, s: Step) -> set[str]:
    """The approvers a sign-off step names, as the policy in force for the campaign lists them."""
    if s.kind == "user" and s.user:
        return {s.user.lower()}
    if s.group:
        return set(deps.policy.approver_groups.get(s.group, ()))
    return set(deps.policy.security_members())


def signoff_need(deps: Deps, campaign: CampaignRecord, step: int, concerned: Concerned = NOBODY) -> int:
    review = deps.policy.review(campaign.review)
    s = review.sign_off[step] if review and step < len(review.sign_off) else None
    if s is None:
        return 1
    if s.kind == "all_of":
        return max(1, len(signoff_pool(deps, campaign, step, concerned)))
    return s.n if s.kind == "n_of" else 1


def concerned_by(removals: list[ItemRecord], final: Mapping[int, ReviewDecisionRecord] | None = None,
                 closer: str | None = None) -> Concerned:
    """Who may not sign off the removal list ``removals``: the people whose own memberships it ends, and the
    people whose final decision (``final``: item number → the decision that counts) put an item on it. A person
    who closed the campaign (``closer``) while items were undecided, so that ``if_not_reviewed: remove`` put
    them on the list, decided those removals too."""
    final = final or {}
    deciders = {d.actor.lower() for i in removals if (d := final.get(i.number)) is not None
                and d.decision == "remove" and d.actor != SYSTEM}
    if closer and closer != SYSTEM and any((d := final.get(i.number)) is not None and d.decision == "remove"
                                           and d.actor == SYSTEM for i in removals):
        deciders.add(closer.lower())
    return Concerned(members=frozenset(i.user.lower() for i in removals), deciders=frozenset(deciders))


async def concerned_in(repo: ReviewRepository, campaign: CampaignRecord, removals: list[ItemRecord], *,
                       closer: str | None = None, final: Mapping[int, ReviewDecisionRecord] | None = None) -> Concerned:
    """:func:`concerned_by` with the deciders the audit chain names as well as the rows' (``final``, read from the
    store when not given): the rows may be edited by the serving role, the chain not, so an edited decider is still
    left out of the sign-off and barred from the pause."""
    rows = concerned_by(removals, final if final is not None else await repo.final_decisions(campaign.id or 0),
                        closer=closer)
    chain = concerned_by(removals, await repo.chain_final_decisions(campaign.ref), closer=closer)
    return Concerned(members=rows.members, deciders=rows.deciders | chain.deciders)


def open_signoff_step(deps: Deps, campaign: CampaignRecord, done: list[SignoffRecord],
                      concerned: Concerned = NOBODY) -> int:
    """The sign-off step waiting for signatures (the number of steps once every step has its signatures)."""
    review = deps.policy.review(campaign.review)
    steps = len(review.sign_off) if review else 0
    step = 0
    while step < steps and sum(s.step == step for s in done) >= signoff_need(deps, campaign, step, concerned):
        step += 1
    return step


async def signoff_chain(deps: Deps, campaign: CampaignRecord, concerned: Concerned = NOBODY,
                        open_step: int = 0) -> list[ResolvedStep] | None:
    """The campaign's sign-off chain as it can be signed now: each step's people who are active in the
    directory (someone inactive or missing cannot sign) and how many signatures it needs, the ``concerned``
    left out of both (whose own memberships the list removes). An ``all_of`` step needs everyone it asked
    when it opened (someone who turned inactive since makes it fail closed, as a request's step), and a step
    not open yet everyone active now (whom it will ask); a campaign that opened its sign-off before the asked
    people were kept counts the policy's list for its open step (``open_step``). None when the policy no
    longer has the review or its ``sign_off``."""
    review = deps.policy.review(campaign.review)
    if review is None or not review.sign_off:
        return None
    chain = []
    for index, step in enumerate(review.sign_off):
        people = set()
        for email in signoff_pool(deps, campaign, index, concerned):
            person = await deps.person(email)
            if person is not None and person.active:
                people.add(email.lower())
        need = signoff_need(deps, campaign, index, concerned)
        opened = str(index) in (campaign.signoff_asked or {}) or (campaign.signoff_asked is None and index <= open_step)
        if step.kind == "all_of" and not opened:
            need = max(1, len(people))  # not open yet: it will ask the active ones
        chain.append(ResolvedStep(step=step, index=index, pool=frozenset(people), need=need))
    return chain


async def ask_step(deps: Deps, campaign: CampaignRecord, step: int, concerned: Concerned) -> set[str]:
    """Open sign-off step ``step``: the people it asks are its active approvers now (the concerned left out),
    kept on the campaign (the caller saves it) so that an ``all_of`` step needs exactly them."""
    asked = set()
    for email in signoff_pool(deps, campaign, step, concerned):
        person = await deps.person(email)
        if person is not None and person.active:
            asked.add(email.lower())
    campaign.signoff_asked = {**(campaign.signoff_asked or {}), str(step): sorted(asked)}
    return asked


def signoff_stuck(deps: Deps, campaign: CampaignRecord, chain: list[ResolvedStep] | None,
                  done: list[SignoffRecord], concerned: Concerned = NOBODY) -> str | None:
    """The rule of the first sign-off step that the people who have not signed yet can no longer
    complete (one person signs once), or None while the chain can still be completed. The same rule
    as a request's chain (:func:`handlers.chains.first_unsatisfiable`): a step nobody can complete
    fails closed, it never waits for ever."""
    if chain is None:
        return "the review or its sign_off is no longer in the policy"
    step = open_signoff_step(deps, campaign, done, concerned)
    if step >= len(chain):
        return None
    used = frozenset(s.approver for s in done)
    current = chain[step]
    need = current.need - sum(s.step == step for s in done)
    rest = list(chain[step + 1:])
    if need > 0:
        rest.insert(0, ResolvedStep(step=current.step, index=current.index, pool=current.pool - used, need=need))
    bad = first_unsatisfiable(rest, used) if rest else None
    return bad.rule if bad is not None else None


async def fail_signoff(deps: Deps, repo: ReviewRepository, campaign: CampaignRecord, rule: str, actor: str,
                       now: datetime, told: Collection[str] | None = None) -> list[Notice]:
    """A sign-off nobody can complete any more fails closed: nothing is removed, the campaign closes
    with ``signoff: failed`` and the rule in ``review.closed``, and the security team is told (the
    notices returned)."""
    items = await repo.items(campaign.id or 0)
    final = await repo.final_decisions(campaign.id or 0)
    removals = 0
    for item in items:
        if item.state == OPEN:
            decided = item.number in final
            removals += decided and final[item.number].decision == "remove"
            item.state = NOT_REMOVED
            item.outcome = "sign-off failed: not removed" if decided else "undecided at the close: not removed"
            await repo.save_item(item)
    campaign.state, campaign.signoff, campaign.closed_at = CLOSED, SIGNOFF_FAILED, now
    await repo.save_campaign(campaign)
    counts = await closed_counts(repo, campaign, items)
    await repo.append("review.closed", actor=actor, ts=now, data={"review_id": campaign.ref, **counts, "rule": rule})
    text = (f"{campaign.ref} ({campaign.title}) closed: {SIGNOFF_FAILED_LINE} ({rule}); none of its "
            f"{removals} removal(s) is done. Start a new campaign once the sign-off chain can be completed.")
    # the security team in force (``told``), not the one of the version the campaign started under
    return [Notice(m, "failure", text, None) for m in sorted(deps.policy.security_members() if told is None
                                                              else told)]


async def fail_stuck_signoffs(deps: Deps, *, dry_run: bool = False,
                              failed: list[str] | None = None) -> list[str]:
    """Campaigns waiting for a sign-off that can no longer be completed (an approver left the directory
    or the policy changed since they asked): each fails closed. Returns a line per campaign. A campaign
    whose approvers cannot be looked up now (the provider throttles or is down) keeps waiting, and the
    others are judged: its trouble goes to ``failed``."""
    async with deps.store.read() as raw:
        waiting = await repo_of(raw).campaigns(states=(SIGNOFF,))
    lines: list[str] = []
    for found in waiting:
        try:
            line = await _fail_if_stuck(deps, found, dry_run=dry_run)
        except Exception as exc:  # an approver not looked up is not an approver gone: judged at the next sweep
            if failed is not None:
                failed.append(f"{found.ref}: sign-off not judged: {type(exc).__name__}: {exc}"[:300])
            continue
        if line:
            lines.append(line)
    return lines


async def _stuck_rule(deps: Deps, repo: ReviewRepository, campaign: CampaignRecord) -> tuple[Deps, str | None]:
    concerned = await concerned_in(repo, campaign, [i for i in await repo.items(campaign.id or 0) if i.state == OPEN],
                                   closer=await repo.closed_by(campaign.ref))
    judged = await pinned(deps, campaign)
    lost = await unreadable(deps, campaign)
    if lost is not None:  # its chain is not known any more: no sign-off can be judged, nothing is removed
        return judged, lost
    done = await repo.signoffs(campaign.id or 0)
    step = open_signoff_step(judged, campaign, done, concerned)
    rule = signoff_stuck(judged, campaign, await signoff_chain(judged, campaign, concerned, step), done, concerned)
    return judged, rule


async def _fail_if_stuck(deps: Deps, found: CampaignRecord, *, dry_run: bool) -> str | None:
    async with deps.store.read() as raw:
        _, rule = await _stuck_rule(deps, repo_of(raw), found)
    if rule is None:
        return None
    if dry_run:
        return f"{found.ref} (sign-off can no longer be completed)"
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(found.id or 0)
        if campaign is None or campaign.state != SIGNOFF:
            return None  # signed, denied or failed meanwhile (another process)
        judged, rule = await _stuck_rule(deps, repo, campaign)
        if rule is None:
            return None
        notices = await fail_signoff(judged, repo, campaign, rule, SYSTEM, deps.now(),
                                     deps.policy.security_members())
        await repo.queue_notices(notices, deps.now())
    await deliver_pending(deps)
    return f"{campaign.ref} closed: {SIGNOFF_FAILED_LINE} ({rule}); nothing is removed"


def signoff_notices(campaign: CampaignRecord, removals: list[ItemRecord], approvers: set[str],
                    step: int) -> list[Notice]:
    """The request to sign step ``step`` (0-based) off; the outbox drops it, unsent, once the step is signed or the
    campaign no longer waits for a sign-off (handlers/reviews/stale.py)."""
    listed = "; ".join(f"{i.number}. {i.user} from {i.provider}/{i.group}" for i in removals[:50])
    more = f" (and {len(removals) - 50} more)" if len(removals) > 50 else ""
    text = (f"{campaign.ref} ({campaign.title}) closed with {len(removals)} removal(s) waiting for your sign-off: "
            f"{listed}{more}. Answer `approve {campaign.ref}` or `deny {campaign.ref} because <reason>`.")
    ask = ReviewSignoffAsk(campaign.ref, step)
    return [Notice(a, "approval", text, None, ask) for a in sorted(approvers)]


async def plan_removals(repo: ReviewRepository, campaign: CampaignRecord, removals: list[ItemRecord],
                        now: datetime) -> None:
    """Move the campaign to ``closing`` and record the intent of every removal (one transaction)."""
    for item in removals:
        outcome = None
        kept_by_grant = False  # a grant holds the membership now: the item is not removed, and says why
        if item.request_id:
            record = await repo.get_request(item.request_id)
            if record is not None and record.state in HOLDING_STATES:
                await end_grant_in(repo, record, "revoked", "grant.revoked", now,
                                   {"reason": "review", "review_id": campaign.ref, "item": item.number})
            else:
                later = await holding_group(repo, item.user.lower(), item.provider, item.group)  # any spelling
                if later:  # a grant approved since the snapshot is a later decision of its own chain: it stands
                    kept_by_grant = True
                    outcome = f"the grant had already ended; {later[0].ref} holds the membership now: not removed"
                elif await plan_membership_removal(repo, item.provider, item.group, item.user, "review", now) is None:
                    kept_by_grant = True  # the grant ended, the person is still in the group: removed as standing
                    outcome = "a grant covers the membership now: not removed"
        else:
            op = await plan_membership_removal(repo, item.provider, item.group, item.user, "review", now)
            if op is None:
                kept_by_grant = True
                outcome = "a grant covers the membership now: not removed"
        if kept_by_grant:
            item.state, item.outcome = NOT_REMOVED, outcome
            await repo.append("review.removal_skipped", actor=SYSTEM, ts=now, data={
                "review_id": campaign.ref, "item": item.number, "user": item.user, "provider": item.provider,
                "group": item.group, "reason": outcome})
        else:
            item.state, item.outcome = (REMOVED, outcome) if outcome else (REMOVING, None)
            if outcome:
                item.removed_at = now
        await repo.save_item(item)
    campaign.state = CLOSING
    campaign.closed_at = now
    await repo.save_campaign(campaign)


async def _removal_op(repo: ReviewRepository, item: ItemRecord, since: datetime,
                      groups: GroupIds) -> OpRecord | None:
    """The provider call that removes ``item``'s membership, planned at or after the close. The calls are looked up
    under every spelling of the group (``groups``): a grant's removal names the group as the grant does, which may
    be its name where the item (the policy at the start) has its id, or the reverse."""
    ops = [o for spelled in sorted(groups.spellings(item.provider, item.group))  # indexed: one membership
           for o in await repo.ops_for_member(item.provider, spelled, item.user.lower())]
    mine = sorted((o for o in ops if o.op == "remove" and o.request_id == (item.request_id or STANDING)
                   and o.created_at >= since), key=lambda o: o.id or 0)
    return mine[-1] if mine else None


async def finish(deps: Deps, campaign_id: int, *, actor: str = SYSTEM, say_waiting: bool = False) -> str | None:
    """Run the removals that are due and close a ``closing`` campaign with ``review.closed``.

    While a removal waits for the provider within its retry budget (throttled, or behind another call
    on the membership), the campaign stays ``closing`` and the next sweep tries again. A removal whose
    budget is spent (reported as failing by the provisioning path) is recorded ``failed`` (with its
    correlation id) and reported to the security team with the campaign; the provisioning path retries
    it until it is done, and :func:`record_late_removals` records that as ``review.removal_completed``.
    The campaign's record keeps ``failed``: that is what happened at the close.
    """
    async with deps.store.read() as raw:
        removing = sum(i.state == REMOVING for i in await repo_of(raw).items(campaign_id))
    await run_due_ops(deps, limit=2 * removing + 500)  # every removal of the campaign, not one chunk
    now = deps.now()
    failures: list[dict[str, Any]] = []
    async with deps.store.write() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None or campaign.state != CLOSING:
            return None
        items = await repo.items(campaign_id)
        groups = await stored_groups(repo)
        ops = {i.number: await _removal_op(repo, i, campaign.closed_at or now, groups) for i in items
               if i.state in (REMOVING, FAILED)}
        waiting = [n for n, op in ops.items() if op is not None and op.status == "pending" and not op.failure_reported]
        if waiting:  # throttled, not yet run or run by another process: the next sweep finishes the close
            return f"{campaign.ref} closing: {len(waiting)} removal(s) wait for the provider" if say_waiting else None
        for item in items:
            if item.number not in ops:
                continue
            op = ops[item.number]
            if op is None or op.status in ("done", "skipped"):
                item.state, item.removed_at = REMOVED, op.done_at if op and op.done_at else now
                item.outcome = "removed" if op is None or op.status == "done" else "a grant covers it: not removed"
            else:
                item.state = FAILED
                item.outcome = (f"failed at close (correlation id {op.correlation_id}): {op.last_error}; "
                                "retried until it is done")
                failures.append({"item": item.number, "user": item.user, "provider": item.provider,
                                 "group": item.group, "correlation_id": op.correlation_id,
                                 "error": (op.last_error or "")[:300]})
            await repo.save_item(item)
        campaign.state = CLOSED
        await repo.save_campaign(campaign)
        counts = await closed_counts(repo, campaign, items)
        extra = {"failures": failures[:MAX_FAILURES_RECORDED]} if failures else {}
        await repo.append("review.closed", actor=actor, ts=now, data={"review_id": campaign.ref, **counts, **extra})
        await repo.queue_notices(_failure_notices(deps, campaign, failures) if failures else [], deps.now())
    # the failures' notices, and those the removals wrote with the grants they ended (a pending extension's cards
    # closing): sent now, not at the next delivery
    await deliver_pending(deps)
    return (f"{campaign.ref} closed: kept {counts['kept']}, removed {counts['removed']}, defaulted "
            f"{counts['defaulted']}, gone {counts['gone']}, failed {counts['failed']}")


def _failure_notices(deps: Deps, campaign: CampaignRecord, failures: list[dict[str, Any]]) -> list[Notice]:
    listed = "; ".join(f"item {f['item']} {f['user']} from {f['provider']}/{f['group']} (correlation id "
                       f"{f['correlation_id']}): {f['error']}" for f in failures[:20])
    more = f" (and {len(failures) - 20} more)" if len(failures) > 20 else ""
    text = (f"{campaign.ref} ({campaign.title}) closed, but {len(failures)} removal(s) are not done yet: "
            f"{listed}{more}. They are retried until they are done.")
    return [Notice(m, "failure", text, None) for m in sorted(deps.policy.security_members())]


async def record_late_removals(deps: Deps) -> list[str]:
    """Removals that failed at a close and have been done since: ``review.removal_completed`` once each,
    and the item's ``removed_at``; its state stays ``failed``, as the close recorded it."""
    async with deps.store.read() as raw:
        waiting = await repo_of(raw).failed_items()
    lines: list[str] = []
    for item in waiting:
        now = deps.now()
        async with deps.store.write() as raw:
            repo = repo_of(raw)
            campaign = await repo.get_campaign(item.campaign_id)
            op = await _removal_op(repo, item, campaign.closed_at, await stored_groups(repo)) \
                if campaign and campaign.closed_at else None
            if campaign is None or op is None or op.status not in ("done", "skipped"):
                continue
            done_at = op.done_at or now
            if not await repo.mark_removed_late(item.id or 0, done_at):
                continue  # another process recorded it
            outcome = "removed" if op.status == "done" else "a grant covers it: not removed"
            await repo.append("review.removal_completed", actor=SYSTEM, ts=now, data={
                "review_id": campaign.ref, "item": item.number, "user": item.user, "provider": item.provider,
                "group": item.group, "outcome": outcome, "removed_at": format_ts(done_at),
                "correlation_id": op.correlation_id})
        lines.append(f"{campaign.ref} item {item.number}: {outcome} after the close")
    return lines


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
