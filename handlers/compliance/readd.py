"""What the holder and the security team are told of a drift re-add (SPEC §3.6): a grant holder found not in their
group is put back through the provisioning path (handlers/compliance/settle.py ``restore_holders``).

- That the re-add is queued is written to the outbox in the transaction that records the provider's answer leaving
  it so (a transient failure, handlers/grants.py), or, when a call ahead of it on the membership kept it from being
  tried, right after (:func:`readd_queued`), once per re-add (``told`` in its ``drift_readd`` state); never with
  the plan, so a re-add that lands at once leaves no "queued" row. It carries a :class:`ReaddQueued` view, and at
  delivery it is dropped with why (:func:`readd_moved_on`) when the re-add already landed or was given up, no
  grant of the group runs any more, or the finding is resolved: nobody is told "queued" of what is already settled.
  Two grants of one group: a re-add whose grant ended while another still runs goes on (handlers/grants.py), so it
  is told queued (naming the grant that backs it now) and the notice is not dropped.
- When the re-add lands (its op marked done, at the first try or by a later sweep's retry), the finding is resolved
  ``restored`` and the holder and the team are told it landed, in the transaction that records the op done
  (:func:`readd_landed`, from handlers/grants.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handlers.audit import format_ts
from handlers.compliance.findings import (
    drift_ref,
    outcome_notices,
    readd_key,
    resolution_text,
    resolve_finding,
)
from handlers.compliance.views import ReaddQueued
from handlers.context import Deps
from handlers.groups import holding_group
from handlers.ports import Notice
from handlers.records import ACTIVE, DriftRecord, OpRecord, RequestRecord, req_number
from handlers.repository import Repository


def told(deps: Deps, record: RequestRecord, line: str, view: ReaddQueued | None = None) -> list[Notice]:
    """What the bot settled about a grant holder who was not a member: the holder's notice and the security
    team's line (``Drift: …``); ``view`` for the outbox to judge a queued re-add's notices by."""
    return [Notice(record.requester, "status", line, record.id, view),
            *(Notice(m, "drift", f"Drift: {line}", None, view) for m in sorted(deps.policy.security_members()))]


def queued_notices(deps: Deps, finding: DriftRecord, record: RequestRecord, op_id: int) -> list[Notice]:
    """That adding the holder back is queued: written with the provider's answer that leaves it waiting
    (:func:`readd_queued`), dropped at delivery once it no longer holds."""
    line = (f"{drift_ref(finding.id)}: {finding.email} holds {record.ref} but is not in "
            f"{finding.provider}/{finding.group}: adding them back is queued and retried; you are told when it lands.")
    return told(deps, record, line, ReaddQueued(finding.id or 0, op_id, record.id or 0))


def landed_text(finding: DriftRecord, record: RequestRecord) -> str:
    return (f"{drift_ref(finding.id)}: {finding.email} holds {record.ref} but was not in "
            f"{finding.provider}/{finding.group}: added back (the grant still runs until "
            f"{format_ts(record.expires_at) if record.expires_at else 'it ends'}).")


async def readd_of(repo: Repository, op: OpRecord) -> tuple[DriftRecord, dict[str, Any]] | None:
    """The open finding a drift re-add was planned for, with its ``drift_readd`` state (None: none is open)."""
    for finding in await repo.open_drift():
        if finding.kind == "member" or finding.email.lower() != op.email.lower() or finding.provider != op.provider:
            continue
        state = await repo.get_state(readd_key(finding.id or 0))
        if state and str(state.get("op")) == str(op.id):
            return finding, state
    return None


def not_running(record: RequestRecord | None, ref: object, now: datetime) -> str | None:
    """Why the grant a re-add puts its holder back for no longer backs it (None: it runs): it is not on record,
    no longer active, or past its end (a sweep records the expiry after it has retried what was due)."""
    if record is None:
        return f"{ref or 'the grant'} is not on record"
    if record.state != ACTIVE:
        return f"{record.ref} is no longer active ({record.state})"
    if record.expires_at is not None and record.expires_at <= now:
        return f"{record.ref} expired at {format_ts(record.expires_at)}"
    return None


async def _running_holder(repo: Repository, op: OpRecord, now: datetime) -> RequestRecord | None:
    """A running grant of the group a drift re-add puts its holder back in (None: none runs)."""
    return next((h for h in await holding_group(repo, op.email, op.provider, op.group)
                 if not_running(h, h.ref, now) is None), None)


async def readd_landed(deps: Deps, repo: Repository, op: OpRecord, now: datetime) -> None:
    """In the transaction that marks ``op`` (a drift re-add) done: the open finding it was planned for is resolved
    ``restored`` with the grant that backs the membership (the one it was planned for, or, when that one ended or
    its end passed meanwhile, another running grant of the same group), and the holder and the security team are
    told. When no grant runs any more the finding is left to the next sweep, which closes it ``ended`` (the end
    queued the removal behind this add, which was already at the provider, or the sweep that records the expiry
    does)."""
    found = await readd_of(repo, op)
    if found is None:
        return
    finding, state = found
    n = req_number(state.get("request_id"))
    record = await repo.get_request(n) if n is not None else None
    if not_running(record, state.get("request_id"), now) is not None:  # another running grant may back them now
        record = await _running_holder(repo, op, now)
    if record is None:
        return
    if not await resolve_finding(repo, finding, "restored", now, request_id=record.ref):
        return
    notices = told(deps, record, landed_text(finding, record))
    if now - finding.first_seen >= deps.policy.safety.drift_sla:  # its escalation's cards may be out
        notices += outcome_notices(deps, [(finding, resolution_text(finding, "restored", record.ref))])
    await repo.queue_notices(notices, now)


async def readd_queued(deps: Deps, repo: Repository, op: OpRecord, now: datetime) -> None:
    """In the transaction that records that a drift re-add could not be done now (the provider answered "not yet",
    or a call ahead of it on the membership has not finished), with the op still pending and a grant backing it
    (the one it was planned for, or when that one ended, another running grant of the same group, which the notice
    names): the holder and the security team are told it is queued and retried, once per re-add (``told`` in its
    state)."""
    if op.status != "pending":
        return
    found = await readd_of(repo, op)
    if found is None or found[1].get("told"):
        return
    finding, state = found
    n = req_number(state.get("request_id"))
    record = await repo.get_request(n) if n is not None else None
    if record is None or not_running(record, state.get("request_id"), now) is not None:
        # the grant it was planned for ended: another running grant of the same group backs the re-add, which goes on
        record = await _running_holder(repo, op, now)
        if record is None:
            return
    await repo.queue_notices(queued_notices(deps, finding, record, op.id or 0), now)
    await repo.set_state(readd_key(finding.id or 0), {**state, "told": format_ts(now)}, now)


async def readd_moved_on(repo: Repository, view: ReaddQueued, now: datetime) -> str | None:
    """Why a notice that a re-add is queued no longer holds (None: it does): the re-add landed or was given up,
    the finding is resolved, or neither the grant it was told for nor another grant of the same group still runs
    (active and not past its end, as a re-add is judged when it is queued or dropped: :func:`not_running`)."""
    ref = drift_ref(view.finding)
    op = await repo.get_op(view.op)
    if op is None:
        return f"the re-add of {ref} is not on record"
    if op.status == "done":
        return f"the re-add of {ref} landed already"
    if op.status == "failed":
        return f"the re-add of {ref} was given up (failed)"
    record = await repo.get_request(view.request)
    # the grant it was told for ended: the re-add goes on while another active grant of the same group backs it;
    # else, if still queued, it was dropped (handlers/grants.py)
    ended = not_running(record, f"REQ-{view.request}", now)
    if ended is not None and not any(not_running(h, h.ref, now) is None
                                     for h in await holding_group(repo, op.email, op.provider, op.group)):
        return ended
    finding = await repo.get_drift(view.finding)
    if finding is None or finding.resolved_at is not None:
        return f"{ref} is resolved already"
    if op.status != "pending":
        return f"the re-add of {ref} was given up ({op.status})"
    return None
