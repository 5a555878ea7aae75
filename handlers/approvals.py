"""Decisions on requests and the end of grants (SPEC §3.1, §3.2).

Each function runs one write transaction: under the store's write lock it re-reads the request,
decides on what it finds, and appends the audit events of that decision. Two clicks arriving
together are applied one after the other; the second finds the step closed and is answered,
not applied.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from handlers.chains import (
    ResolvedStep,
    first_unsatisfiable,
    open_step_unsatisfiable,
    pin_step,
    resolve_chain,
    step_need,
)
from handlers.compliance.accept_links import accept_approved, accept_ended, filed_by, settle_request
from handlers.context import SYSTEM, Deps, fresh_lookups
from handlers.durations import DurationError, format_duration, parse_duration
from handlers.eligibility import AttributeNotSupplied, ineligibility, memberships_of
from handlers.grants import Ending, end_membership, plan_add, run_op
from handlers.policy import Policy
from handlers.ports import Notice, Person
from handlers.present import chain_of, request_view, resolved_chain
from handlers.records import (
    ACTIVE,
    APPROVED,
    CANCELLED,
    DENIED,
    FAILED,
    HOLDING_STATES,
    PENDING,
    DecisionRecord,
    RequestRecord,
    req_id,
)
from handlers.repository import Repository
from handlers.views import Reply, RequestView


def not_found(n: int) -> Reply:
    """Also the reply to whoever may not see the request (SPEC §4.1): the two must not differ."""
    return Reply(text=f"There is no request {req_id(n)} that you can see.", ok=False, kind="refusal",
                 rule="unknown-request")


def in_chain(record: RequestRecord) -> bool:
    """Waiting on its chain: a pending request, or an active grant's pending extension."""
    return record.state == PENDING or (record.state == ACTIVE and record.extension_pending)


async def _chain(deps: Deps, record: RequestRecord, *, held: bool = True) -> list[ResolvedStep] | None:
    """``held=False``: an open manager step as the directory says, even while the safety brake holds its re-route."""
    policy = await deps.policy_for(record)
    return await resolved_chain(deps, policy, policy.profile(record.profile), record,
                                await deps.person(record.requester), held=held) or None


async def asked_at_open(repo: Repository, record: RequestRecord) -> frozenset[str] | None:
    """The people the open step asked when it opened (``approval.requested``), or last asked since
    (``approval.rerouted``: the requester's manager changed while a ``manager`` step waited); None if unrecorded."""
    return (await last_asked(repo, record))[0]


async def last_asked(repo: Repository, record: RequestRecord) -> tuple[frozenset[str] | None, datetime | None]:
    """:func:`asked_at_open`, and when they were asked: the instant the event was judged at (``data.as_of``, a
    sweep run ``--as-of``), else when it was recorded; (None, None) if unrecorded.

    Read from the request itself when it names its open step (``asked_step``, written with the event by
    :func:`note_asked`); from its events otherwise (a request asked before the request kept it)."""
    if record.asked_now is not None:
        return record.asked_now, record.asked_at
    for event in reversed(await repo.events_for(record.id or 0)):
        if event.type in ASKED_EVENTS and event.data.get("step") == record.step + 1:
            when = str(event.data.get("as_of") or event.ts)
            try:
                at: datetime | None = datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError:
                at = None
            return frozenset(str(a).lower() for a in event.data.get("approvers") or ()), at
    return None, None


ASKED_EVENTS = ("approval.requested", "approval.rerouted")  # who the open step asks: the last of these


def note_asked(record: RequestRecord, approvers: list[str], at: datetime) -> None:
    """The open step of ``record`` asks ``approvers`` from ``at`` on: kept on the request (saved with it, in the
    transaction that records the ``approval.requested`` / ``approval.rerouted`` naming them)."""
    record.asked_step = record.round * 100 + record.step
    record.asked = tuple(sorted(a.lower() for a in approvers))
    record.asked_at = at


async def card_holders(repo: Repository, record: RequestRecord, chain: list[ResolvedStep]) -> list[str]:
    """Who holds a card of ``record``'s open step, to be told when it closes without their decision (a
    withdrawal, a grant ended, an extension failed): the people the step asked (a manager step asked before the
    requester's manager changed keeps asking the one it asked, until a sweep re-routes it), or, with no record
    of whom it asked, its pool as the directory says now."""
    asked = await asked_at_open(repo, record)
    if asked is not None:
        return sorted(asked)
    return sorted(chain[record.step].pool) if record.step < len(chain) else []


async def asked_this_round(repo: Repository, record: RequestRecord) -> frozenset[str]:
    """Everyone the open step has asked in the current round: those it asked when it opened and each person a
    re-route (``approval.rerouted``) gave it to since, including those it was later taken from."""
    out: set[str] = set()
    for event in reversed(await repo.events_for(record.id or 0)):
        if event.type == "request.extension_requested":
            break  # an earlier round's steps
        if event.type in ASKED_EVENTS and event.data.get("step") == record.step + 1:
            out.update(str(a).lower() for a in event.data.get("approvers") or ())
    return frozenset(out)


def _data(record: RequestRecord, **kw: object) -> dict[str, object]:
    data = dict(kw)
    if record.round > 0:
        data["extension"] = True
    return data


async def _fail(repo: Repository, record: RequestRecord, rule: str, now: datetime,
                extra: dict[str, object] | None = None) -> None:
    if not in_chain(record):  # already ended (or its extension settled): nothing is left to fail
        raise ValueError(f"{record.ref} is not waiting on its chain ({record.state})")
    if record.state == PENDING:
        record.state, record.ended_at, record.failure = FAILED, now, rule
        await repo.append("request.failed", actor=SYSTEM, ts=now, request=record, data=_data(record, rule=rule))
        await repo.save_request(record)
        await accept_ended(repo, record, now)  # a drift accept that failed: the member is removed
    else:  # an extension that can no longer be approved: the grant itself stays as it was
        await repo.append("request.failed", actor=SYSTEM, ts=now, request=record,
                          data=_data(record, rule=rule, **(extra or {})))
        record.ext_duration, record.ext_justification = None, None
    await repo.save_request(record)


async def open_step(deps: Deps, repo: Repository, record: RequestRecord, chain: list[ResolvedStep],
                    used: set[str], now: datetime) -> list[Notice]:
    """Open ``record.step``: tell its approvers, or fail closed if it cannot be satisfied."""
    rest = chain[record.step:]
    bad = first_unsatisfiable(rest, frozenset(used))
    if bad is not None:
        await _fail(repo, record, bad.rule, now)
        return [Notice(record.requester, "status", f"{record.ref} failed: {bad.rule} can no longer be "
                       "satisfied.", record.id)]
    step = chain[record.step]
    approvers = sorted(step.pool - used)
    record.step_opened_at = now
    note_asked(record, approvers, now)
    await repo.save_request(record)
    await repo.append("approval.requested", actor=SYSTEM, ts=now, request=record,
                      data=_data(record, step=record.step + 1, approvers=approvers, label=step.label))
    what = f"to extend {record.profile} by {format_duration(record.ext_duration)}" if record.ext_duration \
        else f"for {record.profile} for {format_duration(record.duration)}"
    return [Notice(a, "approval", f"{record.requester} asks {what} ({record.ref}): approve or deny.",
                   record.id) for a in approvers]


async def reroute_step(deps: Deps, repo: Repository, record: RequestRecord, step: ResolvedStep,
                       asked: frozenset[str], used: set[str], now: datetime) -> list[Notice]:
    """The open ``manager`` step of ``record`` asked ``asked``, but the requester's manager is someone else now:
    the step is passed to them (``approval.rerouted`` {step, approvers, from, to, reason}), who get the approval
    card; those it asked before are told it is no longer theirs to decide (their cards are redrawn without
    buttons). Nothing when the step already asks whom it should (called under the write lock, on a fresh read)."""
    approvers = sorted(step.pool - used)
    added, removed = sorted(set(approvers) - asked), sorted(asked - set(approvers))
    if not added:
        return []
    await repo.append("approval.rerouted", actor=SYSTEM, ts=now, request=record,
                      data=_data(record, step=record.step + 1, label=step.label, approvers=approvers,
                                 reason="manager-changed", **{"from": removed, "to": added}))
    record.reminded_step = None  # the new manager is reminded in their turn (the sweep counts from now)
    note_asked(record, approvers, now)
    await repo.save_request(record)
    what = f"to extend {record.profile} by {format_duration(record.ext_duration)}" if record.ext_duration \
        else f"for {record.profile} for {format_duration(record.duration)}"
    before = f" (it was with {', '.join(removed)})" if removed else ""
    notices = [Notice(a, "approval", f"{record.requester} asks {what} ({record.ref}): approve or deny. You are "
                      f"asked as {record.requester}'s manager now{before}.", record.id) for a in added]
    notices += [Notice(a, "outcome", f"{record.ref} is no longer yours to decide: {record.requester}'s manager is "
                       f"now {', '.join(added)}, who has been asked instead.", record.id) for a in removed]
    return notices


def sees(deps: Deps, actor: str, record: RequestRecord, decisions: list[DecisionRecord],
         chain: list[ResolvedStep] | None) -> bool:
    """Who may see a request (SPEC §4.1): its requester, the security team, whoever decided on it in any
    round, and whoever its chain names now. ``chain`` is the request's chain as resolved now. A step whose
    re-route the safety brake holds names the manager it stays with, not the one the provider names now
    (``held_for``): the brake holds re-routes because the provider's manager attribute changed for too many at
    once, so the people it names are not shown the requests (their justifications, tickets) before the security
    team releases the hold; a decision of theirs is recorded ``reroute-held`` and answered as for anyone else."""
    return (actor == record.requester or deps.is_security(actor) or any(d.approver == actor for d in decisions)
            or any(actor in s.pool for s in chain or ()))


async def decide(deps: Deps, actor: str, n: int, *, approve: bool, comment: str | None,
                 at: tuple[int, int] | None = None) -> Reply:
    """Approve or deny. Whoever may not see the request gets :func:`not_found`, as for a request that does
    not exist, whatever the attempt found; it records what an attempt by anyone outside the chain records.
    Visibility is judged on what the decision reads under the write lock, so a click costs no read of its own.

    ``at`` is the (round, 1-based step) a clicked card showed: a decision counts only for that step of that
    round, never for a later one the card did not show (an extension asked again for longer, the next step)."""
    actor = actor.lower()
    comment = comment or None  # cleaned and limited by the service, like every free-text field
    if not approve and not comment:
        if not await _visible(deps, actor, n):
            await _decide(deps, actor, n, approve=False, comment="-")
            return not_found(n)
        return Reply(text=f"Say why: `deny {req_id(n)} because <reason>`.", ok=False, kind="form",
                     rule="reason", data={"request_id": req_id(n), "needs": "reason"})
    try:
        reply, visible = await _decide(deps, actor, n, approve=approve, comment=comment, at=at)
    except AttributeNotSupplied as exc:  # the last approval judges eligibility again (SPEC §3.6) on a rule the
        # identity source cannot supply: the decision's write rolled back with it, deciding nothing, and the
        # service answers "could not check"; the attempt is recorded by itself so that the audit shows it
        await _record_unchecked(deps, actor, n, exc)
        raise
    return reply if visible else not_found(n)


async def _record_unchecked(deps: Deps, actor: str, n: int, exc: AttributeNotSupplied) -> None:
    """Record an approval that could not be taken because a rule cannot be checked: ``approval.refused`` with
    reason ``could-not-check`` and the rule, as a request refused so is recorded (``request.refused``). Its own
    write, after the decision's rolled back: nothing recorded is changed and nothing is decided, the step stays
    open (an approval the rule could later judge is still to be given)."""
    async with deps.store.write() as repo:
        record = await repo.get_request(n)
        if record is None or not in_chain(record):
            return  # ended meanwhile by someone else, whose own events say why
        await repo.append("approval.refused", actor=actor, ts=deps.now(), request=record,
                          data=_data(record, step=record.step + 1, reason="could-not-check",
                                     rule=f"could not check: {exc.rule}", attributes=exc.keys))


async def closed_why(repo: Repository, record: RequestRecord) -> str:
    """Why ``record`` waits on no decision, as its last ending event says (`` (revoked: ineligible: …)``), for the
    refusal of a click on a card that still showed buttons; "" when its events name none."""
    event = await repo.last_ending(record.id or 0)  # the newest of the types below: the one the answer rests on
    if event is not None:
        data, by = event.data, event.actor
        if event.type == "request.extension_requested":
            return ""  # the extension asked for is still the last word
        if event.type == "grant.revoked":
            return f" (revoked: {data.get('reason') or 'revoked'})" + (f" by {by}" if by != SYSTEM else "")
        if event.type in ("grant.expired", "grant.released"):
            return f" ({event.type.removeprefix('grant.')})"
        if event.type == "request.cancelled":
            left = data.get("reason") == "terminated"
            what = "its requester is no longer active" if left else f"withdrawn by {by}"
            return f" (the extension was {what})" if data.get("extension") else f" ({what})"
        if event.type == "request.failed":
            head = "the extension failed: " if data.get("extension") else ""
            return f" ({head}{data.get('rule') or 'failed'})"
        if event.type in ("request.denied", "approval.denied"):
            return f" (denied by {by})"
        if event.type == "request.approved":
            return ""
    return ""


async def _visible(deps: Deps, actor: str, n: int) -> bool:
    """Whether ``actor`` may see request ``n`` (True when there is none: the reply is the same)."""
    async with deps.store.read() as repo:
        record, decisions = await repo.request_with_decisions(n)
    return record is None or sees(deps, actor, record, decisions, await _chain(deps, record))


@dataclass
class _Found:
    """What a decision read before anything it may record: the request, its decisions and its chain as resolved
    now (the open step pinned to whom it asked), and whether the one clicking may see it."""

    record: RequestRecord
    decisions: list[DecisionRecord]
    chain: list[ResolvedStep]
    visible: bool
    this_round: list[DecisionRecord]
    earlier: set[str]
    submitter: str | None
    asked: Any
    step: ResolvedStep
    label: str


@dataclass(frozen=True)
class _Read:
    """What a decision on a request reads before it judges the one clicking: the same for everyone clicking it at
    that moment, so clicks answered from a read share it (:func:`_answered_by_reading`). ``closed``: the answer to
    a click on a request that waits on no decision."""

    record: RequestRecord | None
    decisions: tuple[DecisionRecord, ...] = ()
    chain: tuple[ResolvedStep, ...] = ()
    closed: Reply | None = None
    submitter: str | None = None
    asked: frozenset[str] | None = None
    view: RequestView | None = None  # of a request waiting on its chain, when asked for (``_read(view=True)``)


async def _read(deps: Deps, repo: Repository, n: int, *, view: bool = False) -> _Read:
    """The reads of a decision on ``n`` (:func:`_look`), whoever clicks. ``view``: with the view of a request that
    waits on its chain, for the clicks a read answers (a click already decided is shown the request as it stands)."""
    record, decisions = await repo.request_with_decisions(n)
    if record is None:
        return _Read(None)
    chain = tuple(await _chain(deps, record) or ())
    if not in_chain(record):  # a card of a step that closed (its outcome says why, once its edit lands)
        why = await closed_why(repo, record)
        return _Read(record, tuple(decisions), chain, closed=Reply(
            text=f"{record.ref} is {record.state}{why}: there is nothing to decide.", ok=False, kind="request",
            request=await request_view(deps, record, decisions=decisions), rule="not-open"))
    if not chain or record.step >= len(chain):
        return _Read(record, tuple(decisions), chain)
    # who filed a drift accept counts as its requester; whom the open step asked
    return _Read(record, tuple(decisions), chain, submitter=await filed_by(repo, record),
                 asked=await asked_at_open(repo, record),
                 view=await request_view(deps, record, decisions=decisions) if view else None)


def _judged(deps: Deps, read: _Read, actor: str, n: int) -> tuple[Reply, bool] | _Found:
    """:func:`_look`'s answer for ``actor`` on what :func:`_read` read (which it does not change)."""
    record = read.record
    if record is None:
        return not_found(n), True
    decisions, chain = list(read.decisions), list(read.chain)
    visible = sees(deps, actor, record, decisions, chain)
    if read.closed is not None:
        return read.closed, visible
    if not chain or record.step >= len(chain):  # e.g. the requester is not found at the IdP right now: a
        # click changes nothing (SPEC §3.6: a person the IdP no longer finds loses nothing at once); the sweep
        # ends it once they are a confirmed leaver
        return Reply(text=f"{record.ref} cannot be decided right now: its approvers at step {record.step + 1} "
                     "cannot be worked out (the requester or the step's approvers are not found at the identity "
                     "provider). It stays pending.", ok=False, kind="refusal", rule="chain-unavailable"), visible
    this_round = [d for d in decisions if d.round == record.round]
    earlier = {d.approver for d in this_round if d.step < record.step and d.decision == "approved"}
    submitter, asked = read.submitter, read.asked
    earlier |= {submitter} if submitter else set()
    step = chain[record.step] = pin_step(chain[record.step], asked)
    label = f"step {record.step + 1} ({step.label})"
    mine = next((d for d in this_round if d.approver == actor), None)
    if mine is not None and actor not in (record.requester, submitter):  # their own request: refused, recorded
        return Reply(text=f"You already {mine.decision} {record.ref} at step {mine.step + 1}; "
                     "one person counts once per request.", ok=False, kind="refusal",
                     rule="already-decided", request=read.view), visible
    return _Found(record, decisions, chain, visible, this_round, earlier, submitter, asked, step, label)


async def _look(deps: Deps, repo: Repository, actor: str, n: int) -> tuple[Reply, bool] | _Found:
    """The answer to a decision on ``n`` by ``actor`` when the request says it without anything recorded (no such
    request, nothing to decide, no chain to decide on, theirs already decided), with whether they may see it; else
    what was read, for the decision to go on with. The same reads and the same order under the write lock and in a
    read: an answer found in a read is the one the lock would have given at that moment."""
    read = await _read(deps, repo, n)
    found = _judged(deps, read, actor, n)
    if isinstance(found, tuple) and found[0].rule == "already-decided" and read.record is not None:
        # shown the request as it stands, as a click answered from a read is
        view = await request_view(deps, read.record, decisions=list(read.decisions))
        found = replace(found[0], request=view), found[1]
    return found


SETTLED_KEPT = 1024  # requests remembered as found with nothing to decide (Deps._settled)


async def _answered_by_reading(deps: Deps, actor: str, n: int) -> tuple[Reply, bool] | None:
    """A click on a request another decision is being taken on now (in this process), or one a click lately found
    with nothing to decide: answered from a read when :func:`_look` answers it (a card clicked by a whole team, one
    approver's double click: the clicks after the first are answered without the write lock, on which each would
    otherwise wait its turn); None when the click must go to the decision (it may be taken, or its refusal is
    recorded). A click on any other request pays nothing for this."""
    taking = deps._deciding.get(n)
    if (taking is None and n not in deps._settled) or deps.decision_readers <= 0:
        return None
    if taking is not None:
        await taking.wait()  # the decision under way has committed (or failed): read what it left

    async def read() -> _Read:
        # the clicks reading at once share the read, sent after they all came (handlers/shared_reads.py): it looks
        # everything up itself, after them, in whichever click's context it runs (and a click it hands to the
        # decision is judged on what is looked up under the lock)
        with fresh_lookups():
            async with deps._readers, deps.store.read() as repo:
                return await _read(deps, repo, n, view=True)

    found = _judged(deps, await deps.shared_reads.get(("decision", n), read), actor, n)
    if not isinstance(found, tuple):
        return None
    _settled(deps, n)
    return found


def _settled(deps: Deps, n: int) -> None:
    kept = deps._settled
    kept.pop(n, None)
    kept[n] = None
    while len(kept) > SETTLED_KEPT:
        kept.pop(next(iter(kept)))


async def _decide(deps: Deps, actor: str, n: int, *, approve: bool, comment: str,
                  at: tuple[int, int] | None = None) -> tuple[Reply, bool]:
    """The decision, and whether ``actor`` may see the request (judged on what the decision read). Clicks on ``n``
    arriving while it is taken wait for its commit and are answered from a read when they can be
    (:func:`_answered_by_reading`)."""
    answered = await _answered_by_reading(deps, actor, n)
    if answered is not None:
        return answered
    taking = None
    if n not in deps._deciding:
        taking = deps._deciding[n] = asyncio.Event()
    try:
        return await _decide_locked(deps, actor, n, approve=approve, comment=comment, at=at, taking=taking)
    finally:
        _let_go(deps, n, taking)  # (already at its commit when it got that far: this is then a no-op)


def _let_go(deps: Deps, n: int, taking: asyncio.Event | None) -> None:
    """The decision on ``n`` this click was taking has committed or rolled back: the clicks waiting on it read."""
    if taking is not None:
        taking.set()
        if deps._deciding.get(n) is taking:
            del deps._deciding[n]


async def _decide_locked(deps: Deps, actor: str, n: int, *, approve: bool, comment: str,
                         at: tuple[int, int] | None, taking: asyncio.Event | None) -> tuple[Reply, bool]:
    """The decision under the write lock (``taking``: the event of the clicks waiting on it, let go at its commit)."""
    now = deps.now()
    notices: list[Notice] = []
    op_id = None
    try:
        async with deps.store.write() as repo:
            found = await _look(deps, repo, actor, n)
            if isinstance(found, tuple):
                _settled(deps, n)
                return found
            deps._settled.pop(n, None)  # a decision to take again: its next clicks need not read first
            record, decisions, chain, visible = found.record, found.decisions, found.chain, found.visible
            this_round, earlier, submitter, asked = found.this_round, found.earlier, found.submitter, found.asked
            step, label = found.step, found.label
            if actor in (record.requester, submitter):
                await repo.append("approval.refused", actor=actor, ts=now, request=record,
                                  data=_data(record, step=record.step + 1, reason="self-approval"))
                return Reply(text=f"You cannot decide on your own request {record.ref}.", ok=False,
                             kind="refusal", rule="self-approval"), visible
            if step.held_for is not None and actor in step.held_for and actor not in step.pool:
                # the provider names them the manager now, but the safety brake holds that re-route: the step stays
                # with the manager it asked until the security team releases it (or the provider answers as before)
                await repo.append("approval.refused", actor=actor, ts=now, request=record,
                                  data=_data(record, step=record.step + 1, reason="reroute-held"))
                kept = ", ".join(sorted(step.pool))
                return Reply(text=f"{record.ref} is not yours to decide yet: passing its {label} to you is held by "
                             f"the safety brake (safety.max_reroutes), so it stays with {kept}. The security team "
                             "releases held re-routes with `resume reroutes`.", ok=False, kind="refusal",
                             rule="reroute-held"), visible
            if actor not in step.pool - earlier:
                # someone the open step itself asked (a manager it was passed away from) did not miss an earlier step
                if any(actor in s.pool for s in chain[: record.step]) \
                        and actor not in await asked_this_round(repo, record):
                    return Reply(text=f"{record.ref}: that step was already decided; it now waits on {label}.",
                                 ok=False, kind="refusal", rule="step-closed"), visible
                await repo.append("approval.refused", actor=actor, ts=now, request=record,
                                  data=_data(record, step=record.step + 1, reason="not-an-approver"))
                return Reply(text=f"You are not an approver of {record.ref} at {label}.", ok=False,
                             kind="refusal", rule="not-an-approver"), visible
            if at is not None and at != (record.round, record.step + 1):
                # the card was sent for another step or round: what it showed is not what waits now
                await repo.append("approval.refused", actor=actor, ts=now, request=record,
                                  data=_data(record, step=record.step + 1, reason="stale-card"))
                what = f" of an extension by {format_duration(record.ext_duration)}" if record.ext_duration else ""
                return Reply(text=f"{record.ref} changed since that card was sent: it now waits on {label}{what}. "
                             "Nothing was recorded; decide on the current card.", ok=False, kind="refusal",
                             rule="stale-card", request=await request_view(deps, record)), visible
            if approve and (later := _needed_later(chain, record.step, earlier, this_round, actor)) is not None:
                # one person counts once per request: an approval here would leave a later step short of people
                # when someone else can approve this one (SPEC §2.1); a denial is always taken
                await repo.append("approval.refused", actor=actor, ts=now, request=record,
                                  data=_data(record, step=record.step + 1, reason="needed-later",
                                             needed_at=later.index + 1))
                others = ", ".join(sorted((step.pool - earlier) - {actor})) or "the other approvers"
                return Reply(text=f"{record.ref}: you are needed at step {later.index + 1} ({later.label}), and one "
                             f"person counts once per request: approving {label} too would leave that step without "
                             f"enough approvers. {label} waits on {others}; nothing was recorded.", ok=False,
                             kind="refusal", rule="needed-later", request=await request_view(deps, record)), visible
            if step.step.kind == "manager" and asked is not None and actor not in asked:
                # the requester's manager changed since the step asked (no sweep has passed it on yet): the record
                # says the step went to the manager now before it says they decided, as the reminders sweep records it
                notices += [x for x in await reroute_step(deps, repo, record, step, asked, earlier, now)
                            if x.recipient != actor]
            decision = DecisionRecord(request_id=record.id or 0, round=record.round, step=record.step, approver=actor,
                                      decision="approved" if approve else "denied", comment=comment, decided_at=now)
            await repo.add_decision(decision)
            decisions.append(decision)
            others = sorted((step.pool - earlier) - {actor})
            if not approve:
                await repo.append("approval.denied", actor=actor, ts=now, request=record,
                                  data=_data(record, step=record.step + 1, comment=comment))
                if record.round == 0:
                    record.state, record.ended_at, record.end_reason = DENIED, now, None
                    await repo.append("request.denied", actor=actor, ts=now, request=record,
                                      data={"step": record.step + 1, "reason": comment})
                    await repo.save_request(record)
                    await accept_ended(repo, record, now)  # a drift accept denied: the member is removed
                    text = f"{record.ref} denied by {actor}: {comment}"
                else:
                    record.ext_duration, record.ext_justification = None, None
                    text = f"The extension of {record.ref} was denied by {actor}: {comment}"
                await repo.save_request(record)
                notices.append(Notice(record.requester, "status", text, record.id))
                notices += [Notice(o, "outcome", text, record.id) for o in others]
                reply_text = f"Denied {record.ref}."
            else:
                await repo.append("approval.granted", actor=actor, ts=now, request=record,
                                  data=_data(record, step=record.step + 1, comment=comment))
                approved_here = {d.approver for d in this_round if d.step == record.step and d.decision == "approved"}
                approved_here.add(actor)
                need = step_need(step, earlier)
                if len(approved_here) < need:
                    reply_text = (f"Approved {record.ref} at {label}: {len(approved_here)} of {need}; "
                                  "waiting for more approvers.")
                    notices.append(Notice(record.requester, "status", f"{record.ref}: {actor} approved {label} "
                                          f"({len(approved_here)} of {need}).", record.id))
                else:
                    notices += [Notice(o, "outcome", f"{record.ref} {label} was approved by {actor}.", record.id)
                                for o in others if o not in approved_here]
                    record.step += 1
                    if record.step < len(chain):
                        notices += await open_step(deps, repo, record, chain, earlier | approved_here, now)
                        reply_text = f"Approved {record.ref} at {label}."
                        notices.append(Notice(record.requester, "status",
                                              f"{record.ref}: {label} approved by {actor}.", record.id))
                    else:
                        reply_text, op_id = await _final(deps, repo, record, actor, now, notices)
    finally:
        _let_go(deps, n, taking)
    # the request as this transaction committed it (the write lock held from its read to its commit): no read
    # again; a later change by someone else is theirs to show
    view = await request_view(deps, record, decisions=decisions)
    await deps.notifier.notify([Notice(x.recipient, x.kind, x.text, x.request_id, view) for x in notices])
    if op_id is not None:
        await run_op(deps, op_id)
        view = await _fresh_view(deps, n)
    if view is not None and view.state in (DENIED, FAILED) and submitter:
        await settle_request(deps, n)
    return Reply(text=reply_text, kind="request", request=view), visible


def _needed_later(chain: list[ResolvedStep], at: int, earlier: set[str], this_round: list[DecisionRecord],
                  actor: str) -> ResolvedStep | None:
    """The later step that ``actor`` approving step ``at`` would leave unable to finish, when the chain can
    still finish without that approval; else None (nothing to protect, or nothing lost)."""
    here = {d.approver for d in this_round if d.step == at and d.decision == "approved"}
    if open_step_unsatisfiable(chain, at, earlier, here) is not None:
        return None  # short whoever approves: the click is taken, and the request fails naming the step
    bad = open_step_unsatisfiable(chain, at, earlier, here | {actor})
    return bad if bad is not None and bad.index > at else None


async def _fresh_view(deps: Deps, n: int) -> RequestView | None:
    async with deps.store.read() as repo:
        fresh = await repo.get_request(n)
    return await request_view(deps, fresh) if fresh else None


async def _final(deps: Deps, repo: Repository, record: RequestRecord, actor: str, now: datetime,
                 notices: list[Notice]) -> tuple[str, int | None]:
    policy = await deps.policy_for(record)
    profile = policy.profile(record.profile)
    if record.round > 0 and record.ext_duration is not None and record.expires_at is not None:
        # the holder is judged again when the last approval lands: an approver cannot extend
        # access the holder has lost meanwhile
        # a grant whose expiry passed before the last approval ended then (SPEC §3.4), whether or not a sweep has
        # recorded it yet: an extension cannot bring it back
        # the policy reloaded while the extension waited: an extension only lengthens the membership the grant
        # holds, so one the policy in force no longer names for the profile (moved to another group, or the
        # profile gone) is not extended, whatever version opened the round
        moved = None if record.expires_at <= now else group_refusal(deps, deps.policy, record)
        if moved is not None:
            await _fail(repo, record, moved, now, extra=moved_data(deps.policy, record))
            text = (f"The extension of {record.ref} failed: {group_refusal_text(deps.policy, record, moved)}. "
                    f"The grant keeps its expiry ({_ts(record.expires_at)}).")
            notices.append(Notice(record.requester, "status", text, record.id))
            return text, None
        why = "expired" if record.expires_at <= now else \
            await extension_refusal(deps, policy, record, await deps.person(record.requester))
        if why is not None:
            await _fail(repo, record, why, now)
            text = (f"The extension of {record.ref} failed: the grant expired at {_ts(record.expires_at)}, before "
                    "the extension was approved. Request the access again." if why == "expired" else
                    f"The extension of {record.ref} failed: {why}. The grant keeps its expiry.")
            notices.append(Notice(record.requester, "status", text, record.id))
            return text, None
        limit = profile.exception.max_duration if (record.kind == "exception" and profile and profile.exception) \
            else (profile.max_duration if profile else record.duration)
        new_expiry = min(record.expires_at + record.ext_duration, now + limit)
        await repo.append("grant.extended", actor=actor, ts=now, request=record, data={
            "extension": True, "duration": format_duration(record.ext_duration),
            "previous_expires_at": _ts(record.expires_at), "expires_at": _ts(new_expiry),
            "policy_version": policy.version, "policy_sha256": policy.sha256})
        record.expires_at, record.ext_duration, record.ext_justification = new_expiry, None, None
        record.warned_expiry = None
        await repo.save_request(record)
        text = f"{record.ref} extended: now until {_ts(new_expiry)}."
        notices.append(Notice(record.requester, "status", text, record.id))
        return text, None
    # a mover: the requester is judged again when the last approval lands, before anything is
    # provisioned; an approver cannot grant access the requester has lost meanwhile (SPEC §3.6)
    why = await extension_refusal(deps, policy, record, await deps.person(record.requester))
    if why is not None:
        await _fail(repo, record, why, now)
        text = no_longer_eligible(record, why)
        notices.append(Notice(record.requester, "status", text, record.id))
        return f"{record.ref} failed: the requester is no longer eligible ({why}); nothing was provisioned.", None
    record.state, record.approved_at = APPROVED, now
    await repo.save_request(record)
    await repo.append("request.approved", actor=actor, ts=now, request=record, data={"auto": False})
    await accept_approved(repo, record, actor, now)  # a drift accept: the membership is now backed by the grant
    op = await plan_add(repo, record, now)
    notices.append(Notice(record.requester, "status", f"{record.ref} approved; adding you to {record.group}.",
                          record.id))
    return f"Approved {record.ref}: the chain is complete; provisioning {record.group}.", op.id


def no_longer_eligible(record: RequestRecord, why: str) -> str:
    """What the requester is told when their request fails because they lost eligibility while it waited (at its
    last approval, or at a sweep: handlers/compliance/movers.py)."""
    return f"{record.ref} failed: you are no longer eligible for {record.profile} ({why}). Nothing was granted."


def group_refusal(deps: Deps, policy: Policy, record: RequestRecord) -> str | None:
    """``unknown-profile`` when ``policy`` no longer has the grant's profile, ``group-changed`` when it grants the
    profile as another group (or at another provider) than the one the grant is in; else None. An extension only
    lengthens the membership the grant holds: it is refused rather than extend a group the policy no longer names
    for the profile. A group named another way that resolves to the same id is the same group."""
    profile = policy.profile(record.profile)
    if profile is None:
        return "unknown-profile"
    if profile.provider != record.provider:
        return "group-changed"
    key = deps.groups.key
    return None if key(profile.provider, profile.group) == key(record.provider, record.group) else "group-changed"


def group_refusal_text(policy: Policy, record: RequestRecord, why: str) -> str:
    """Why ``group_refusal`` refused, in words for the holder."""
    profile = policy.profile(record.profile)
    if profile is None:
        return f"{record.profile} is no longer in the policy (version {policy.version})"
    return (f"policy {policy.version} grants {profile.id} as {profile.provider} group {profile.group}, not "
            f"{record.provider} group {record.group} that {record.ref} holds; an extension cannot move a grant to "
            f"another group. Request {profile.id} again")


def moved_data(policy: Policy, record: RequestRecord) -> dict[str, object]:
    """The audit data of a ``group-changed`` refusal: the group held and the group the policy names now."""
    profile = policy.profile(record.profile)
    data: dict[str, object] = {"group": record.group, "provider": record.provider,
                               "policy_version": policy.version, "policy_sha256": policy.sha256}
    if profile is not None:
        data.update(policy_group=profile.group, policy_provider=profile.provider)
    return data


async def extension_refusal(deps: Deps, policy: Policy, record: RequestRecord, holder: Person | None) -> str | None:
    """The rule that refuses extending this grant under ``policy`` (named as §3.1 names rules), or None.

    A standard grant needs a holder eligible by the profile's rules; an exception needs the
    profile to allow exceptions still. Either way the holder must be active.
    """
    profile = policy.profile(record.profile)
    if profile is None:
        return "unknown-profile"
    if holder is None or not holder.active:
        return "inactive"
    if record.kind == "exception":
        return None if profile.exception is not None else "exception: not allowed"
    return ineligibility(profile, holder, await memberships_of(deps, holder.email, profile))


def _ts(moment: datetime | None) -> str | None:
    from handlers.audit import format_ts

    return format_ts(moment) if moment else None


async def end_grant(deps: Deps, actor: str, n: int, *, how: str, reason: str | None = None,
                    requester_only: bool = False) -> Reply:
    """Release (the requester) or revoke (security) a grant now."""
    now = deps.now()
    async with deps.store.write() as repo:
        record = await repo.get_request(n)
        if record is None:
            return not_found(n)
        if requester_only and record.requester != actor:
            return Reply(text=f"Only the requester of {record.ref} can release it.", ok=False, kind="refusal",
                         rule="not-requester")
        if record.state not in HOLDING_STATES:
            hint = " Use `cancel` for a pending request." if record.state == PENDING and requester_only else ""
            return Reply(text=f"{record.ref} is {record.state}: there is no grant to end.{hint}", ok=False,
                         kind="request", request=await request_view(deps, record), rule="not-active")
        state = "released" if how == "released" else "revoked"
        # the requester, whom the view and the notices name, is looked up before anything is written: a
        # provider that cannot answer then leaves the grant as it was, not ended with its answer lost
        await deps.person(record.requester)
        waiting: list[str] = []  # an extension's open step: its approvers' cards are closed like any decided one
        if record.extension_pending:
            waiting = await card_holders(repo, record, await _chain(deps, record) or [])
        record.state, record.ended_at, record.end_reason = state, now, reason_code(how, reason)
        record.ext_duration = None
        await repo.save_request(record)
        ending = await end_membership(repo, record, now)
        data: dict[str, object] = {"provider": record.provider, "group": record.group}
        if how != "released":
            data["reason"] = how
            if reason:
                data["comment"] = reason
        if not ending.provisioned:
            data["provisioned"] = False  # ended before its add completed: the add is cancelled or undone
        await repo.append(f"grant.{state}", actor=actor, ts=now, request=record, data=data)
    outcome = await run_op(deps, ending.remove.id or 0) if ending.remove is not None else None
    async with deps.store.read() as repo:
        fresh = await repo.get_request(n)
        if outcome == "skipped" and ending.add_in_flight and any(
                e.type == "membership.remove_dropped" for e in await repo.events_for(n)):
            outcome = "dropped"  # the add came back turned away before the removal's turn: nothing to undo
    view = await request_view(deps, fresh) if fresh else None
    text = f"{record.ref} {state}: " + ending_text(record, ending, outcome)
    notices = [Notice(a, "outcome", f"{record.ref} was {state} by {actor}; the extension waiting on you is closed.",
                      record.id, view) for a in waiting if a != actor]
    if actor != record.requester:
        notices.append(Notice(record.requester, "status", f"{record.ref} was {state} by {actor}"
                              + (f": {reason}" if reason else "."), record.id, view))
    await deps.notifier.notify(notices)
    return Reply(text=text, kind="request", request=view)


def ending_text(record: RequestRecord, ending: Ending, outcome: str | None) -> str:
    """What ending a grant did to the membership, in words that are true when they are read."""
    who, group = record.requester, record.group
    if ending.remove is None:
        if not ending.provisioned:
            return f"it was not provisioned yet: the add was cancelled and {who} was never added to {group}."
        return f"{who} keeps {group} through another active grant."
    if outcome == "dropped":
        return (f"it was not provisioned yet: the provider turned the add of {who} to {group} away, so the bot "
                "added nothing and removes nothing.")
    if outcome == "skipped":
        return f"{who} keeps {group} through another active grant."
    if outcome == "done":
        if not ending.provisioned:
            return f"it was not provisioned yet: the add was cancelled and {who} is not in {group}."
        return f"{who} removed from {group}."
    if ending.add_in_flight:
        return (f"it was not provisioned yet, but the add of {who} to {group} is at the provider now: it is "
                "undone as soon as it returns.")
    return f"the removal of {who} from {group} could not finish yet; it is retried until it succeeds."


def reason_code(how: str, reason: str | None) -> str:
    return {"released": "released", "security": "revoked", "terminated": "terminated"}.get(how, "revoked")


async def cancel(deps: Deps, actor: str, n: int) -> Reply:
    now = deps.now()
    notices: list[Notice] = []
    async with deps.store.write() as repo:
        record = await repo.get_request(n)
        if record is None:
            return not_found(n)
        if record.requester != actor:
            return Reply(text=f"Only the requester of {record.ref} can cancel it.", ok=False, kind="refusal",
                         rule="not-requester")
        waiting = await card_holders(repo, record, await _chain(deps, record) or []) \
            if record.state == PENDING or (record.state == ACTIVE and record.extension_pending) else []
        if record.state == PENDING:
            record.state, record.ended_at = CANCELLED, now
            await repo.append("request.cancelled", actor=actor, ts=now, request=record, data={})
            await repo.save_request(record)
            await accept_ended(repo, record, now)  # a drift accept withdrawn: the member is removed
            text = f"{record.ref} cancelled."
        elif record.state == ACTIVE and record.extension_pending:
            await repo.append("request.cancelled", actor=actor, ts=now, request=record,
                              data={"extension": True, "duration": format_duration(record.ext_duration)})
            record.ext_duration, record.ext_justification = None, None
            text = f"The extension of {record.ref} was withdrawn; the grant keeps its expiry."
        else:
            hint = " Use `release` to end an active grant." if record.state in HOLDING_STATES else ""
            return Reply(text=f"{record.ref} is {record.state}: only pending requests can be cancelled.{hint}",
                         ok=False, kind="refusal", rule="not-pending")
        await repo.save_request(record)
        notices = [Notice(a, "outcome", f"{record.ref} was withdrawn by {actor}.", record.id) for a in waiting]
    view = await request_view(deps, record)
    await deps.notifier.notify([Notice(x.recipient, x.kind, x.text, x.request_id, view) for x in notices])
    if record.state == CANCELLED:
        await settle_request(deps, n)
    return Reply(text=text, kind="request", request=view)


async def extend(deps: Deps, actor: str, n: int, duration_text: str | None, reason: str | None) -> Reply:
    if not duration_text:
        return Reply(text=f"Say how long: `extend {req_id(n)} by <duration>`.", ok=False, kind="refusal",
                     rule="duration")
    now = deps.now()
    async with deps.store.read() as repo:
        record = await repo.get_request(n)
    if record is None:
        return not_found(n)
    if record.requester != actor:
        return Reply(text=f"Only the requester of {record.ref} can extend it.", ok=False, kind="refusal",
                     rule="not-requester")
    if record.state != ACTIVE or record.expires_at is None:
        return Reply(text=f"{record.ref} is {record.state}: only an active grant can be extended.", ok=False,
                     kind="refusal", rule="not-active")
    if record.expires_at <= now:  # ended at its expiry, even if no sweep has recorded it yet (SPEC §3.4)
        return Reply(text=f"{record.ref} expired at {_ts(record.expires_at)}: an ended grant cannot be extended. "
                     f"Request {record.profile} again.", ok=False, kind="refusal", rule="expired")
    if record.extension_pending:
        return Reply(text=f"An extension of {record.ref} is already waiting for approval.", ok=False,
                     kind="refusal", rule="extension-pending")
    from handlers.requests import refuse

    try:
        extra = parse_duration(duration_text)
    except DurationError as exc:
        return await refuse(deps, actor, "duration", str(exc), profile=record.profile, request_id=record.ref)
    # An extension is a new decision: the policy in force judges its maximum, its chain and the
    # holder's eligibility, whatever version the request was first submitted under.
    policy = deps.policy
    profile = policy.profile(record.profile)
    if profile is None:
        return await refuse(deps, actor, "unknown-profile", f"{record.profile} is no longer in the policy.",
                            profile=record.profile, request_id=record.ref)
    if (moved := group_refusal(deps, policy, record)) is not None:
        return await refuse(deps, actor, moved, f"{record.ref} cannot be extended: "
                            f"{group_refusal_text(policy, record, moved)}. The grant keeps its expiry "
                            f"({_ts(record.expires_at)}).", profile=profile.id, request_id=record.ref,
                            data=moved_data(policy, record))
    holder = await deps.person(actor)
    try:
        why = await extension_refusal(deps, policy, record, holder)
    except AttributeNotSupplied as exc:  # a rule that would decide names an attribute the source does not give:
        # refused and recorded with the rule, as a request is (never judged by guess); no round is opened
        return await refuse(deps, actor, f"could not check: {exc.rule}", f"{record.ref} cannot be extended: {exc}, "
                            "so the rule cannot be judged and nothing is granted by guess. The policy's owner must "
                            "change the rule (see `accessbot policy check`) or the identity source supply the "
                            f"attribute. The grant keeps its expiry ({_ts(record.expires_at)}).",
                            profile=profile.id, request_id=record.ref, data={"attributes": exc.keys})
    if why is not None:
        hint = (f" You can ask for an exception: `exception {profile.id} for <duration> because <reason>`."
                if profile.exception and record.kind != "exception" and why.startswith(("eligible", "ineligible"))
                else "")
        return await refuse(deps, actor, why, f"{record.ref} cannot be extended under policy {policy.version} "
                            f"({why}).{hint}", profile=profile.id, request_id=record.ref)
    limit = profile.exception.max_duration if (record.kind == "exception" and profile.exception) \
        else profile.max_duration
    if record.expires_at + extra - now > limit:
        return await refuse(deps, actor, "duration>max", f"the new expiry would be more than "
                            f"{format_duration(limit)} from now (the maximum for {profile.id}).",
                            profile=profile.id, request_id=record.ref)
    chain = await resolve_chain(chain_of(policy, record), policy=policy, profile=profile, requester=holder,
                                directory=deps.directory) if holder is not None else []
    if not chain:
        return Reply(text=f"{record.ref}: the approval chain cannot be resolved.", ok=False, kind="refusal",
                     rule="chain-unavailable")
    bad = first_unsatisfiable(chain)
    if bad is not None:  # judged like a request (SPEC §3.1): refused with the step that failed, no round opened
        return await refuse(deps, actor, bad.rule, f"{record.ref} cannot be extended: the approval chain cannot be "
                            f"satisfied at {bad.rule}: not enough approvers other than you can be found for it. "
                            "The grant keeps its expiry.", profile=profile.id, request_id=record.ref)
    notices: list[Notice] = []
    async with deps.store.write() as repo:
        record = await repo.get_request(n)
        if record is None or record.state != ACTIVE or record.extension_pending:
            return Reply(text=f"{req_id(n)} changed meanwhile; try again.", ok=False, kind="refusal",
                         rule="changed-meanwhile")
        record.round += 1
        record.step = 0
        record.ext_duration = extra
        record.ext_justification = reason or None
        await repo.append("request.extension_requested", actor=actor, ts=now, request=record,
                          data={"extension": True, "duration": format_duration(extra),
                                "justification": record.ext_justification, "round": record.round,
                                "policy_version": policy.version, "policy_sha256": policy.sha256})
        notices = await open_step(deps, repo, record, chain, set(), now)
    view = await request_view(deps, record)
    await deps.notifier.notify([Notice(x.recipient, x.kind, x.text, x.request_id, view) for x in notices])
    if record.state == FAILED or not record.extension_pending:
        return Reply(text=f"The extension of {record.ref} cannot be approved: its chain cannot be satisfied.",
                     ok=False, kind="request", request=view)
    return Reply(text=f"Extension of {record.ref} by {format_duration(extra)} submitted; waiting on step 1.",
                 kind="request", request=view)
