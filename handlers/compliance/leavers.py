"""Leavers (SPEC §3.6): a person the identity provider reports inactive loses, at the sweep that sees
it, every active grant and every other membership of a managed group, standing or added outside the
bot. A person the identity provider no longer finds is a leaver only after two sweeps at least
``safety.unknown_grace`` apart: a renamed login or a half-written directory file revokes nobody at once.
The people open approval steps asked are judged too, holding something or not: an open step stops waiting for
one once they are terminated (handlers/sweeps.py ``remind_pending``).

Grants end as a revocation does (``grant.revoked`` reason ``terminated``); every other membership is
removed on the provisioning path of grants (``plan_membership_removal``), recorded as
``membership.removed`` reason ``terminated`` when the provider has done it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.approvals import card_holders, last_asked
from handlers.audit import format_ts
from handlers.compliance.brake import may_remove
from handlers.context import SYSTEM, Deps
from handlers.grants import plan_membership_removal, run_due_ops
from handlers.ports import Notice, Person
from handlers.records import ACTIVE, APPROVED, CANCELLED, HOLDING_STATES, PENDING, LeaverRecord, RequestRecord

if TYPE_CHECKING:
    from handlers.sweeps import SweepReport

Membership = tuple[str, str]  # (provider, group)


async def managed_memberships(deps: Deps, report: SweepReport) -> dict[str, set[Membership]]:
    """Who is in which managed group now, by email (a group that cannot be listed is named in the report)."""
    out: dict[str, set[Membership]] = {}
    for provider_name, group in sorted({(p.provider, p.group) for p in deps.policy.profiles}):
        provider = deps.providers.get(provider_name)
        if provider is None:
            continue
        try:
            members = await provider.list_members(group)
        except Exception as exc:  # that group is looked at again next sweep; the others go on
            report.failed.append(f"leavers {provider_name}/{group}: {str(exc)[:300] or type(exc).__name__}")
            continue
        for email in members:
            out.setdefault(email.lower(), set()).add((provider_name, group))
    return out


async def _is_leaver(deps: Deps, email: str, person: Person | None, report: SweepReport) -> LeaverRecord | None:
    """Track a person not active at the identity provider; the record when they are a leaver now. Someone
    terminated who comes back (rehired, or re-enabled) is forgotten when a sweep finds them active, or when they
    ask for access and the identity provider says so then (``handlers.requests.submit``): a new departure is
    judged, and recorded, afresh."""
    now, judged = deps.now(), report.as_of
    async with deps.store.read() as repo:
        known = await repo.get_leaver(email)
    if person is not None and person.active:
        if known is not None and not report.dry_run:  # found active again (back, or rehired after leaving): the
            async with deps.store.write() as repo:  # grace starts over, and a new departure is a new termination
                await repo.forget_leaver(email)
        return None
    found = person is not None
    # Someone a sweep saw inactive is a leaver for good: deleted since (deactivate, then delete), they do not wait
    # for the unknown grace again, and the clock of their termination still runs from that first sweep. Only one
    # who was missing and is now found inactive starts afresh.
    if known is None or (known.terminated_at is None and not known.found and found):
        # a sweep dated back (``--as-of`` in the past) read the source now: its grace starts now, not then
        known = LeaverRecord(email=email, found=found, first_seen=now, first_judged=max(judged, now))
        if not report.dry_run:
            async with deps.store.write() as repo:
                await repo.save_leaver(known)
    if (known.terminated_at is None and not found and not known.found
            and judged - known.first_judged < deps.policy.safety.unknown_grace):
        report.unconfirmed.append(email)
        return None
    return known


Due = list[tuple[str, "Person | None", LeaverRecord, list[RequestRecord], list[Membership]]]


async def plan_leavers(deps: Deps, report: SweepReport) -> tuple[Due, list[str], bool]:
    """The leavers of this sweep, their removals (``user from provider/group``), and whether everyone could be
    judged (no person lookup or group listing failed)."""
    failed_before, unchecked_before = len(report.failed), len(report.unchecked)
    asked: set[str] = set()  # the approvers open steps wait for: one gone for good stops holding the step
    async with deps.store.read() as repo:
        open_records = await repo.find_requests(states=(PENDING, APPROVED, ACTIVE))
        for r in open_records:
            if r.state == PENDING or (r.state == ACTIVE and r.extension_pending):
                asked |= (await last_asked(repo, r))[0] or frozenset()
    by_user: dict[str, list[RequestRecord]] = {}
    for r in open_records:
        by_user.setdefault(r.requester, []).append(r)
    members = await managed_memberships(deps, report)
    due: Due = []
    for email in sorted(set(by_user) | set(members) | asked):
        records = by_user.get(email, [])
        try:
            person = await deps.person(email)
        except Exception as exc:  # one person the IdP cannot answer for must not shield everyone after them
            report.unchecked.append(f"{email}: {str(exc)[:300] or type(exc).__name__}")
            continue
        leaver = await _is_leaver(deps, email, person, report)
        if leaver is None:
            continue
        holding = [r for r in records if r.state in HOLDING_STATES]
        held = {deps.groups.ident(r.provider, r.group) for r in holding}  # by the group's id, not its spelling
        standing = sorted(m for m in members.get(email, set()) if deps.groups.ident(*m) not in held)
        if leaver.terminated_at is not None and not records and not standing:
            continue
        due.append((email, person, leaver, records, standing))
    removals = [f"{email} from {r.provider}/{r.group}" for email, _, _, records, _ in due
                for r in records if r.state in HOLDING_STATES]
    removals += [f"{email} from {p}/{g}" for email, _, _, _, standing in due for p, g in standing]
    complete = len(report.failed) == failed_before and len(report.unchecked) == unchecked_before
    return due, removals, complete


async def terminate_inactive(deps: Deps, report: SweepReport, plan: tuple[Due, list[str], bool],
                             together: int) -> None:
    """Revoke every grant and remove every other managed membership of each leaver (``plan``: as
    :func:`plan_leavers` found them; ``together``: the sweep's removals, leavers and movers, for the brake)."""
    from handlers.outbox import deliver_pending
    from handlers.sweeps import end_in  # ending a grant is shared with expiry and revoke

    now = deps.now()
    due, removals, complete = plan
    if not await may_remove(deps, len(removals), removals, "terminated", dry_run=report.dry_run,
                            together=together, complete=complete):
        report.paused += len(removals)
        return
    for email, person, leaver, records, standing in due:
        holding = [r for r in records if r.state in HOLDING_STATES]
        report.terminated.append(email)
        report.revoked += [r.ref for r in holding]
        report.removed += [f"{email} from {p}/{g}" for p, g in standing]
        if report.dry_run:
            continue
        # One transaction per leaver: the termination, the cancellations, the revocations, the removals planned
        # and the security team's notice (in the outbox, handlers/outbox.py) are recorded together or not at all.
        # What this sweep recorded decides what it tells: another process may have done the rest.
        async with deps.store.write() as repo:
            first_time = False
            fresh_leaver = await repo.get_leaver(email)
            if fresh_leaver is not None and fresh_leaver.terminated_at is None:
                first_time = True
                fresh_leaver.terminated_at = now
                await repo.save_leaver(fresh_leaver)
                await repo.append("user.terminated", actor=SYSTEM, ts=now, data={
                    "user": email, "found": person is not None, "first_seen": format_ts(leaver.first_seen),
                    # hours since the first sweep that saw them (the termination SLA counts from there)
                    "inactive_hours": round((now - leaver.first_seen).total_seconds() / 3600, 3),
                    "grants": [r.ref for r in holding], "pending": [r.ref for r in records if r.state == PENDING],
                    "memberships": [f"{p}/{g}" for p, g in standing]})
            for r in records:
                fresh = await repo.get_request(r.id or 0)
                if fresh is not None and fresh.state == PENDING:
                    holders = await card_holders(repo, fresh, [])  # whom its open step asked: their cards close
                    fresh.state, fresh.ended_at, fresh.end_reason = CANCELLED, now, "terminated"
                    await repo.save_request(fresh)
                    await repo.append("request.cancelled", actor=SYSTEM, ts=now, request=fresh,
                                      data={"reason": "terminated"})
                    await repo.queue_notices([Notice(a, "outcome", f"{fresh.ref} was withdrawn: its requester is no "
                                                     "longer active.", fresh.id) for a in holders], now)
            ended = [r for r in holding
                     if await end_in(repo, r.id or 0, "revoked", "grant.revoked", now, {"reason": "terminated"})]
            planned = [f"{provider_name}/{group}" for provider_name, group in standing
                       if await plan_membership_removal(repo, provider_name, group, email, "terminated", now)]
            if first_time or ended or planned:
                revoked = ", ".join([r.ref for r in ended] + planned) or "nothing"
                await repo.queue_notices([Notice(m, "info", f"{email} is no longer active: revoked {revoked}.", None)
                                          for m in sorted(deps.policy.security_members())], now)
        await run_due_ops(deps)
    if not report.dry_run:
        await deliver_pending(deps)
