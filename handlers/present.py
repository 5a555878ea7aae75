"""Building view-models from records."""

from __future__ import annotations

from datetime import datetime, timedelta

from handlers.audit import format_ts
from handlers.chains import PINNED_KINDS, ResolvedStep, pin_step, resolve_chain
from handlers.context import Deps, scope_cache
from handlers.durations import format_duration
from handlers.policy import Policy, Profile, Step
from handlers.ports import Person
from handlers.records import ACTIVE, DENIED, PENDING, AuditEvent, DecisionRecord, RequestRecord
from handlers.views import EventView, RequestView, StepView


def chain_of(policy: Policy, record: RequestRecord) -> tuple[Step, ...]:
    profile = policy.profile(record.profile)
    if profile is None:
        return ()
    if record.kind == "exception" and profile.exception is not None:
        return profile.exception.approval
    return profile.approval


def time_left(expires_at: datetime | None, now: datetime) -> str | None:
    if expires_at is None:
        return None
    left = expires_at - now
    if left <= timedelta(0):
        return "expired"
    return format_duration(timedelta(seconds=max(60, int(left.total_seconds()) // 60 * 60)))


def event_summary(ev: AuditEvent) -> str:
    d = ev.data
    parts = [f"{k}={d[k]}" for k in ("step", "rule", "reason", "comment", "expires_at", "duration")
             if d.get(k) not in (None, "")]
    # who a re-routed step was taken from and given to (``approval.rerouted``): who was asked when
    parts += [f"{k}={';'.join(str(x) for x in d[k])}" for k in ("from", "to")
              if isinstance(d.get(k), list) and d[k]]
    if d.get("extension"):
        parts.append("extension")
    return ", ".join(str(p) for p in parts)


def person_facts(person: Person | None) -> tuple[tuple[str, str], ...]:
    if person is None:
        return ()
    facts = [("department", person.department), ("title", person.title),
             ("employment_type", person.employment_type), ("manager", person.manager)]
    return tuple((k, str(v)) for k, v in facts if v)


async def resolved_chain(deps: Deps, policy: Policy, profile: Profile | None, record: RequestRecord,
                         requester: Person | None, *, held: bool = True) -> list[ResolvedStep]:
    """The request's chain (of its current round) as the policy and the directory say now: resolved once
    per look-up scope (a command, a click, a sweep), as each person in it is looked up once.

    An open ``manager`` step whose re-route the safety brake holds stays with the manager it asked
    (``held=False``: as the directory says, for the sweep that judges the re-routes)."""
    from handlers.compliance.reroute_brake import pin_held

    if profile is None or requester is None:
        return []
    scope = scope_cache()
    key = ("chain", id(policy), record.id, record.round, record.kind, requester.email)
    if scope is not None and record.id is not None and key in scope:
        chain = list(scope[key])  # a copy: a decision pins its open step in the list it gets
    else:
        chain = await resolve_chain(chain_of(policy, record), policy=policy, profile=profile,
                                    requester=requester, directory=deps.directory)
        if scope is not None and record.id is not None:
            scope[key] = tuple(chain)
    waiting = record.state == PENDING or (record.state == ACTIVE and record.extension_pending)
    return await pin_held(deps, record, chain) if held and waiting else chain


async def _asked(deps: Deps, record: RequestRecord) -> frozenset[str] | None:
    """Whom the open step asked, as a decision reads it (``approvals.asked_at_open``): from the request when it
    names that step, else from its events (a request asked before ``requests.asked`` was kept)."""
    if record.asked_now is not None:
        return record.asked_now
    from handlers.approvals import asked_at_open

    async with deps.store.read() as repo:
        return await asked_at_open(repo, record)


async def _filer(deps: Deps, record: RequestRecord) -> str | None:
    """The security team member who filed this exception by ``drift accept`` (None for any other request)."""
    if record.kind != "exception":
        return None
    from handlers.compliance.accept_links import filed_by

    async with deps.store.read() as repo:
        return await filed_by(repo, record)


async def request_view(deps: Deps, record: RequestRecord, *, decisions: list[DecisionRecord] | None = None,
                       events: list[AuditEvent] | None = None) -> RequestView:
    policy = await deps.policy_for(record)
    profile = policy.profile(record.profile)
    requester = await deps.person(record.requester)
    in_chain = record.state == PENDING or (record.state == ACTIVE and record.extension_pending)
    # The steps shown: a pending extension's own, else those of the request itself (round 0), which
    # granted the access; a withdrawn or denied extension leaves them as they were.
    shown = record.round if in_chain else 0
    if decisions is None:
        async with deps.store.read() as repo:
            decisions = await repo.decisions(record.id or 0, shown)
    this_round = [d for d in decisions if d.round == shown]
    steps: list[StepView] = []
    chain = await resolved_chain(deps, policy, profile, record, requester)
    at = record.step if shown == record.round else len(chain)  # the open step of the round shown
    if in_chain and at < len(chain) and chain[at].step.kind in PINNED_KINDS:
        # an all_of / n_of step is decided by the people it asked when it opened (approvals.decide pins it the same
        # way, from the same record, or from its events for a request written before the record kept them): nobody
        # else is shown as able to decide it, nor offered its buttons
        chain[at] = pin_step(chain[at], await _asked(deps, record))
    # who filed a drift accept counts as its requester (approvals.decide refuses them): not shown as able to decide
    used: set[str] = {filer} if in_chain and (filer := await _filer(deps, record)) else set()
    for rs in chain:
        approved = tuple(d.approver for d in this_round if d.step == rs.index and d.decision == "approved")
        denied = any(d.step == rs.index and d.decision == "denied" for d in this_round)
        pool = tuple(sorted(rs.pool - used)) if rs.index >= at else tuple(sorted(rs.pool))
        used.update(approved)
        if denied:
            status = "denied"
        elif rs.index < at or (not in_chain and record.state != DENIED and record.approved_at):
            status = "done"
        elif in_chain and rs.index == at:
            status = "open"
        elif in_chain:
            status = "waiting"
        else:
            status = "skipped" if record.state != DENIED else "waiting"
        held_for = tuple(sorted(rs.held_for)) if status == "open" and rs.held_for and rs.held_for != rs.pool else ()
        steps.append(StepView(index=rs.index + 1, label=rs.label, approvers=pool, approved_by=approved,
                              need=rs.need, status=status, held_for=held_for))
    open_step = next((s for s in steps if s.status == "open"), None)
    waiting = tuple(a for a in open_step.approvers if a not in open_step.approved_by) if open_step else ()
    now = deps.now()
    return RequestView(
        id=record.ref, number=record.id or 0, requester=record.requester,
        requester_name=(requester.name if requester and requester.name else record.requester),
        profile=record.profile, profile_title=profile.title if profile else record.profile,
        risk=profile.risk if profile else "unknown", kind=record.kind, state=record.state,
        duration=format_duration(record.duration), justification=record.justification,
        ticket=record.ticket, submitted_at=format_ts(record.submitted_at), provider=record.provider,
        group=record.group, policy_version=record.policy_version, steps=tuple(steps),
        expires_at=format_ts(record.expires_at) if record.expires_at else None,
        time_left=time_left(record.expires_at, now) if record.state == ACTIVE else None,
        extension=format_duration(record.ext_duration) if record.ext_duration else None,
        round=record.round, end_reason=record.end_reason, facts=person_facts(requester),
        events=tuple(EventView(e.seq, e.ts, e.type, e.actor, event_summary(e)) for e in events or ()),
        waiting_on=waiting,
    )
