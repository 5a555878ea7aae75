"""Movers (SPEC §3.6): a grant whose holder is no longer eligible for its profile is revoked at the next sweep,
a running one or one approved whose add still waits for the provider (``grant.revoked`` reason
``ineligible: <rule>``); exceptions are exceptions and stay. A profile the policy in force no longer has is judged
by the version the grant was approved under. The holder and the security team are told. The removals count against
the safety brake.

A pending request whose requester is no longer eligible fails at the same sweep, as its last approval would fail
it (``request.failed`` with the rule, judged by the same function under the same policy version): its approvers
are not kept asking for something no approval can grant. The requester is told, the open step's approvers' cards
close. These failures count against the brake with the revocations (one each): an identity provider that suddenly
answers wrong for everyone must not withdraw everyone's pending requests either."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.approvals import _fail, card_holders, extension_refusal, no_longer_eligible
from handlers.compliance.brake import may_remove
from handlers.context import Deps
from handlers.eligibility import ineligibility, memberships_of
from handlers.grants import run_due_ops
from handlers.groups import CannotJudge
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from handlers.records import HOLDING_STATES, PENDING, RequestRecord

if TYPE_CHECKING:
    from handlers.sweeps import SweepReport


def mover_reason(why: str) -> str:
    """``ineligible: <rule>`` as §3.1 names it: the ``ineligible`` rule that matched, or ``not eligible``."""
    return why if why.startswith("ineligible: ") else "ineligible: not eligible"


async def plan_movers(deps: Deps, report: SweepReport) -> tuple[list[tuple[RequestRecord, str]], bool]:
    """The standard grants whose (active) holder the profile no longer admits, each with its reason, then the
    pending standard requests their last approval would fail for the same cause, each with its rule; and
    whether every holder and requester could be judged (no lookup failed)."""
    async with deps.store.read() as repo:  # approved too: an add the provider has not taken yet is not carried out
        active = await repo.find_requests(states=HOLDING_STATES)  # for someone the profile no longer admits
        pending = await repo.find_requests(states=(PENDING,))
    due: list[tuple[RequestRecord, str]] = []
    complete = True
    for record in active:
        if record.kind == "exception" or record.requester in report.terminated:
            continue
        # the policy in force judges; a profile it no longer has, by the version the grant was approved under (a
        # retired profile's holders still lose what they are no longer eligible for)
        profile = deps.policy.profile(record.profile) or (await deps.policy_for(record)).profile(record.profile)
        if profile is None:
            continue
        try:
            person = await deps.person(record.requester)
        except Exception:  # named by the leaver sweep already; judged again next sweep
            complete = False
            continue
        if person is None or not person.active:
            continue  # a leaver, or someone within the unknown grace: the leaver sweep decides
        try:
            why = ineligibility(profile, person, await memberships_of(deps, person.email, profile))
        except CannotJudge as exc:  # a group name not resolved, an attribute not supplied: nobody is judged by it
            report.unchecked.append(f"{record.requester} ({record.ref}, movers): {str(exc)[:300]}")
            complete = False
            continue
        if why is not None:
            due.append((record, mover_reason(why)))
    for record in pending:
        if record.kind == "exception" or record.requester in report.terminated:
            continue
        try:
            person = await deps.person(record.requester)
            if person is None or not person.active:
                continue  # a leaver, or someone within the unknown grace: the leaver sweep decides
            # what the last approval would say (handlers/approvals.py ``_final``): the version it was submitted under
            why = await extension_refusal(deps, await deps.policy_for(record), record, person)
        except CannotJudge as exc:
            report.unchecked.append(f"{record.requester} ({record.ref}, movers): {str(exc)[:300]}")
            complete = False
            continue
        except Exception:  # named by the leaver sweep already; judged again next sweep
            complete = False
            continue
        if why is not None and why != "inactive":
            due.append((record, why))
    return due, complete


def _sample(record: RequestRecord) -> str:
    """How the brake names one of the movers' changes to the security team."""
    if record.state == PENDING:
        return f"{record.requester}: pending {record.ref} ({record.profile}) fails"
    return f"{record.requester} from {record.provider}/{record.group} ({record.ref})"


async def revoke_ineligible(deps: Deps, report: SweepReport,
                            plan: tuple[list[tuple[RequestRecord, str]], bool], together: int) -> None:
    """Revoke each standard grant whose (active) holder the profile no longer admits (``plan``: as
    :func:`plan_movers` found them; ``together``: the sweep's removals, leavers and movers, for the brake)."""
    from handlers.sweeps import _end  # ending a grant is shared with expiry and revoke

    due, complete = plan
    due = [(r, why) for r, why in due if r.requester not in report.terminated]
    sample = [_sample(r) for r, _ in due]
    if not await may_remove(deps, len(due), sample, "ineligible", dry_run=report.dry_run, together=together,
                            complete=complete):
        report.paused += len(due)
        return
    pending = [(r, why) for r, why in due if r.state == PENDING]
    due = [(r, why) for r, why in due if r.state != PENDING]
    report.revoked += [r.ref for r, _ in due]
    if report.dry_run:
        report.failed += [r.ref for r, _ in pending]
        return
    for record, rule in pending:
        await _fail_pending(deps, report, record, rule)
    if not due:
        if pending:
            await deliver_pending(deps)
        return
    now = deps.now()
    for record, reason in due:
        text = f"{record.ref} ({record.profile}) was revoked: {record.requester} is no longer eligible ({reason})."
        tell = [Notice(record.requester, "status", text, record.id),
                *(Notice(m, "info", text, record.id) for m in sorted(deps.policy.security_members()))]
        # the notices are written to the outbox with the revocation (handlers/outbox.py); nothing when another
        # process ended the grant meanwhile: it tells the people concerned
        await _end(deps, record.id or 0, "revoked", "grant.revoked", now, {"reason": reason}, tell=tell)
    await run_due_ops(deps)
    await deliver_pending(deps)


async def _fail_pending(deps: Deps, report: SweepReport, record: RequestRecord, rule: str) -> None:
    """Fail a pending request whose requester is no longer eligible (``rule``: what refuses them), with the notices
    in the outbox in the same transaction; nothing when a decision, a cancel or another sweep ended it meanwhile."""
    async with deps.store.write() as repo:
        now = deps.now()
        fresh = await repo.get_request(record.id or 0)
        if fresh is None or fresh.state != PENDING:
            return
        holders = await card_holders(repo, fresh, [])  # whom its open step asked: their cards close
        await _fail(repo, fresh, rule, now)
        await repo.queue_notices([
            Notice(fresh.requester, "status", no_longer_eligible(fresh, rule), fresh.id),
            *(Notice(a, "outcome", f"{fresh.ref} waiting on you was closed: it failed, its requester is no longer "
                     f"eligible ({rule}).", fresh.id) for a in holders)], now)
    report.failed.append(fresh.ref)
