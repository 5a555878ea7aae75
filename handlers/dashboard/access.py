"""Who may see what on the dashboard: the security team everything, approvers and reviewers what they
decide on, anyone else their own requests. A request is shown only to a viewer who may ``status``
it (the rule of :func:`handlers.queries.may_see`, never a second one)."""

from __future__ import annotations

from collections.abc import Sequence

from handlers.context import Deps
from handlers.dashboard.ports import DashboardSource
from handlers.dashboard.signin import Viewer
from handlers.queries import may_see
from handlers.records import DecisionRecord, RequestRecord

OPEN_SCAN = 5000  # open requests looked at to find the ones waiting on an approver


async def visible(deps: Deps, viewer: Viewer, record: RequestRecord,
                  decisions: list[DecisionRecord] | None = None) -> bool:
    if viewer.security:
        return True
    return await may_see(deps, viewer.email, record, decisions)


async def keep_visible(deps: Deps, source: DashboardSource, viewer: Viewer, records: Sequence[RequestRecord]
                       ) -> list[RequestRecord]:
    """The records the viewer may ``status``, in their order."""
    if viewer.security:
        return list(records)
    decisions = await source.decisions_for([r.id or 0 for r in records])
    return [r for r in records if await may_see(deps, viewer.email, r, decisions.get(r.id or 0, []))]


async def scope_of(deps: Deps, source: DashboardSource, viewer: Viewer) -> tuple[list[str], list[int]] | None:
    """None for the security team (everything); else (requesters, request ids) whose union holds every
    request this viewer may see: their own, those they decided a step of, and open ones waiting on them."""
    if viewer.security:
        return None
    ids = set(await source.decided_by(viewer.email))
    waiting = [r for r in await source.open_requests(limit=OPEN_SCAN) if r.requester != viewer.email]
    ids |= {r.id or 0 for r in await keep_visible(deps, source, viewer, waiting)}
    return [viewer.email], sorted(ids)
