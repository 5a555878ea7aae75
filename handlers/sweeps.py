"""The unattended sweeps: expiry, termination, drift, reminders, and repair of provider calls.

Each sweep reads what is due from the store and changes it in its own write transaction, so
running a sweep twice changes nothing more, and several processes may sweep the same database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from handlers.approvals import _chain, open_step
from handlers.audit import format_ts
from handlers.chains import open_step_unsatisfiable
from handlers.context import SYSTEM, Deps
from handlers.durations import format_duration
from handlers.grants import end_grant_in, run_due_ops
from handlers.ports import Notice
from handlers.records import ACTIVE, APPROVED, CANCELLED, HOLDING_STATES, PENDING, DriftRecord, RequestRecord
from handlers.reviews.queries import kept_by_review


@dataclass
class SweepReport:
    as_of: datetime
    dry_run: bool
    expired: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reviews_started: list[str] = field(default_factory=list)
    reviews_reminded: list[str] = field(default_factory=list)
    reviews_escalated: list[str] = field(default_factory=list)
    reviews_closed: list[str] = field(default_factory=list)
    repaired: int = 0

    def lines(self) -> list[str]:
        verb = "would " if self.dry_run else ""
        out = [f"sweep as of {format_ts(self.as_of)}{' (dry run: nothing changed)' if self.dry_run else ''}"]
        for name, items in (("expire", self.expired), ("terminate", self.terminated), ("revoke", self.revoked),
                            ("report drift", self.drift), ("remind", self.reminded),
                            ("escalate", self.escalated), ("warn", self.warned), ("fail", self.failed),
                            ("start review", self.reviews_started), ("remind reviewer", self.reviews_reminded),
                            ("escalate review", self.reviews_escalated), ("close review", self.reviews_closed)):
            out.append(f"{verb}{name}: {len(items)}" + (f" — {', '.join(items)}" if items else ""))
        if self.repaired:
            out.append(f"provider calls retried: {self.repaired}")
        return out


async def _end(deps: Deps, record_id: int, state: str, event: str, now: datetime, data: dict) -> int | None:
    """End one grant if it is still holding; returns the removal op to run, if any."""
    async with deps.store.write() as repo:
        record = await repo.get_request(record_id)
        if record is None or record.state not in HOLDING_STATES:
            return None
        op = await end_grant_in(repo, record, state, event, now, data)
        return op.id if op else None


async def expire_due(deps: Deps, report: SweepReport) -> None:
    now = report.as_of
    async with deps.store.read() as repo:
        due = await repo.find_requests(states=(ACTIVE,), expires_before=now)
    notices = []
    for record in due:
        report.expired.append(record.ref)
        if report.dry_run:
            continue
        await _end(deps, record.id or 0, "expired", "grant.expired", now,
                   {"expires_at": format_ts(record.expires_at) if record.expires_at else None})
        notices.append(Notice(record.requester, "status", f"{record.ref} expired: you were removed from "
                              f"{record.group}.", record.id))
    if due and not report.dry_run:
        await run_due_ops(deps, limit=len(due) * 2 + 100)  # the removals, batched where the provider can
    await deps.notifier.notify(notices)


async def terminate_inactive(deps: Deps, report: SweepReport) -> None:
    now = report.as_of
    async with deps.store.read() as repo:
        open_records = await repo.find_requests(states=(PENDING, APPROVED, ACTIVE))
    by_user: dict[str, list[RequestRecord]] = {}
    for r in open_records:
        by_user.setdefault(r.requester, []).append(r)
    notices: list[Notice] = []
    for email, records in sorted(by_user.items()):
        person = await deps.person(email)
        if person is not None and person.active:
            continue
        report.terminated.append(email)
        holding = [r for r in records if r.state in HOLDING_STATES]
        report.revoked += [r.ref for r in holding]
        if report.dry_run:
            continue
        async with deps.store.write() as repo:
            await repo.append("user.terminated", actor=SYSTEM, ts=now, data={
                "user": email, "found": person is not None,
                "grants": [r.ref for r in holding], "pending": [r.ref for r in records if r.state == PENDING]})
            for r in records:
                fresh = await repo.get_request(r.id or 0)
                if fresh is not None and fresh.state == PENDING:
                    fresh.state, fresh.ended_at, fresh.end_reason = CANCELLED, now, "terminated"
                    await repo.save_request(fresh)
                    await repo.append("request.cancelled", actor=SYSTEM, ts=now, request=fresh,
                                      data={"reason": "terminated"})
        for r in holding:
            await _end(deps, r.id or 0, "revoked", "grant.revoked", now, {"reason": "terminated"})
        await run_due_ops(deps)
        revoked = ", ".join(r.ref for r in holding) or "nothing"
        notices += [Notice(m, "info", f"{email} is no longer active: revoked {revoked}.", None)
                    for m in sorted(deps.policy.security_members())]
    await deps.notifier.notify(notices)


async def detect_drift(deps: Deps, report: SweepReport) -> None:
    """Members of managed groups with no active grant behind them; each finding reported once."""
    now = report.as_of
    managed = sorted({(p.provider, p.group) for p in deps.policy.profiles})
    async with deps.store.read() as repo:
        holding = await repo.find_requests(states=HOLDING_STATES)
        open_findings = await repo.open_drift()
        kept = await kept_by_review(repo)
    # a standing membership kept by the latest closed review of it is not drift until the next campaign
    covered = {(r.provider, r.group, r.requester) for r in holding} | kept
    known = {(d.provider, d.group, d.email): d for d in open_findings}
    seen: set[tuple[str, str, str]] = set()
    new: list[tuple[str, str, str]] = []
    for provider_name, group in managed:
        provider = deps.providers.get(provider_name)
        if provider is None:
            continue
        try:
            members = await provider.list_members(group)
        except Exception as exc:  # a provider that cannot answer now is tried again next sweep
            report.failed.append(f"drift {provider_name}/{group}: {exc}")
            continue
        for email in members:
            key = (provider_name, group, email.lower())
            if key in covered:
                continue
            seen.add(key)
            if key not in known:
                new.append(key)
                report.drift.append(f"{email} in {provider_name}/{group}")
        for key, finding in known.items():
            if key[:2] == (provider_name, group) and key not in seen and finding.id is not None and not report.dry_run:
                async with deps.store.write() as repo:
                    await repo.resolve_drift(finding.id, now)
                    await repo.append("drift.resolved", actor=SYSTEM, ts=now, data={
                        "provider": key[0], "group": key[1], "user": key[2]})
    if report.dry_run or not new:
        return
    async with deps.store.write() as repo:
        for provider_name, group, email in new:
            await repo.add_drift(DriftRecord(provider=provider_name, group=group, email=email, first_seen=now))
            await repo.append("drift.detected", actor=SYSTEM, ts=now, data={
                "provider": provider_name, "group": group, "user": email})
    text = "Drift: " + "; ".join(f"{e} is in {p}/{g} with no active grant" for p, g, e in new)
    await deps.notifier.notify([Notice(m, "drift", text, None) for m in sorted(deps.policy.security_members())])


async def remind_pending(deps: Deps, report: SweepReport) -> None:
    now = report.as_of
    async with deps.store.read() as repo:
        waiting = await repo.find_requests(states=(PENDING, ACTIVE))
    notices: list[Notice] = []
    for record in waiting:
        if record.state == ACTIVE and not record.extension_pending:
            continue
        policy = await deps.policy_for(record)
        opened = record.step_opened_at or record.submitted_at
        marker = record.round * 100 + record.step
        age = now - opened
        chain = await _chain(deps, record)
        if not chain or record.step >= len(chain):
            continue
        async with deps.store.read() as repo:
            decisions = await repo.decisions(record.id or 0, record.round)
        earlier = {d.approver for d in decisions if d.step < record.step and d.decision == "approved"}
        here = {d.approver for d in decisions if d.step == record.step and d.decision == "approved"}
        if not report.dry_run and open_step_unsatisfiable(chain, record.step, earlier, here) is not None:
            # An approver left since the step opened: fail closed rather than wait forever.
            async with deps.store.write() as repo:
                fresh = await repo.get_request(record.id or 0)
                if fresh is not None and fresh.step == record.step and fresh.round == record.round:
                    notices += await open_step(deps, repo, fresh, chain, earlier | here, now)
                    report.failed.append(fresh.ref)
            continue
        used = earlier | here
        approvers = sorted(chain[record.step].pool - used)
        if age >= policy.reminders.escalate_after and record.escalated_step != marker:
            report.escalated.append(record.ref)
            if not report.dry_run:
                async with deps.store.write() as repo:
                    fresh = await repo.get_request(record.id or 0)
                    if fresh is None or fresh.escalated_step == marker:
                        continue
                    fresh.escalated_step = marker
                    await repo.save_request(fresh)
                    await repo.append("approval.escalated", actor=SYSTEM, ts=now, request=fresh, data={
                        "step": record.step + 1, "waiting_on": approvers, "age": format_duration(age)})
                notices += [Notice(m, "escalation", f"{record.ref} has waited {format_duration(age)} on step "
                                   f"{record.step + 1} ({', '.join(approvers)}).", record.id)
                            for m in sorted(deps.policy.security_members())]
        elif age >= policy.reminders.remind_after and record.reminded_step != marker:
            report.reminded.append(record.ref)
            if not report.dry_run:
                async with deps.store.write() as repo:
                    fresh = await repo.get_request(record.id or 0)
                    if fresh is None or fresh.reminded_step == marker:
                        continue
                    fresh.reminded_step = marker
                    await repo.save_request(fresh)
                    await repo.append("approval.reminded", actor=SYSTEM, ts=now, request=fresh,
                                      data={"step": record.step + 1, "approvers": approvers})
                notices += [Notice(a, "reminder", f"Reminder: {record.ref} waits for your decision.", record.id)
                            for a in approvers]
    await deps.notifier.notify(notices)


async def warn_expiring(deps: Deps, report: SweepReport) -> None:
    now = report.as_of
    horizon = now + deps.policy.schedule.expiry_warning
    async with deps.store.read() as repo:
        soon = await repo.find_requests(states=(ACTIVE,), expires_before=horizon)
    notices = []
    for record in soon:
        if record.expires_at is None or record.expires_at <= now or record.warned_expiry == record.expires_at:
            continue
        report.warned.append(record.ref)
        if report.dry_run:
            continue
        async with deps.store.write() as repo:
            fresh = await repo.get_request(record.id or 0)
            if fresh is None or fresh.warned_expiry == fresh.expires_at:
                continue
            fresh.warned_expiry = fresh.expires_at
            await repo.save_request(fresh)
        notices.append(Notice(record.requester, "expiring", f"{record.ref} ({record.profile}) expires at "
                              f"{format_ts(record.expires_at)}. Reply `extend {record.ref} by <duration>` "
                              "for more time.", record.id))
    await deps.notifier.notify(notices)


async def sweep(deps: Deps, *, dry_run: bool = False, drift: bool = True) -> SweepReport:
    """Expiry, termination, drift, reminders and repair, once, as of ``deps.now()``."""
    report = SweepReport(as_of=deps.now(), dry_run=dry_run)
    if not dry_run:
        report.repaired = await run_due_ops(deps)
    await expire_due(deps, report)
    await terminate_inactive(deps, report)
    await remind_pending(deps, report)
    await warn_expiring(deps, report)
    if drift:
        await detect_drift(deps, report)
    from handlers.reviews.progress import run_review_timers  # the review timers (SPEC §7)
    from handlers.reviews.timers import start_scheduled

    started, failed = await start_scheduled(deps, report.as_of, dry_run=dry_run)
    report.reviews_started += started
    report.failed += failed
    timers = await run_review_timers(deps, report.as_of, dry_run=dry_run)
    report.reviews_reminded += timers.reminded
    report.reviews_escalated += timers.escalated
    report.reviews_closed += timers.closed
    report.failed += timers.failed
    return report
