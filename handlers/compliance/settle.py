"""What the drift sweep does about open findings by itself (SPEC §3.6).

- A drift accept still undecided ``safety.drift_sla`` after it was filed is withdrawn
  (``request.cancelled`` by ``system``) and the member removed, like a denied one: an exception nobody
  decides must not keep an unexplained membership forever. A removal that could not finish within its
  command is settled here once the provider has done it.
- A grant holder who is not a member (removed at the provider behind the bot's back) is put back
  through the provisioning path while the grant runs (``membership.added`` reason ``drift``, then
  ``drift.resolved`` {resolution: restored, request_id}); when the profile says ``removed_holder: end``,
  or the provider refuses the add for good, the grant ends instead (``grant.revoked`` reason ``drift``,
  resolution ``ended``; one past its end whose expiry is not recorded yet ends expired, as the expiry sweep ends
  it; a re-add refused for good after its grant ended, while another grant of the group runs, ends that one). A
  grant that ends (expires, is released or revoked) before its holder is back drops the
  re-add still queued (handlers/grants.py) and the finding closes ``ended``, never ``restored``. The holder and the
  security team are told which, once: a sweep that finds the grant already ended and the finding resolved by another
  process's sweep (both read the re-add given up) tells nobody again; one that finds the grant ended some other way
  (its expiry, a release or a revoke) and the finding still open closes it and tells them how the grant ended
  (:func:`had_ended`), not the reason it would have ended it for. That the re-add is queued is told with
  the provider's first answer that leaves it waiting (none when it lands at once); that it landed, at the first try
  or a later sweep's retry, with the op recorded done (readd.py).

What a sweep settles here is told through the outbox (handlers/outbox.py): each notice is written in the
transaction that records what it tells (the withdrawn accept's ``request.cancelled``, the ``drift.resolved`` of
a holder put back or of a grant ended), and sent by the sweep's delivery, or the next one after a crash. The
security team's lines due for one member then go out as one message (handlers/outbox.py ``combined``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from handlers.approvals import card_holders
from handlers.audit import format_ts
from handlers.compliance.accept_links import accept_ended, settle_removal
from handlers.compliance.findings import accept_key, drift_ref, readd_key, remove_key, resolve_finding
from handlers.compliance.readd import landed_text, not_running, readd_queued, told
from handlers.context import SYSTEM, Deps
from handlers.durations import format_duration
from handlers.grants import (
    end_grant_in,
    ended_grant,
    expiry_notice,
    holding_group,
    plan_membership_add,
    run_op,
)
from handlers.ports import Notice
from handlers.records import ACTIVE, HOLDING_STATES, PENDING, DriftRecord, OpRecord, RequestRecord, req_number
from handlers.repository import Repository

if TYPE_CHECKING:
    from handlers.sweeps import SweepReport


def _at(ts: object) -> datetime:
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00"))


async def settle_accepts(deps: Deps, report: SweepReport, findings: list[DriftRecord]) -> None:
    """Withdraw accepts undecided past the SLA; finish removals and decisions a crash or a retry left open."""
    if report.dry_run:
        return
    sla = deps.policy.safety.drift_sla
    for finding in findings:
        if finding.kind != "member":
            continue
        now = deps.now()
        async with deps.store.write() as repo:
            filed = await repo.get_state(accept_key(finding.id or 0))
            removing = await repo.get_state(remove_key(finding.id or 0))
            if filed is None or removing is not None:
                continue
            record = await _filed_request(repo, filed["request_id"])
            if record is None:
                continue
            if record.state in HOLDING_STATES:  # approved, but the finding was left open: close it now
                await resolve_finding(repo, finding, "exception", now, request_id=record.ref, by=filed.get("by"))
                continue
            if record.state == PENDING:
                if report.as_of - _at(filed["at"]) < sla:
                    continue
                holders = await card_holders(repo, record, [])  # whom its open step asked: their cards close
                record.state, record.ended_at = "cancelled", now
                await repo.save_request(record)
                why = f"undecided within safety.drift_sla ({format_duration(sla)})"
                await repo.append("request.cancelled", actor=SYSTEM, ts=now, request=record,
                                  data={"reason": why, "drift_id": drift_ref(finding.id)})
                notices = [Notice(m, "drift", f"{record.ref} (drift accept of {drift_ref(finding.id)}) was "
                                  f"{why}: {finding.email} is removed from {finding.provider}/{finding.group}.",
                                  record.id) for m in sorted(deps.policy.security_members())]
                notices.append(Notice(record.requester, "status", f"{record.ref} was not decided in time: you are "
                                      f"removed from {finding.group}.", record.id))
                notices += [Notice(a, "outcome", f"{record.ref} was withdrawn: {why}.", record.id) for a in holders]
                await repo.queue_notices(notices, now)  # written with the withdrawal (handlers/outbox.py)
            await accept_ended(repo, record, now)
    for finding in findings:
        async with deps.store.read() as repo:
            removing = await repo.get_state(remove_key(finding.id or 0))
        if removing is not None:
            await settle_removal(deps, finding, queue=True)


async def cancel_accept_of_gone(repo: Repository, finding: DriftRecord, now: datetime) -> str | None:
    """The member left the group while an accept waited: withdraw it (nothing is left to accept)."""
    filed = await repo.get_state(accept_key(finding.id or 0))
    if filed is None:
        return None
    record = await _filed_request(repo, filed["request_id"])
    if record is None or record.state != PENDING:
        return record.ref if record else None
    holders = await card_holders(repo, record, [])  # whom its open step asked: their cards close
    record.state, record.ended_at = "cancelled", now
    await repo.save_request(record)
    await repo.append("request.cancelled", actor=SYSTEM, ts=now, request=record,
                      data={"reason": "the member is no longer in the group", "drift_id": drift_ref(finding.id)})
    await repo.queue_notices([Notice(a, "outcome", f"{record.ref} was withdrawn: {finding.email} is no longer in "
                                     f"{finding.group}.", record.id) for a in holders], now)
    return record.ref


async def gone_resolution(repo: Repository, finding: DriftRecord, kept: bool
                          ) -> tuple[str, str | None, str | None]:
    """(resolution, request_id, by) for a finding whose group and grants agree again."""
    if finding.kind != "member":
        # a holder who was not a member: back in the group while their grant runs, else the grant ended before
        # they were put back (its re-add, if still queued, was dropped: handlers/grants.py)
        readd = await repo.get_state(readd_key(finding.id or 0)) or {}
        ref = readd.get("request_id")
        record = await _filed_request(repo, ref)
        if record is not None:
            return ("restored" if record.state == ACTIVE else "ended"), record.ref, None
        held = any(h.state == ACTIVE for h in await holding_group(repo, finding.email, finding.provider,
                                                                   finding.group))
        if not held and ref is None:  # no re-add on record: the grant the finding was about, which has ended
            ended = await ended_grant(repo, finding.email, finding.provider, finding.group, finding.first_seen)
            ref = ended.ref if ended is not None else None
        return ("restored" if held else "ended"), ref, None
    removing = await repo.get_state(remove_key(finding.id or 0))
    if removing is not None:
        return "removed", removing.get("request_id"), removing.get("by")
    if kept:
        return "reviewed", None, None
    return "gone", None, None


async def restore_holders(deps: Deps, missing: list[tuple[DriftRecord, RequestRecord]]) -> list[str]:
    """Put back (or end the grant of) each grant holder found missing from their group; the lines say which."""
    lines: list[str] = []
    for finding, record in missing:
        ref = drift_ref(finding.id)
        where = f"{finding.provider}/{finding.group}"
        # the policy in force decides (an operational choice), else the version the grant was approved under
        profile = deps.policy.profile(record.profile) or (await deps.policy_for(record)).profile(record.profile)
        end = profile is not None and profile.removed_holder == "end"
        now = deps.now()
        op_id = None
        async with deps.store.write() as repo:
            fresh = await repo.get_request(record.id or 0)
            if fresh is None or fresh.state != ACTIVE or fresh.expires_at is None or fresh.expires_at <= now:
                continue  # ended meanwhile: the finding resolves at the next sweep
            if not end:
                state = await repo.get_state(readd_key(finding.id or 0))
                if state is None:
                    op = await plan_membership_add(repo, finding.provider, finding.group, finding.email, "drift", now)
                    op_id = op.id
                    await repo.set_state(readd_key(finding.id or 0), {"op": op.id, "request_id": record.ref,
                                                                      "at": format_ts(now)}, now)
                    # nobody is told yet: what the provider answers decides what they are told, in the transaction
                    # that records it (landed: readd_landed; not yet: readd_queued; refused for good: the end
                    # below). A process stopped before the provider answered leaves the re-add to the next sweep.
        outcome = await run_op(deps, op_id) if op_id is not None else None
        if op_id is not None and outcome not in ("done", "failed"):  # not tried now: a call ahead of it runs first
            async with deps.store.write() as repo:
                current = await repo.get_op(op_id)
                if current is not None:
                    await readd_queued(deps, repo, current, deps.now())
        if end or outcome == "failed":
            why = "the profile says removed_holder: end" if end else "the provider refused to add them back"
            lines.append(await _end_grant(deps, finding, record, why, refused=not end))  # tells the holder itself
            continue
        if outcome == "done":
            # resolved and told in the transaction that recorded the add done (readd_landed), with the grant that
            # backs the membership; none when no grant runs any more (it ended while the add was at the provider:
            # its end queued the removal behind the add, and the next sweep closes the finding ended)
            fresh, why, backing = await _backing(deps, finding, record)
            if backing is not None:
                lines.append(landed_text(finding, backing))
            else:
                how = had_ended(fresh) if fresh is not None and fresh.state not in HOLDING_STATES else why
                lines.append(f"{ref}: {finding.email} held {record.ref} but was not in {where}: added back, but "
                             f"{how} meanwhile; the finding closes ended.")
        elif outcome == "skipped":  # dropped before it was tried: the grant ended meanwhile (handlers/grants.py)
            async with deps.store.read() as repo:
                why = not_running(await repo.get_request(record.id or 0), record.ref, deps.now())
            lines.append(f"{ref}: {finding.email} held {record.ref} but was not in {where}: adding them back was "
                         f"dropped ({why or 'no running grant holds the membership'}); the finding closes ended.")
        elif op_id is not None:  # the holder and the team were told it is queued with the answer (readd_queued)
            fresh, why, backing = await _backing(deps, finding, record)
            if backing is not None:  # the grant it was planned for, or another running grant of the group
                lines.append(f"{ref}: {finding.email} holds {backing.ref} but is not in {where}: adding them back is "
                             f"queued ({outcome}) and retried.")
            else:  # the grant ended while the add was at the provider: the next claim drops it (handlers/grants.py)
                lines.append(f"{ref}: {finding.email} held {record.ref} but was not in {where}: adding them back was "
                             f"queued ({outcome}), but {why}: it is dropped at its next try; the finding closes "
                             "ended.")
    return lines


async def finish_restores(deps: Deps, findings: list[DriftRecord]) -> list[str]:
    """A re-add that the provider refused for good since the last sweep ends the grant instead."""
    lines = []
    for finding in findings:
        if finding.kind == "member":
            continue
        async with deps.store.read() as repo:
            state = await repo.get_state(readd_key(finding.id or 0))
            op = await repo.get_op(int(state["op"])) if state else None
            record = await _filed_request(repo, state["request_id"]) if state else None
        if op is not None and op.status == "failed" and record is not None:
            lines.append(await _end_grant(deps, finding, record, "the provider refused to add them back",
                                          refused=True))
    return lines


async def _backing(deps: Deps, finding: DriftRecord, record: RequestRecord
                   ) -> tuple[RequestRecord | None, str | None, RequestRecord | None]:
    """The grant as it is now, why it no longer runs (None while it does), and the grant that backs the membership:
    that one while it runs, else another running grant of the holder's for the group (None when none does)."""
    async with deps.store.read() as repo:
        fresh = await repo.get_request(record.id or 0)
        why = not_running(fresh, record.ref, deps.now())
        backing = fresh if why is None else next(
            (h for h in await holding_group(repo, finding.email, finding.provider, finding.group)
             if not_running(h, h.ref, deps.now()) is None), None)
    return fresh, why, backing


async def _end_grant(deps: Deps, finding: DriftRecord, record: RequestRecord, why: str, *,
                     refused: bool = False) -> str:
    """End the grant of a holder who is not back in the group (``why``: the profile says so, or, ``refused``, the
    provider refused the re-add for good) and close the finding ``ended``. A grant past its end whose expiry is not
    recorded yet (the expiry sweep has not run since) ends as what it is: expired, recorded and told as the expiry
    sweep does. A re-add refused for good after the grant it was planned for ended, while another grant of the
    same group runs, was for that grant: that one ends (the membership it backs cannot be put back), and the finding
    closes with it."""
    now = deps.now()
    removes: list[OpRecord | None] = []
    notices: list[Notice] = []
    async with deps.store.write() as repo:
        fresh = await repo.get_request(record.id or 0)
        target = fresh if fresh is not None and fresh.state in HOLDING_STATES else None
        if target is not None and target.state == ACTIVE and target.expires_at is not None \
                and target.expires_at <= now:
            removes.append(await end_grant_in(repo, target, "expired", "grant.expired", now,
                                              {"expires_at": format_ts(target.expires_at)}))
            notices.append(expiry_notice(target))
            target = None
        ended = bool(notices)
        if target is None and refused:
            target = next((h for h in await holding_group(repo, finding.email, finding.provider, finding.group)
                           if not_running(h, h.ref, now) is None), None)
        if target is not None:
            removes.append(await end_grant_in(repo, target, "revoked", "grant.revoked", now,
                                              {"reason": "drift", "id": drift_ref(finding.id), "comment": why}))
            ended, record = True, target
            text = (f"{drift_ref(finding.id)}: {finding.email} holds {target.ref} but was not in "
                    f"{finding.provider}/{finding.group}: the grant is ended ({why}).")
        else:  # ended some other way meanwhile (its expiry, a release, a revoke): said as it happened, not as `why`
            text = (f"{drift_ref(finding.id)}: {finding.email} held {record.ref} but was not in "
                    f"{finding.provider}/{finding.group}: {had_ended(fresh or record)} before they were put back.")
        resolved = await resolve_finding(repo, finding, "ended", now, request_id=record.ref)
        # told only by the call that ended the grant or closed the finding: another process's sweep that got there
        # first (both read the re-add given up) has told them in its own transaction
        if ended or resolved:
            notices += told(deps, record, text)
            await repo.queue_notices(notices, now)  # written with the end (handlers/outbox.py)
    for remove in removes:
        if remove is not None:
            await run_op(deps, remove.id or 0)  # not a member: the provider answers "not a member", which is success
    return text


def had_ended(record: RequestRecord) -> str:
    """How a grant that is no longer holding ended, as its record says: ``REQ-n had ended (released)``, or
    ``(revoked: terminated)`` when the reason differs from the state."""
    how = record.state if record.end_reason in (None, record.state) else f"{record.state}: {record.end_reason}"
    return f"{record.ref} had ended ({how})"


async def _filed_request(repo: Repository, ref: object) -> RequestRecord | None:
    """The request a stored drift state names (``REQ-n``), or None when it names none."""
    n = req_number(ref)
    return await repo.get_request(n) if n is not None else None
