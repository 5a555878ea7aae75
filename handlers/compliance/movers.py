"""Movers (SPEC §3.6): a grant whose holder is no longer eligible for its profile is revoked at the next sweep,
a running one or one approved whose add still waits for the provider (``grant.revoked`` reason
``ineligible: <rule>``); exceptions are exceptions and stay. A profile the policy in force no longer has is judged
by the version the grant was approved under. The holder and the security team are told. The removals count against
the safety brake."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.compliance.brake import may_remove
from handlers.context import Deps
from handlers.eligibility import ineligibility, memberships_of
from handlers.grants import run_due_ops
from handlers.groups import CannotJudge
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from handlers.records import HOLDING_STATES, RequestRecord

if TYPE_CHECKING:
    from handlers.sweeps import SweepReport


def mover_reason(why: str) -> str:
    """``ineligible: <rule>`` as §3.1 names it: the ``ineligible`` rule that matched, or ``not eligible``."""
    return why if why.startswith("ineligible: ") else "ineligible: not eligible"


async def plan_movers(deps: Deps, report: SweepReport) -> tuple[list[tuple[RequestRecord, str]], bool]:
    """The standard grants whose (active) holder the profile no longer admits, each with its reason, and
    whether every holder could be judged (no lookup failed)."""
    async with deps.store.read() as repo:  # approved too: an add the provider has not taken yet is not carried out
        active = await repo.find_requests(states=HOLDING_STATES)  # for someone the profile no longer admits
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
            why = ineligibility(profile, person, await memberships_of(deps, person.email))
        except CannotJudge as exc:  # a group name not resolved, an attribute not supplied: nobody is judged by it
            report.unchecked.append(f"{record.requester} ({record.ref}, movers): {str(exc)[:300]}")
            complete = False
            continue
        if why is not None:
            due.append((record, mover_reason(why)))
    return due, complete


async def revoke_ineligible(deps: Deps, report: SweepReport,
                            plan: tuple[list[tuple[RequestRecord, str]], bool], together: int) -> None:
    """Revoke each standard grant whose (active) holder the profile no longer admits (``plan``: as
    :func:`plan_movers` found them; ``together``: the sweep's removals, leavers and movers, for the brake)."""
    from handlers.sweeps import _end  # ending a grant is shared with expiry and revoke

    due, complete = plan
    due = [(r, why) for r, why in due if r.requester not in report.terminated]
    sample = [f"{r.requester} from {r.provider}/{r.group} ({r.ref})" for r, _ in due]
    if not await may_remove(deps, len(due), sample, "ineligible", dry_run=report.dry_run, together=together,
                            complete=complete):
        report.paused += len(due)
        return
    report.revoked += [r.ref for r, _ in due]
    if report.dry_run or not due:
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
