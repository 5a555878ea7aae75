"""Drift findings and what is being done about them (SPEC §3.6).

A finding is a row of the store (``D-<n>``); what the bot is doing about an open one lives beside it in
the compliance state, so that a second command, a sweep or another process sees it in the same
transaction that decides:

- ``drift_accept:<n>``: an exception request was filed for it (``drift accept``): {request_id, by, at};
- ``drift_request:<request id>``: the reverse link, from that request to the finding: {finding, by};
- ``drift_remove:<n>``: its member is being removed (``drift remove``, or an accept that did not pass):
  {by, request_id?};
- ``drift_readd:<n>``: a grant holder who was not a member is being put back: {op, request_id, at, told?}
  (``told``: when they were told it is queued).

Every resolution is one ``drift.resolved`` {id, provider, group, user, resolution, request_id?, by?}.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from handlers.audit import format_ts
from handlers.compliance.views import DriftView
from handlers.context import SYSTEM, Deps
from handlers.ports import Notice
from handlers.records import DriftRecord
from handlers.repository import Repository

# exception: accepted through an exception (the grant backs the membership); removed: taken out by the
# provisioning path; gone: left by other means; restored: a holder who was not a member is in again;
# ended: a holder who was not a member lost the grant instead; reviewed: a review keeps it (SPEC §7)
RESOLUTIONS = ("exception", "removed", "gone", "restored", "ended", "reviewed")


def drift_ref(finding_id: int | None) -> str:
    """A finding's id as people see it: ``D-<n>``."""
    return f"D-{finding_id or 0}"


def parse_drift_ref(text: object) -> int | None:
    """The finding number a ``D-<n>`` names (a button's value, a card's data, a view's id), else None."""
    if not isinstance(text, str):
        return None
    m = re.fullmatch(r"[dD]-([0-9]{1,9})", text.strip())
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def accept_key(finding_id: int) -> str:
    return f"drift_accept:{finding_id}"


def request_key(request_id: int) -> str:
    return f"drift_request:{request_id}"


def remove_key(finding_id: int) -> str:
    return f"drift_remove:{finding_id}"


def readd_key(finding_id: int) -> str:
    return f"drift_readd:{finding_id}"


async def resolve_finding(repo: Repository, finding: DriftRecord, resolution: str, now: datetime, *,
                          actor: str = SYSTEM, request_id: str | None = None, by: str | None = None,
                          **extra: Any) -> bool:
    """Resolve an open finding once: ``drift.resolved`` links the outcome (and the request behind it) to
    the finding. False (and nothing recorded) when it was resolved already."""
    current = await repo.get_drift(finding.id or 0)
    if current is None or current.resolved_at is not None:
        return False
    await repo.resolve_drift(finding.id or 0, now)
    data: dict[str, Any] = {"id": drift_ref(finding.id), "provider": finding.provider, "group": finding.group,
                            "user": finding.email, "resolution": resolution}
    if finding.kind != "member":
        data["member"] = False
    if request_id:
        data["request_id"] = request_id
    if by:
        data["by"] = by
    data.update({k: v for k, v in extra.items() if v is not None})
    await repo.append("drift.resolved", actor=actor, ts=now, data=data)
    return True


async def tell_outcome(deps: Deps, finding: DriftRecord, text: str) -> None:
    """Every security member's card of the finding says what was done about it and loses its buttons
    (``drift_outcome``: channels edit the cards they posted; the text says the same elsewhere)."""
    await tell_outcomes(deps, [(finding, text)])


async def tell_outcomes(deps: Deps, outcomes: list[tuple[DriftRecord, str]]) -> None:
    """:func:`tell_outcome` of several findings, handed to the channels at once."""
    notices = outcome_notices(deps, outcomes)
    if notices:
        await deps.notifier.notify(notices)


def outcome_notices(deps: Deps, outcomes: list[tuple[DriftRecord, str]]) -> list[Notice]:
    """The security team's ``drift_outcome`` notices of what was done about each finding (its cards edited). A
    sweep writes them to the outbox with the ``drift.resolved`` that decides them (handlers/outbox.py); a person's
    command sends them at once (:func:`tell_outcomes`)."""
    members = sorted(deps.policy.security_members())
    notices = []
    for finding, text in outcomes:
        view = DriftView(id=drift_ref(finding.id), provider=finding.provider, group=finding.group,
                         user=finding.email, member=finding.kind == "member",
                         first_seen=format_ts(finding.first_seen), outcome=text)
        notices += [Notice(m, "drift_outcome", text, None, view) for m in members]
    return notices


def resolution_text(finding: DriftRecord, resolution: str, request_id: str | None = None) -> str:
    """One line for a finding the bot saw resolved (a sweep): what the cards then say."""
    where = f"{finding.provider}/{finding.group}"
    said = {"removed": f"{finding.email} was removed from {where}",
            "gone": f"{finding.email} is no longer in {where}",
            "exception": f"{finding.email} stays in {where}, backed by {request_id or 'an exception'}",
            "reviewed": f"a review keeps {finding.email} in {where}",
            "restored": f"{finding.email} is in {where} again",
            "ended": f"{request_id or 'the grant'} of {finding.email} was ended"}
    return f"{drift_ref(finding.id)} resolved ({resolution}): {said.get(resolution, where)}."
