"""What an exception filed by ``drift accept`` does when its chain decides (SPEC §3.6).

These run inside the transaction that decides the request, so the finding and the request never
disagree: approved → ``drift.resolved`` {resolution: exception, request_id} (the grant now covers the
membership and ends it when it ends); denied, cancelled or failed → the member's removal is planned
through the provisioning path (``membership.removed`` reason ``drift``), and the finding resolves as
``removed`` when the provider has done it (:func:`settle_removal`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handlers.audit import format_ts
from handlers.compliance.findings import (
    accept_key,
    outcome_notices,
    remove_key,
    request_key,
    resolution_text,
    resolve_finding,
    tell_outcome,
)
from handlers.context import SYSTEM, Deps
from handlers.grants import ops_on_membership, plan_membership_removal, run_due_ops
from handlers.records import DriftRecord, OpRecord, RequestRecord, req_id
from handlers.repository import Repository


async def accept_link(repo: Repository, record: RequestRecord) -> dict[str, Any] | None:
    """{finding, by} when ``record`` was filed by ``drift accept``, else None."""
    if record.kind != "exception" or record.id is None:
        return None
    return await repo.get_state(request_key(record.id))


async def filed_by(repo: Repository, record: RequestRecord) -> str | None:
    """The security team member who filed this request for its requester; they count as a requester."""
    link = await accept_link(repo, record)
    return str(link["by"]).lower() if link and link.get("by") else None


async def accept_approved(repo: Repository, record: RequestRecord, actor: str, now: datetime) -> None:
    """The chain approved: the membership is now backed by the grant."""
    link = await accept_link(repo, record)
    if link is None:
        return
    finding = await repo.get_drift(int(link["finding"]))
    if finding is not None:
        await resolve_finding(repo, finding, "exception", now, actor=actor, request_id=record.ref,
                              by=link.get("by"))


async def accept_ended(repo: Repository, record: RequestRecord, now: datetime) -> OpRecord | None:
    """The request ended without a grant: plan the member's removal (run it with :func:`settle_removal`)."""
    link = await accept_link(repo, record)
    if link is None:
        return None
    finding = await repo.get_drift(int(link["finding"]))
    if finding is None or finding.resolved_at is not None:
        return None
    return await plan_drift_removal(repo, finding, str(link.get("by") or SYSTEM), now, request_id=record.ref)


async def plan_drift_removal(repo: Repository, finding: DriftRecord, by: str, now: datetime, *,
                             request_id: str | None = None, reason: str | None = None) -> OpRecord | None:
    """Plan removing a drifted member (reason ``drift``) and remember who decided it, in one transaction.

    Nothing is planned when the membership was removed since the finding was made (a leaver's removal, say):
    it is gone once, and the finding resolves as ``gone`` at the next sweep."""
    # the finding names the group as the policy did when it was made; a removal since may name it the other way
    earlier = await ops_on_membership(repo, finding.provider, finding.group, finding.email, ("done",))
    if any(o.op == "remove" and o.created_at >= finding.first_seen for o in earlier):
        return None
    op = await plan_membership_removal(repo, finding.provider, finding.group, finding.email, "drift", now)
    if op is None:
        return None  # a grant covers the membership now, or its removal is queued already
    state: dict[str, Any] = {"by": by, "at": format_ts(now)}
    if request_id:
        state["request_id"] = request_id
    if reason:
        state["reason"] = reason
    await repo.set_state(remove_key(finding.id or 0), state, now)
    return op


async def settle_removal(deps: Deps, finding: DriftRecord, said: str | None = None, *, queue: bool = False) -> str:
    """Run the finding's removal now if it is due; resolve the finding as ``removed`` once the provider
    has done it, and say so on the security team's cards of it (``said``: the words for a removal done,
    else the resolution's own). ``queue`` (a sweep): the cards' outcome is written to the outbox with the
    resolution, for the sweep's delivery to send (handlers/outbox.py); else it is sent now. Returns ``done`` or
    the state the removal is in (``pending`` while it is retried)."""
    await run_due_ops(deps, member=(finding.provider, finding.group, finding.email))
    async with deps.store.write() as repo:
        state = await repo.get_state(remove_key(finding.id or 0))
        ops = await ops_on_membership(repo, finding.provider, finding.group, finding.email)
        current = await repo.get_drift(finding.id or 0)
        if state is None or current is None:
            return "missing"
        if current.resolved_at is not None:
            return "done"
        mine = [o for o in ops if o.op == "remove" and o.reason == "drift" and o.created_at >= _at(state)]
        if not mine or not all(o.status in ("done", "skipped") for o in mine):
            return "pending" if mine else "missing"
        resolution = "removed" if any(o.status == "done" for o in mine) else "gone"
        await resolve_finding(repo, current, resolution, deps.now(), actor=SYSTEM,
                              request_id=state.get("request_id"), by=state.get("by"))
        text = said if said and resolution == "removed" else resolution_text(current, resolution)
        if queue:
            await repo.queue_notices(outcome_notices(deps, [(current, text)]), deps.now())
    if not queue:
        await tell_outcome(deps, current, text)
    return "done"


def _at(state: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(state["at"]).replace("Z", "+00:00"))


def accept_state(record: RequestRecord, by: str, now: datetime) -> dict[str, Any]:
    return {"request_id": req_id(record.id or 0), "by": by, "at": format_ts(now)}


__all__ = ["accept_approved", "accept_ended", "accept_key", "accept_link", "accept_state", "filed_by",
           "plan_drift_removal", "settle_removal", "settle_request"]


async def settle_request(deps: Deps, request_id: int) -> None:
    """After a drift accept's request ended without a grant: run the member's removal now if it can."""
    async with deps.store.read() as repo:
        link = await repo.get_state(request_key(request_id))
        finding = await repo.get_drift(int(link["finding"])) if link else None
        removing = await repo.get_state(remove_key(finding.id or 0)) if finding else None
    if finding is not None and finding.resolved_at is None and removing is not None:
        await settle_removal(deps, finding)
