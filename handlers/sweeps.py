"""The unattended sweeps: expiry, termination, drift, reminders, and repair of provider calls.

A sweep judges what is due as of ``deps.judged_now()`` (``sweep --as-of``); everything it records
happens at the real now.

Each sweep reads what is due from the store and changes it in its own write transaction, so
running a sweep twice changes nothing more, and several processes may sweep the same database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from handlers.anchors import anchor_head
from handlers.approvals import (
    _chain,
    _fail,
    asked_at_open,
    card_holders,
    group_refusal,
    group_refusal_text,
    in_chain,
    last_asked,
    moved_data,
    open_step,
    reroute_step,
)
from handlers.audit import format_ts
from handlers.chains import ResolvedStep, open_step_unsatisfiable, pin_step, waiting_for
from handlers.compliance.accept_links import filed_by
from handlers.compliance.leavers import plan_leavers, terminate_inactive
from handlers.compliance.movers import plan_movers, revoke_ineligible
from handlers.compliance.reroute_brake import Reroute, may_reroute
from handlers.context import SYSTEM, Deps
from handlers.drift import detect_drift
from handlers.durations import format_duration
from handlers.grants import end_grant_in, expiry_notice, run_due_ops
from handlers.outbox import deliver_pending
from handlers.policy import Reminders
from handlers.ports import Notice, ProviderError
from handlers.records import ACTIVE, HOLDING_STATES, PENDING, RequestRecord
from handlers.repository import Repository

SEEN_EVENTS_KEPT = timedelta(days=1)


@dataclass
class SweepReport:
    as_of: datetime
    dry_run: bool
    expired: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # "email from provider/group": memberships no grant holds
    unconfirmed: list[str] = field(default_factory=list)  # not found at the IdP, within safety.unknown_grace
    drift: list[str] = field(default_factory=list)
    # what the sweep did for grant holders found not in their group: put back, queued, dropped, or the grant ended
    drift_settled: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    rerouted: list[str] = field(default_factory=list)  # a manager step passed to the requester's new manager
    reroutes_held: list[str] = field(default_factory=list)  # re-routes held by safety.max_reroutes
    warned: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reviews_started: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # "email: error" for each person the IdP could not answer for
    reviews_reminded: list[str] = field(default_factory=list)
    reviews_escalated: list[str] = field(default_factory=list)
    reviews_closed: list[str] = field(default_factory=list)
    repaired: int = 0
    paused: int = 0  # bulk removals held by the safety brake (SPEC §3.6)

    def lines(self) -> list[str]:
        verb = "would " if self.dry_run else ""
        out = [f"sweep as of {format_ts(self.as_of)}{' (dry run: nothing changed)' if self.dry_run else ''}"]
        for name, items in (("expire", self.expired), ("terminate", self.terminated), ("revoke", self.revoked),
                            ("remove", self.removed),
                            ("report drift", self.drift), ("remind", self.reminded),
                            ("escalate", self.escalated), ("reroute", self.rerouted), ("warn", self.warned),
                            ("fail", self.failed),
                            ("start review", self.reviews_started), ("remind reviewer", self.reviews_reminded),
                            ("escalate review", self.reviews_escalated), ("close review", self.reviews_closed)):
            out.append(f"{verb}{name}: {len(items)}" + (f" — {', '.join(items)}" if items else ""))
        if self.drift_settled:
            out.append(f"{verb}settle drift: {len(self.drift_settled)}")
            out += [f"  {line}" for line in self.drift_settled]
        if self.paused:
            out.append(f"removals paused by the safety brake: {self.paused} (say `resume removals` to run them)")
        if self.reroutes_held:
            out.append(f"re-routes held by the safety brake (safety.max_reroutes): {len(self.reroutes_held)} — "
                       f"{', '.join(self.reroutes_held)} (say `resume reroutes` to pass them on)")
        if self.unconfirmed:
            out.append(f"not found, waiting for the grace: {len(self.unconfirmed)} — {', '.join(self.unconfirmed)}")
        if self.unchecked:
            out.append(f"could not check: {len(self.unchecked)} — {'; '.join(self.unchecked)}")
        if self.repaired:
            out.append(f"provider calls retried: {self.repaired}")
        return out


async def _end(deps: Deps, record_id: int, state: str, event: str, now: datetime, data: dict, *,
               judged: datetime | None = None, due_at: datetime | None = None,
               tell: list[Notice] | None = None) -> bool:
    """End one grant if it is still holding (and, given ``due_at``, still due by then); True when this call
    ended it. ``now`` is the real instant recorded, ``judged`` the one judged as of.

    False when another process (a worker's sweep, ``accessbot sweep``, a release) ended it since it was
    read: that process tells the people concerned, so the caller tells nobody. ``tell``: notices written to the
    outbox with the end (handlers/outbox.py), sent once it is committed."""
    async with deps.store.write() as repo:
        return await end_in(repo, record_id, state, event, now, data, judged=judged, due_at=due_at, tell=tell or [])


async def end_in(repo: Repository, record_id: int, state: str, event: str, now: datetime, data: dict, *,
                 judged: datetime | None = None, due_at: datetime | None = None, tell: list[Notice] | None = None
                 ) -> bool:
    """:func:`_end` within a write transaction the caller holds (a leaver's whole termination is one). The
    notices (``tell``, and the closing of a pending extension's cards) are written with the end."""
    record = await repo.get_request(record_id)
    if record is None or record.state not in HOLDING_STATES:
        return False
    if due_at is not None and (record.state != ACTIVE or record.expires_at is None or record.expires_at > due_at):
        return False  # extended meanwhile
    await end_grant_in(repo, record, state, event, now, data, judged=judged, tell=tell or [])
    return True


async def expire_due(deps: Deps, report: SweepReport) -> None:
    judged = report.as_of  # what is due is judged as of the sweep's instant; what it records happens now
    async with deps.store.read() as repo:
        due = await repo.find_requests(states=(ACTIVE,), expires_before=judged)
    for record in due:
        if report.dry_run:
            report.expired.append(record.ref)
            continue
        told = expiry_notice(record)
        if not await _end(deps, record.id or 0, "expired", "grant.expired", deps.now(),
                          {"expires_at": format_ts(record.expires_at) if record.expires_at else None},
                          judged=judged, due_at=judged, tell=[told]):
            continue  # ended meanwhile by another process (which reports it and tells the requester), or extended
        report.expired.append(record.ref)
    if due and not report.dry_run:
        await run_due_ops(deps, limit=len(due) * 2 + 100)  # the removals, batched where the provider can
    if not report.dry_run:
        await deliver_pending(deps)  # the notices written with the expiries (and any a stopped process left)


def _same_step(fresh: RequestRecord, judged: RequestRecord) -> bool:
    """Re-read under the write lock, the request still waits on the step the sweep judged: another
    process (a decision, a cancel, another sweep) may have moved or ended it meanwhile."""
    return in_chain(fresh) and fresh.step == judged.step and fresh.round == judged.round


@dataclass
class _Waiting:
    """A request whose open step the reminders sweep judged: acted on once the sweep's re-routes are counted."""

    record: RequestRecord
    reminders: Reminders
    age: timedelta
    opened: datetime
    asked: frozenset[str] | None
    asked_when: datetime | None
    deciding: ResolvedStep
    used: set[str]
    reroute: Reroute | None = None  # the requester's manager changed while the step waited
    kept: list[str] = field(default_factory=list)  # whom the step asks while the brake holds its re-route


async def remind_pending(deps: Deps, report: SweepReport) -> None:
    now = report.as_of  # ages are judged as of the sweep's instant; a step reopened now opens now
    async with deps.store.read() as repo:
        waiting = await repo.find_requests(states=(PENDING, ACTIVE))
    judged: list[_Waiting] = []
    complete = True
    for record in waiting:
        if record.state == ACTIVE and not record.extension_pending:
            continue
        if report.dry_run and (record.ref in report.failed or record.ref in report.expired
                               or record.ref in report.revoked or record.requester in report.terminated):
            continue  # the sweep would have ended it (failed, expired, revoked, withdrawn with its leaver) by now
        if record.state == ACTIVE and group_refusal(deps, deps.policy, record) is not None:
            # the policy in force no longer grants the profile as the grant's group: the extension cannot be
            # executed, so its approvers are not kept asking (its last approval would fail it the same way)
            await _fail_moved_extension(deps, record, report)
            continue
        policy = await deps.policy_for(record)
        opened = record.step_opened_at or record.submitted_at
        try:  # the requester's and the approvers' look-ups: an IdP that cannot answer skips this request
            chain = await _chain(deps, record, held=False)  # as the directory says: the re-routes are judged here
            if not chain or record.step >= len(chain):
                continue
            async with deps.store.read() as repo:
                decisions = await repo.decisions(record.id or 0, record.round)
                asked, asked_when = await last_asked(repo, record)
                submitter = await filed_by(repo, record)  # who filed a drift accept counts as its requester
            earlier = {d.approver for d in decisions if d.step < record.step and d.decision == "approved"}
            earlier |= {submitter} if submitter else set()
            here = {d.approver for d in decisions if d.step == record.step and d.decision == "approved"}
            # Someone the step asked who is missing from the directory may come back: the step waits for
            # them. Someone found inactive cannot: the step fails closed; nor can someone missing whom the
            # leaver sweep has confirmed gone (missing for safety.unknown_grace, ``user.terminated``).
            missing = frozenset([a for a in sorted(asked or ()) if await deps.person(a) is None])
            missing -= await _confirmed_leavers(deps, missing)
            deciding = pin_step(chain[record.step], asked)
            chain[record.step] = waiting_for(pin_step(chain[record.step], asked, deciding.pool | missing), missing)
        except ProviderError as exc:  # judged again next sweep; the rest of the sweep goes on (SPEC §5)
            complete = False
            report.unchecked.append(f"{record.requester} ({record.ref}, reminders): "
                                    f"{str(exc)[:300] or type(exc).__name__}")
            continue
        bad = open_step_unsatisfiable(chain, record.step, earlier, here)
        if report.dry_run and bad is not None:  # said as the sweep would do it: failed, no one reminded
            report.failed.append(record.ref)  # (not named already: those are skipped above)
            continue
        if bad is not None:
            # An approver left since the step opened: fail closed rather than wait forever.
            async with deps.store.write() as repo:
                fresh = await repo.get_request(record.id or 0)
                # another sweep (another process) may have failed it meanwhile, or a decision ended it
                if fresh is not None and _same_step(fresh, record):
                    # whom the step asked and who can still read a card (not the approvers who left): their
                    # cards close with the failure, as a withdrawal closes them
                    holders = [a for a in await card_holders(repo, fresh, chain) if a in deciding.pool | here]
                    notices = await open_step(deps, repo, fresh, chain, earlier | here, deps.now())
                    if not in_chain(fresh):
                        what = "The extension of " if fresh.state == ACTIVE else ""
                        notices += [Notice(a, "outcome", f"{what}{fresh.ref} waiting on you was closed: it failed, "
                                           f"{bad.rule} can no longer be satisfied.", fresh.id) for a in holders]
                    await repo.queue_notices(notices, deps.now())
                    report.failed.append(fresh.ref)
            continue
        used = earlier | here
        item = _Waiting(record, policy.reminders, now - opened, opened, asked, asked_when, deciding, used)
        approvers = sorted(deciding.pool - used)
        if deciding.step.kind == "manager" and asked is not None and set(approvers) - asked:
            item.reroute = Reroute(record.ref, record.round, record.step + 1, tuple(sorted(asked - set(approvers))),
                                   tuple(sorted(set(approvers) - asked)))
            item.kept = sorted(asked - used)
        judged.append(item)
    # more re-routes at once than safety.max_reroutes: none of them runs (the provider may be answering wrong)
    wanted = [w.reroute for w in judged if w.reroute is not None]
    passing = await may_reroute(deps, wanted, dry_run=report.dry_run, complete=complete)
    for w in judged:
        await _remind_one(deps, report, w, passing)
    # a step failed closed, re-routed, an extension failed, a reminder, an escalation: each written to the outbox
    # with its record (handlers/outbox.py)
    if not report.dry_run:
        await deliver_pending(deps)


async def _confirmed_leavers(deps: Deps, emails: frozenset[str]) -> frozenset[str]:
    """Those of ``emails`` the leaver sweep terminated (``leavers.terminated_at``): gone for good, not a blip."""
    if not emails:
        return frozenset()
    async with deps.store.read() as repo:
        return frozenset([e for e in sorted(emails)
                          if (known := await repo.get_leaver(e)) is not None and known.terminated_at is not None])


async def _remind_one(deps: Deps, report: SweepReport, w: _Waiting, reroutes: bool) -> None:
    """Re-route, escalate or remind one judged request; ``reroutes``: the brake lets the sweep's re-routes run."""
    now, record, asked, used = report.as_of, w.record, w.asked, w.used
    marker = record.round * 100 + record.step
    approvers = sorted(w.deciding.pool - used)
    rerouted = False
    if w.reroute is not None and not reroutes:
        report.reroutes_held.append(record.ref)
        approvers = w.kept  # the step stays with the manager it asked: reminders and escalations name them
    elif w.reroute is not None:
        # the requester's manager changed while the step waited: the new one gets the card, the old one's
        # card says it is no longer theirs (a reminder would add nothing to the card just sent)
        report.rerouted.append(record.ref)
        rerouted = True
        if not report.dry_run:
            async with deps.store.write() as repo:
                fresh = await repo.get_request(record.id or 0)
                # another process may have re-routed it (or a decision moved it) since it was read
                if fresh is not None and _same_step(fresh, record) and await asked_at_open(repo, fresh) == asked:
                    await repo.queue_notices(
                        await reroute_step(deps, repo, fresh, w.deciding, asked or frozenset(), used, deps.now()),
                        deps.now())
                else:
                    report.rerouted.remove(record.ref)
    if w.age >= w.reminders.escalate_after and record.escalated_step != marker:
        report.escalated.append(record.ref)
        if not report.dry_run:
            await _once(deps, record, "escalated_step", marker, "approval.escalated", now, {
                "step": record.step + 1, "waiting_on": approvers, "age": format_duration(w.age)}, [
                Notice(m, "escalation", f"{record.ref} has waited {format_duration(w.age)} on step "
                       f"{record.step + 1} ({', '.join(approvers)}).", record.id)
                for m in sorted(deps.policy.security_members())])
    # a reminder counts from when the step asked whom it asks now (a re-route gives the new manager their time)
    elif not rerouted and now - max(w.opened, w.asked_when or w.opened) >= w.reminders.remind_after \
            and record.reminded_step != marker:
        report.reminded.append(record.ref)
        if not report.dry_run:
            await _once(deps, record, "reminded_step", marker, "approval.reminded", now,
                        {"step": record.step + 1, "approvers": approvers},
                        [Notice(a, "reminder", f"Reminder: {record.ref} waits for your decision.", record.id)
                         for a in approvers])


async def _once(deps: Deps, record: RequestRecord, field: str, marker: int, event: str, now: datetime,
                data: dict[str, object], notices: list[Notice]) -> None:
    """Record ``event`` and write its notices to the outbox once for the open step (``marker`` kept in the request's
    ``field``): not if another process did it meanwhile, or a decision moved the step on since it was read."""
    async with deps.store.write() as repo:
        fresh = await repo.get_request(record.id or 0)
        if fresh is None or getattr(fresh, field) == marker or not _same_step(fresh, record):
            return
        setattr(fresh, field, marker)
        await repo.save_request(fresh)
        await repo.append(event, actor=SYSTEM, ts=now, request=fresh, data=data)
        await repo.queue_notices(notices, deps.now())


async def _fail_moved_extension(deps: Deps, record: RequestRecord, report: SweepReport) -> None:
    """Fail the pending extension of a grant whose profile the policy in force moved to another group (or
    dropped): ``request.failed`` with the rule, the grant kept as it is; the requester and the open step's
    approvers are told (through the outbox, written with the failure)."""
    report.failed.append(record.ref)
    if report.dry_run:
        return
    now = deps.now()
    try:
        chain = await _chain(deps, record) or []
    except ProviderError:
        chain = []  # the approvers cannot be looked up now: their cards are redrawn all the same
    async with deps.store.write() as repo:
        # the policy in force once the write lock is held: a reload while the approvers were looked up (the
        # group moved back, say) is what judges the extension
        policy = deps.policy
        fresh = await repo.get_request(record.id or 0)
        if fresh is None or not _same_step(fresh, record) or fresh.state != ACTIVE:
            report.failed.remove(record.ref)
            return  # decided, withdrawn or ended meanwhile
        why = group_refusal(deps, policy, fresh)
        if why is None:
            report.failed.remove(record.ref)
            return
        waiting = await card_holders(repo, fresh, chain)  # whom the step asked, before its failure moves it on
        await _fail(repo, fresh, why, now, extra=moved_data(policy, fresh))
        text = (f"The extension of {record.ref} failed: {group_refusal_text(policy, record, why)}. The grant keeps "
                f"its expiry ({format_ts(record.expires_at) if record.expires_at else 'unchanged'}).")
        await repo.queue_notices([
            Notice(record.requester, "status", text, record.id),
            *(Notice(a, "outcome", f"The extension of {record.ref} waiting on you was closed: {why} (the policy "
                     f"changed).", record.id) for a in waiting)], now)


async def warn_expiring(deps: Deps, report: SweepReport) -> None:
    now = report.as_of
    horizon = now + deps.policy.schedule.expiry_warning
    async with deps.store.read() as repo:
        soon = await repo.find_requests(states=(ACTIVE,), expires_before=horizon)
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
            await repo.queue_notices([Notice(
                record.requester, "expiring", f"{record.ref} ({record.profile}) expires at "
                f"{format_ts(fresh.expires_at)}. Reply `extend {record.ref} by <duration>` for more time.",
                record.id)], deps.now())
    if not report.dry_run:
        await deliver_pending(deps)


async def forget_seen_events(deps: Deps) -> int:
    """Drop inbound event keys (Slack retries) older than a day: a signed request is refused after
    five minutes anyway, so an old key protects nothing."""
    async with deps.store.write() as repo:
        return await repo.forget_seen(deps.now() - SEEN_EVENTS_KEPT)


async def sweep(deps: Deps, *, dry_run: bool = False, drift: bool = True) -> SweepReport:
    """Expiry, termination, drift, reminders and repair, once, as of ``deps.judged_now()``."""
    report = SweepReport(as_of=deps.judged_now(), dry_run=dry_run)
    if not dry_run:
        report.repaired = await run_due_ops(deps)
    await expire_due(deps, report)
    await leavers_and_movers(deps, report)
    await remind_pending(deps, report)
    await warn_expiring(deps, report)
    if drift:
        await detect_drift(deps, report)
    await start_reviews(deps, report)
    if not dry_run:
        await forget_seen_events(deps)
    if not dry_run:
        await anchor_head(deps, as_of=report.as_of, failed=report.failed)
    await review_timers(deps, report)
    return report


async def leavers_and_movers(deps: Deps, report: SweepReport) -> None:
    """The leavers' and the movers' removals of one sweep, counted together against the safety brake (SPEC §3.6):
    what ``accessbot sweep`` and the server's termination job both run. Group names left unresolved at the load
    (the provider did not answer) are resolved first; one that still is judges nobody (``could not check``)."""
    from handlers.group_resolution import resolve_pending

    await resolve_pending(deps, persist=not report.dry_run)
    leaving, moving = await plan_leavers(deps, report), await plan_movers(deps, report)
    together = len(leaving[1]) + len(moving[0])
    await terminate_inactive(deps, report, leaving, together)
    await revoke_ineligible(deps, report, moving, together)
    if deps.end_inactive_sessions is not None and not report.dry_run:
        try:  # a dashboard cookie must not outlive its person's disable, whether or not it was shown meanwhile
            await deps.end_inactive_sessions(deps)
        except Exception as exc:  # the sweep's removals stand; the sessions are checked again next time
            report.failed.append(f"dashboard sessions not checked: {type(exc).__name__}: {exc}"[:300])


async def start_reviews(deps: Deps, report: SweepReport) -> None:
    """The scheduled review campaigns due as of the sweep's instant (SPEC §7)."""
    from handlers.reviews.timers import start_scheduled

    started, failed = await start_scheduled(deps, report.as_of, dry_run=report.dry_run)
    report.reviews_started += started
    report.failed += failed


async def review_timers(deps: Deps, report: SweepReport) -> None:
    """The open campaigns' reminders, escalations and closes as of the sweep's instant (SPEC §7)."""
    from handlers.reviews.progress import run_review_timers

    timers = await run_review_timers(deps, report.as_of, dry_run=report.dry_run)
    report.reviews_reminded += timers.reminded
    report.reviews_escalated += timers.escalated
    report.reviews_closed += timers.closed
    report.paused += timers.paused
    report.failed += timers.failed
    report.unchecked += timers.unchecked
