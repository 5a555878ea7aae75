"""Provisioning: every provider call is recorded as intended before it is made and as done after.

A crash between the call and the record leaves a ``pending`` operation that the next sweep (or
start-up) runs again; the calls are idempotent, so nothing is lost or repeated. Transient
failures are retried with backoff; after the retry budget a grant that could not be added fails,
while a removal is reported and retried until it succeeds: a revocation is never given up.

The operations on one membership (provider, group, user) run one at a time in the order they were
planned, whichever process runs them: a removal never overtakes an add still at the provider, nor an
add a removal. When a call returns, what it was for is checked again: an add whose request ended
meanwhile is undone, not provisioned, and one that failed is not tried again (the removal planned behind it is
dropped when no attempt may have been carried out: ``membership.remove_dropped``); a removal that took a membership
another grant still needs puts it back. A drift re-add (a holder put back) that no running grant backs any more is
dropped before it is tried, and before a removal queued behind it runs (``membership.add_dropped``); one whose
attempt may have been carried out unanswered may have landed, so its removal is planned. Every time here comes from
the real clock, never from the clock a sweep is judged by.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.audit import format_ts
from handlers.compliance.findings import drift_ref
from handlers.compliance.readd import not_running, readd_landed, readd_of, readd_queued
from handlers.context import SYSTEM, Deps
from handlers.groups import holding_group, stored_groups
from handlers.ports import Notice, ProviderError
from handlers.records import (
    ACTIVE,
    APPROVED,
    EXPIRED,
    FAILED,
    HOLDING_STATES,
    RELEASED,
    REVOKED,
    OpRecord,
    RequestRecord,
    req_number,
)
from handlers.repository import Repository

LEASE = timedelta(seconds=60)
BASE_BACKOFF = 2.0
MAX_BACKOFF = 300.0


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    """When to try an operation again.

    The provider's own ``Retry-After`` (or rate-limit reset) when it gave one, plus up to a second
    more so that operations refused together do not all come back at the same instant; else
    exponential backoff with full jitter.
    """
    if retry_after is not None and retry_after >= 0:
        return timedelta(seconds=min(MAX_BACKOFF, retry_after + random.uniform(0, min(1.0, 0.1 + retry_after / 20))))
    cap = min(MAX_BACKOFF, BASE_BACKOFF * (2 ** min(attempts, 16)))
    return timedelta(seconds=random.uniform(0, cap))


async def plan_add(repo: Repository, record: RequestRecord, now: datetime) -> OpRecord:
    op = OpRecord(request_id=record.id or 0, op="add", provider=record.provider, group=record.group,
                  email=record.requester, created_at=now)
    await repo.add_op(op)
    return op


async def ended_grant(repo: Repository, email: str, provider: str, group: str, held_at: datetime
                      ) -> RequestRecord | None:
    """The grant of ``group`` (named as in :func:`holding_group`) that ``email`` held at ``held_at`` and that has
    ended since (expired, released or revoked; the last to end when several did), else None."""
    groups = await stored_groups(repo)
    wanted = groups.ident(provider, group)
    ended = [r for r in await repo.find_requests(requester=email, states=(EXPIRED, RELEASED, REVOKED),
                                                 provider=provider)
             if groups.ident(r.provider, r.group) == wanted and r.started_at is not None
             and r.started_at <= held_at and (r.ended_at is None or r.ended_at >= held_at)]
    return max(ended, key=lambda r: (r.ended_at or held_at, r.id or 0), default=None)


async def ops_on_membership(repo: Repository, provider: str, group: str, email: str,
                            statuses: tuple[str, ...] | None = None) -> list[OpRecord]:
    """The calls on one membership (``statuses``: only those; None: every one), the group named any way the store
    knows it by (name or id), oldest first."""
    found: dict[int, OpRecord] = {}
    for spelled in sorted((await stored_groups(repo)).spellings(provider, group)):
        for o in await repo.ops_for_member(provider, spelled, email, statuses=statuses):
            found[o.id or 0] = o
    return [found[i] for i in sorted(found)]


async def plan_remove(repo: Repository, record: RequestRecord, now: datetime) -> OpRecord | None:
    """Record the removal of the membership a grant held, unless another grant still covers it."""
    if any(o.id != record.id for o in await holding_group(repo, record.requester, record.provider, record.group)):
        return None
    op = OpRecord(request_id=record.id or 0, op="remove", provider=record.provider, group=record.group,
                  email=record.requester, created_at=now)
    await repo.add_op(op)
    return op


@dataclass(frozen=True)
class Ending:
    """What ending a grant did to its membership."""

    provisioned: bool  # the grant had been provisioned (``grant.provisioned`` was recorded)
    remove: OpRecord | None  # the removal queued, if one is needed
    add_in_flight: bool  # the grant's add is at the provider now: the removal runs after it returns


async def end_membership(repo: Repository, record: RequestRecord, now: datetime) -> Ending:
    """The membership side of ending a grant (``record`` already carries its ended state).

    An add that has not reached the provider is cancelled; one that may have (see :func:`may_have_reached`: an
    earlier attempt that timed out or was answered 500/502/504, or a call in flight now) is followed by a removal,
    which runs after it. An add whose every attempt was turned away before anything was done (429, 503, another
    4xx) is cancelled with nothing to undo: a membership the person held before, outside the bot, stays. So does it
    when the call in flight comes back turned away too: the removal planned behind it is then dropped
    (:func:`_add_refused_after_ending`).
    """
    provisioned = record.started_at is not None
    may_be_member, in_flight = provisioned, False
    for add in await repo.ops_for(record.id or 0):
        if add.op != "add" or add.status != "pending":
            continue
        if add.in_flight(now):
            in_flight = may_be_member = True
            continue
        may_be_member = may_be_member or may_have_reached(add)
        add.status, add.done_at, add.next_attempt_at, add.leased_until = "skipped", now, None, None
        await repo.save_op(add)
    remove = await plan_remove(repo, record, now) if may_be_member else None
    return Ending(provisioned=provisioned, remove=remove, add_in_flight=in_flight)


async def end_grant_in(repo: Repository, record: RequestRecord, state: str, event: str, now: datetime,
                       data: dict, actor: str = SYSTEM, *, judged: datetime | None = None,
                       tell: Sequence[Notice] = ()) -> OpRecord | None:
    """End a holding grant in the caller's transaction: its state, the audit event (as of ``judged`` when a
    sweep is judged at another instant), and the removal intent.

    The notices are written to the outbox in the same transaction (handlers/outbox.py): ``tell`` (what the
    caller tells the holder and the security team), then, when an extension of the grant was waiting on its
    chain, one ``outcome`` notice to each person its open step asked, saying it closed and why. Each of those
    edits that person's approval cards of the request when it is sent, so a card of an extension that can no
    longer be decided loses its buttons even when the process dies right after the commit."""
    closing = await _closed_extension(repo, record, state, data) if record.extension_pending else []
    record.state, record.ended_at, record.end_reason = state, now, data.get("reason", state)
    if state == "revoked":
        record.end_reason = "terminated" if data.get("reason") == "terminated" else "revoked"
    record.ext_duration = None
    await repo.save_request(record)
    ending = await end_membership(repo, record, now)
    extra = {} if ending.provisioned else {"provisioned": False}
    await repo.append(event, actor=actor, ts=judged or now, request=record,
                      data={"provider": record.provider, "group": record.group, **data, **extra})
    await repo.queue_notices([*tell, *closing], now)  # the closings last: their card edits are the ones that stay
    return ending.remove


async def _closed_extension(repo: Repository, record: RequestRecord, state: str, data: dict) -> list[Notice]:
    """The ``outcome`` notices to the people the open step of ``record``'s pending extension asked, when the grant
    ends by itself (expiry) or by a sweep (a leaver, a mover, drift, a review), naming why."""
    from handlers.approvals import card_holders  # approvals provisions through this module

    holders = await card_holders(repo, record, [])  # whom the step asked (recorded when it opened)
    text = f"The extension of {record.ref} waiting on you was closed: {grant_ended_why(record, state, data)}."
    return [Notice(a, "outcome", text, record.id) for a in holders if a != record.requester]


def grant_ended_why(record: RequestRecord, state: str, data: dict) -> str:
    """Why a grant ended, in words for the people who held a card of its extension."""
    reason = str(data.get("reason") or "")
    if state == EXPIRED:
        return "the grant expired before it was decided"
    if state != REVOKED:
        return f"the grant was {state}"
    if reason == "terminated":
        return f"the grant was revoked because {record.requester} is no longer active"
    if reason.startswith("ineligible"):
        return f"the grant was revoked because {record.requester} is no longer eligible ({reason})"
    if reason == "drift":
        finding = f" {data['id']}" if data.get("id") else ""
        return f"the grant was revoked for drift{finding}" + (f": {data['comment']}" if data.get("comment") else "")
    if reason == "review":
        return f"the grant was revoked by access review {data.get('review_id') or ''}".rstrip()
    return f"the grant was revoked ({reason})" if reason else "the grant was revoked"


def expiry_notice(record: RequestRecord) -> Notice:
    """What the holder of a grant that expired is told (the expiry sweep's notice, and the drift pass's when it
    finds a grant past its end before the expiry sweep has recorded it)."""
    return Notice(record.requester, "status", f"{record.ref} expired: you were removed from {record.group}.",
                  record.id)


STANDING = 0  # the request_id of an operation on a membership that no grant holds


async def plan_membership_add(repo: Repository, provider: str, group: str, email: str, reason: str,
                              now: datetime) -> OpRecord:
    """Record the re-adding of a membership that no grant holds (``membership.added`` {reason} when done)."""
    op = OpRecord(request_id=STANDING, op="add", provider=provider, group=group, email=email.lower(),
                  created_at=now, reason=reason)
    await repo.add_op(op)
    return op


async def plan_membership_removal(repo: Repository, provider: str, group: str, email: str, reason: str,
                                  now: datetime) -> OpRecord | None:
    """Record the removal of a standing membership (no grant behind it) through the provisioning intents.

    ``reason`` (``review``, ``terminated``, ``drift``) goes into ``membership.removed`` {provider, group,
    user, reason, correlation_id} when the provider has done it; failures are retried like a grant's
    removal and reported to the security team. Nothing is planned when a grant now covers the
    membership or the same removal is already pending.
    """
    email = email.lower()
    if await holding_group(repo, email, provider, group):
        return None
    # a removal already pending, a grant's or a standing one's (another process's sweep ended the grant a moment
    # ago and its call is at the provider), takes the member out: a second would remove them twice
    if any(o.op == "remove" for o in await ops_on_membership(repo, provider, group, email, ("pending",))):
        return None
    op = OpRecord(request_id=STANDING, op="remove", provider=provider, group=group, email=email, created_at=now,
                  reason=reason)
    await repo.add_op(op)
    return op


async def _claim_in(repo: Repository, op_id: int, now: datetime, lease: timedelta = LEASE
                    ) -> tuple[OpRecord | None, bool]:
    """Take a lease on a due operation so that no other process runs it at the same time.

    Returns the claimed operation (None when it is not due, not first in line for its membership,
    or no longer needed) and whether anything changed (an operation no longer needed is skipped).
    """
    op = await repo.get_op(op_id)
    if op is None or op.status != "pending":
        return None, False
    if op.next_attempt_at is not None and op.next_attempt_at > now:
        return None, False
    changed = False
    for earlier in [o for o in await ops_on_membership(repo, op.provider, op.group, op.email, ("pending",))
                    if (o.id or 0) < (op.id or 0)]:
        # a drift re-add queued ahead whose grant has ended is dropped, not left in front of the removal
        if earlier.in_flight(now) or not await _drop_unbacked_readd(repo, earlier, now):
            return None, changed  # an earlier call on this membership has not finished: it goes first
        changed = True
    if await _drop_unbacked_readd(repo, op, now):
        return None, True
    if op.op == "add" and op.request_id != STANDING:
        record = await repo.get_request(op.request_id)
        if record is None or record.state not in HOLDING_STATES:
            op.status, op.done_at = "skipped", now  # the grant ended before it was provisioned
            await repo.save_op(op)
            return None, True
    if op.op == "remove":
        # Another grant may have started covering this membership since the removal was planned.
        others = await holding_group(repo, op.email, op.provider, op.group)
        if any(o.id != op.request_id for o in others):
            op.status, op.done_at = "skipped", now
            await repo.save_op(op)
            return None, True
    if op.leased_until is not None:
        # an earlier claim never recorded its answer (its process stopped, or its lease ran out mid-call): that
        # attempt may have been carried out at the provider
        op.may_have_landed = True
    op.next_attempt_at = op.leased_until = now + lease
    op.attempts += 1
    op.correlation_id = op.correlation_id or uuid.uuid4().hex
    await repo.save_op(op)
    return op, False


def may_have_reached(op: OpRecord) -> bool:
    """Whether some attempt of ``op`` may have been carried out at the provider: one that may have landed
    unanswered (``may_have_landed``: a time-out, a dropped connection, a 500/502/504), or a claim whose answer is
    not recorded (its lease set: the call is at the provider now, or its process stopped mid-call). An operation
    never tried, or tried only to be turned away before anything was done (429, 503, another 4xx), has not."""
    return op.may_have_landed or (op.status == "pending" and op.leased_until is not None)


def is_readd(op: OpRecord) -> bool:
    """A drift re-add: a grant holder found not in their group, put back (handlers/compliance/settle.py)."""
    return op.op == "add" and op.request_id == STANDING and op.reason == "drift"


async def _drop_unbacked_readd(repo: Repository, op: OpRecord, now: datetime) -> bool:
    """Drop a pending drift re-add that no running grant backs any more (its grant expired, was released or
    revoked while it waited): it is not carried out, and ``membership.add_dropped`` {provider, group, user,
    reason, why, id, request_id, removal} records why. The finding is closed ``ended`` by the next drift sweep.
    False (and nothing changed) for any other operation, or a re-add a grant still backs.

    A re-add that may have reached the provider (:func:`may_have_reached`: an attempt that timed out or was
    answered 500/502/504, or a process that stopped mid-call) is undone as a grant's own add is: its removal is
    planned (``membership.removed`` reason ``drift``; ``removal: planned``), unless a grant holds the membership,
    a removal is already pending, or another add that is not a drift re-add waits on it (what that add is for wants
    the member in). One turned away at every attempt before anything was done (429, 503) added nothing: a
    membership the person holds outside the bot is left to drift detection."""
    if not is_readd(op) or op.status != "pending":
        return False
    if any(h.state == ACTIVE and (h.expires_at is None or h.expires_at > now)
           for h in await holding_group(repo, op.email, op.provider, op.group)):
        return False
    found = await readd_of(repo, op)
    state = found[1] if found else {}
    n = req_number(state.get("request_id"))
    why = not_running(await repo.get_request(n) if n is not None else None, state.get("request_id"), now) \
        if found else None
    reached = may_have_reached(op)
    op.status, op.done_at, op.next_attempt_at, op.leased_until = "skipped", now, None, None
    await repo.save_op(op)
    removal = None
    if reached and not any(o.op == "add" and not is_readd(o) for o in await ops_on_membership(
            repo, op.provider, op.group, op.email, ("pending",))):
        removal = await plan_membership_removal(repo, op.provider, op.group, op.email, "drift", now)
    data = {"provider": op.provider, "group": op.group, "user": op.email, "reason": op.reason,
            "why": why or "no active grant holds the membership", "correlation_id": op.correlation_id,
            "removal": "planned" if removal is not None else None}
    if found:
        data.update(id=drift_ref(found[0].id), request_id=state.get("request_id"))
    await repo.append("membership.add_dropped", actor=SYSTEM, ts=now, data={k: v for k, v in data.items() if v})
    return True


async def _call(deps: Deps, op: OpRecord) -> ProviderError | None:
    try:
        provider = deps.provider(op.provider)
        if op.op == "add":
            await provider.add_member(op.group, op.email)
        else:
            await provider.remove_member(op.group, op.email)
    except ProviderError as exc:
        return exc
    except LookupError as exc:
        return ProviderError(str(exc), transient=False)
    except Exception as exc:  # a bug or an unexpected answer: keep the intent, retry later
        # where the call stopped is not known: it may have been carried out
        return ProviderError(f"{type(exc).__name__}: {exc}", transient=True, may_have_landed=True)
    return None


async def run_op(deps: Deps, op_id: int, *, budget: timedelta | None = None) -> str:
    """Run one operation now if it is due, then what waited behind it on the same membership.

    Returns the operation's status afterwards: ``not-due`` when it could not run now (a retry
    later, or an earlier call on the membership still at the provider, whose process runs it next).
    """
    async with deps.store.write() as repo:
        op, _ = await _claim_in(repo, op_id, deps.now(), deps.policy.schedule.provider_lease)
    if op is None:
        async with deps.store.read() as repo:
            current = await repo.get_op(op_id)
        return "not-due" if current is None or current.status == "pending" else current.status
    error = await _call(deps, op)
    status = (await _record(deps, [(op, error)], budget))[0]
    if status != "pending":
        await run_due_ops(deps, member=op.member)
    if status == "superseded":
        async with deps.store.read() as repo:
            current = await repo.get_op(op_id)
        status = current.status if current else status
    return status


async def _record(deps: Deps, results: list[tuple[OpRecord, ProviderError | None]],
                  budget: timedelta | None = None) -> list[str]:
    """Record what the provider answered, one transaction for the lot."""
    budget = budget or deps.policy.schedule.retry_budget
    now = deps.now()
    notices: list[Notice] = []
    statuses = []
    async with deps.store.write() as repo:
        current = await repo.get_ops([claimed.id or 0 for claimed, _ in results])
        for claimed, error in results:
            op = current.get(claimed.id or 0)
            if op is None:
                statuses.append("missing")
                continue
            if op.status != "pending" or op.attempts != claimed.attempts:
                # our lease ran out and another process claimed the operation (and may have
                # finished it): its answer is the one on record, ours is dropped
                statuses.append("superseded")
                continue
            op.leased_until = None
            if error is None:
                statuses.append(await _done_in(deps, repo, op, now, notices))
            else:
                statuses.append(await _failed_in(deps, repo, op, error, budget, now, notices))
    await deps.notifier.notify(notices)
    if deps.observe is not None:
        for (op, error), status in zip(results, statuses, strict=True):
            deps.observe("provider_call", {"provider": op.provider, "op": op.op, "outcome": status,
                                           "retry": error is not None and status == "pending"})
    return statuses


async def _done_in(deps: Deps, repo: Repository, op: OpRecord, now: datetime, notices: list[Notice]) -> str:
    was_failing = op.failure_reported
    op.status, op.done_at, op.next_attempt_at, op.last_error = "done", now, None, None
    await repo.save_op(op)
    if op.request_id == STANDING:
        await repo.append("membership.added" if op.op == "add" else "membership.removed", actor=SYSTEM, ts=now, data={
            "provider": op.provider, "group": op.group, "user": op.email, "reason": op.reason,
            "correlation_id": op.correlation_id})
        if op.op == "remove":
            await _restore_for_holders(repo, op, now)  # a grant that began meanwhile keeps its membership
        elif op.reason == "drift":  # a holder put back: the finding resolved, and they and the team told
            await readd_landed(deps, repo, op, now)
        return "done"
    if op.op == "remove" and not was_failing:
        return "done"  # the grant was recorded ended when the removal was planned
    record = await repo.get_request(op.request_id)
    if record is None:
        return "done"
    if op.op == "add" and record.state == APPROVED:
        record.state = ACTIVE
        record.started_at = now
        record.expires_at = now + record.duration
        await repo.save_request(record)
        await repo.append("grant.provisioned", actor=SYSTEM, ts=now, request=record, data={
            "provider": record.provider, "group": record.group,
            "expires_at": _ts(record.expires_at), "correlation_id": op.correlation_id})
        notices.append(Notice(record.requester, "status",
                              f"{record.ref} is active: you are in {record.group} until "
                              f"{_ts(record.expires_at)}.", record.id))
    elif op.op == "add" and record.state not in HOLDING_STATES:
        await _undo_add(repo, op, record, now)  # ended while the add was in flight
    elif op.op == "remove" and was_failing:
        await repo.append("grant.revoke_completed", actor=SYSTEM, ts=now, request=record, data={
            "provider": op.provider, "group": op.group, "correlation_id": op.correlation_id})
    if op.op == "remove":
        await _restore_for_holders(repo, op, now)
    return "done"


async def _undo_add(repo: Repository, op: OpRecord, record: RequestRecord, now: datetime) -> None:
    """An add landed for a request that ended meanwhile: remove it again, unless a removal is
    already queued behind it (the end of the request queued one) or another grant needs it."""
    later = await ops_on_membership(repo, *op.member, ("pending",))
    if not any(o.op == "remove" and (o.id or 0) > (op.id or 0) for o in later):
        await plan_remove(repo, record, now)


async def _restore_for_holders(repo: Repository, op: OpRecord, now: datetime) -> None:
    """A removal finished: if a grant still holds this membership and no add is queued for it,
    put the membership back (the removal must not take what a newer grant was given)."""
    holders = [h for h in await holding_group(repo, op.email, op.provider, op.group) if h.id != op.request_id]
    if not holders:
        return
    later = await ops_on_membership(repo, *op.member, ("pending",))
    if any(o.op == "add" for o in later):
        return
    await repo.add_op(OpRecord(request_id=holders[0].id or 0, op="add", provider=op.provider, group=op.group,
                               email=op.email, created_at=now))


async def _failed_in(deps: Deps, repo: Repository, op: OpRecord, error: ProviderError, budget: timedelta,
                     now: datetime, notices: list[Notice]) -> str:
    op.last_error = str(error)[:1000]
    op.may_have_landed = op.may_have_landed or error.may_have_landed
    if error.correlation_id:
        op.correlation_id = error.correlation_id
    spent = now - op.created_at >= budget or not error.transient
    op.next_attempt_at = now + backoff(op.attempts, error.retry_after)
    record = await repo.get_request(op.request_id)
    if op.op == "add" and op.request_id != STANDING and record is not None and record.state not in HOLDING_STATES:
        return await _add_refused_after_ending(repo, op, record, spent, now)
    what = f"{op.op} {op.email} {'to' if op.op == 'add' else 'from'} {op.provider} group {op.group}"
    if spent and op.op == "add" and op.request_id == STANDING:
        op.status, op.next_attempt_at = "failed", None
        await repo.save_op(op)
        await repo.append("membership.add_failed", actor=SYSTEM, ts=now, data={
            "provider": op.provider, "group": op.group, "user": op.email, "reason": op.reason,
            "error": op.last_error, "correlation_id": op.correlation_id})
        notices += [Notice(m, "failure", f"Could not {what} (correlation id {op.correlation_id}): {op.last_error}.",
                           None) for m in sorted(deps.policy.security_members())]
        return "failed"
    if spent and op.op == "add":
        op.status, op.next_attempt_at = "failed", None
        await repo.save_op(op)
        if record is not None and record.state == APPROVED:
            record.state, record.ended_at, record.failure = FAILED, now, op.last_error
            await repo.save_request(record)
            # an attempt that may have been carried out unanswered (a time-out, a dropped connection, a 500/502/504, in
            # this attempt or an earlier one, the clients' own retries included) may have added them: as a grant ended
            # with its add at the provider, the removal follows (``membership.removed`` reason ``provision_failed``;
            # none when another grant holds the group). Attempts all refused before anything was done (429, 503, any
            # other 4xx) added nothing: a membership they held before the request is not theirs to remove.
            removal = await plan_membership_removal(repo, op.provider, op.group, op.email, "provision_failed", now) \
                if op.may_have_landed else None
            await repo.append("grant.provision_failed", actor=SYSTEM, ts=now, request=record, data={
                "provider": op.provider, "group": op.group, "error": op.last_error,
                "attempts": op.attempts, "correlation_id": op.correlation_id,
                **({"removal": "planned"} if removal is not None else {})})
            notices.append(Notice(record.requester, "status",
                                  f"{record.ref} failed: the provider refused to add you ({op.last_error}). "
                                  "The security team has been told.", record.id))
            notices += _tell_security(deps, record, f"Provisioning failed for {record.ref}: could not "
                                      f"{what} (correlation id {op.correlation_id}): {op.last_error}")
        return "failed"
    if spent and op.op == "remove" and not op.failure_reported:
        op.failure_reported = True
        if op.request_id == STANDING:
            await repo.append("membership.remove_failed", actor=SYSTEM, ts=now, data={
                "provider": op.provider, "group": op.group, "user": op.email, "reason": op.reason,
                "error": op.last_error, "attempts": op.attempts, "correlation_id": op.correlation_id,
                "will_retry": True})
            notices += [Notice(m, "failure", f"Removal is failing: could not {what} (correlation id "
                               f"{op.correlation_id}): {op.last_error}. It is retried until it succeeds.", None)
                        for m in sorted(deps.policy.security_members())]
        if record is not None:
            await repo.append("grant.revoke_failed", actor=SYSTEM, ts=now, request=record, data={
                "provider": op.provider, "group": op.group, "error": op.last_error,
                "attempts": op.attempts, "correlation_id": op.correlation_id, "will_retry": True})
            notices += _tell_security(deps, record, f"Revocation is failing for {record.ref}: could not "
                                      f"{what} (correlation id {op.correlation_id}): {op.last_error}. "
                                      "It is retried until it succeeds.")
    await repo.save_op(op)
    if is_readd(op):  # a holder put back: told that it is queued with the answer that leaves it so (readd.py)
        await readd_queued(deps, repo, op, now)
    return op.status


async def _add_refused_after_ending(repo: Repository, op: OpRecord, record: RequestRecord, spent: bool,
                                    now: datetime) -> str:
    """A grant's add answered with a failure after the grant ended (released, revoked, expired while the call was at
    the provider: :func:`end_membership` planned its removal to run after it). The add is not tried again (its next
    claim would skip it): it is over now, so what waits behind it runs without waiting for the add's backoff.

    The removal follows only if the bot may have added the member: this answer or an earlier one may have been
    carried out unanswered (``may_have_landed``: a time-out, a dropped connection, a 500/502/504, a claim with no
    recorded answer), another add of the grant may have, or the grant was provisioned. When every attempt was
    turned away before anything was done (429, 503, another 4xx), the removal is dropped in this transaction
    (``membership.remove_dropped`` {provider, group, user, why, error, attempts, correlation_id}): a membership
    the person held outside the bot is theirs, as when the grant ends with its add waiting. A leaver's (reason
    ``terminated``) and a review's removal stand: they remove the membership whoever gave it."""
    op.status, op.next_attempt_at = ("failed", None) if spent else ("skipped", None)
    if not spent:
        op.done_at = now
    await repo.save_op(op)
    if op.may_have_landed or record.started_at is not None or record.end_reason == "terminated":
        return op.status
    ops = await repo.ops_for(record.id or 0)
    if any(o.id != op.id and o.op == "add" and (o.status == "done" or may_have_reached(o)) for o in ops):
        return op.status
    if any(e.type.startswith("grant.") and e.data.get("reason") == "review" for e in await repo.events_for(
            record.id or 0)):
        return op.status
    for removal in ops:
        if removal.op != "remove" or removal.status != "pending" or (removal.id or 0) < (op.id or 0) \
                or removal.leased_until is not None:
            continue
        removal.status, removal.done_at, removal.next_attempt_at = "skipped", now, None
        await repo.save_op(removal)
        await repo.append("membership.remove_dropped", actor=SYSTEM, ts=now, request=record, data={
            "provider": removal.provider, "group": removal.group, "user": removal.email,
            "why": "the add was turned away at every attempt before anything was done: the bot added nothing "
                   "to remove",
            "error": op.last_error, "attempts": op.attempts, "correlation_id": op.correlation_id})
    return op.status


def _tell_security(deps: Deps, record: RequestRecord, text: str) -> list[Notice]:
    return [Notice(m, "failure", text, record.id) for m in sorted(deps.policy.security_members())]


def _ts(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None


async def run_due_ops(deps: Deps, *, limit: int = 500, chunk: int = 200,
                      member: tuple[str, str, str] | None = None) -> int:
    """Run every operation that is due (start-up repair and every sweep), or only those of one
    membership. Returns how many ran.

    Operations are claimed a chunk at a time, each only when it is first in line for its
    membership; a provider that can batch (``apply_batch``, such as Graph's ``$batch``) gets the
    chunk in one call, the others one call per operation. What waited behind a finished call is
    due at the next turn of the loop.
    """
    ran = 0
    lease = deps.policy.schedule.provider_lease
    while ran < limit:
        async with deps.store.read() as repo:
            due = await repo.due_ops(deps.now(), limit=min(chunk, limit - ran), member=member)
        if not due:
            break
        now = deps.now()
        claimed: list[OpRecord] = []
        changed = False
        async with deps.store.write() as repo:
            for d in due:
                op, skipped = await _claim_in(repo, d.id or 0, now, lease)
                changed = changed or skipped
                if op is not None:
                    claimed.append(op)
        if not claimed:
            if changed:
                continue  # skipped operations may have let the next ones in line through
            break
        by_provider: dict[str, list[OpRecord]] = {}
        for op in claimed:
            by_provider.setdefault(op.provider, []).append(op)
        results: list[tuple[OpRecord, ProviderError | None]] = []
        for name, ops in by_provider.items():
            provider = deps.providers.get(name)
            batch = getattr(provider, "apply_batch", None)
            if batch is not None and len(ops) > 1:
                try:
                    answers = await batch([(o.op, o.group, o.email) for o in ops])
                except ProviderError as exc:
                    answers = [exc] * len(ops)
                except Exception as exc:  # where the call stopped is not known: any of them may have been carried out
                    answers = [ProviderError(f"{type(exc).__name__}: {exc}", transient=True,
                                             may_have_landed=True)] * len(ops)
                results += list(zip(ops, answers, strict=True))
            else:
                results += [(o, await _call(deps, o)) for o in ops]
        await _record(deps, results)
        ran += len(claimed)
    return ran
