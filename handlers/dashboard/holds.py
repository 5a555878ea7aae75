"""What the posture page shows beside the removals brake: notices the outbox gave up on, and re-routes the
re-route brake holds.

Notices given up on are the ``notice_outbox`` rows marked ``undeliverable`` or ``unreachable`` (handlers/outbox.py)
within the last ``GIVEN_UP_DAYS`` days, the ones recorded as ``notice.undeliverable``: a notice marked unreachable
because no channel is configured at all is never sent nor recorded, and is not counted. Only who, what kind, which
request, when and the last error are shown, never the notice's text.

Held re-routes are the re-route brake's stored state (``reroute_brake``, handlers/compliance/reroute_brake.py): the
set the hold recorded, since when, and who released it while the release waits for the next sweep; once the hold
ended, the latest ``approval.reroutes_released`` says when and by whom.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from handlers.compliance.reroute_brake import KEY as REROUTE_KEY
from handlers.context import Deps
from handlers.dashboard.ports import DashboardSource
from handlers.dashboard.signin import Viewer
from handlers.outbox import NO_CHANNEL
from handlers.records import req_id, req_number

GIVEN_UP_DAYS = 7  # the window the count covers
GIVEN_UP_SHOWN = 10  # the most recent ones listed
REROUTES_SHOWN = 50  # held re-routes listed (the count covers them all)
RELEASED = "approval.reroutes_released"


@dataclass(frozen=True)
class GivenUp:
    recipient: str
    kind: str
    request: str  # REQ-n, or "" when the notice names no request
    at: datetime | None  # when it was given up on
    status: str  # undeliverable | unreachable
    attempts: int
    error: str


@dataclass(frozen=True)
class GivenUpNotices:
    days: int = GIVEN_UP_DAYS
    count: int = 0
    recent: tuple[GivenUp, ...] = ()


async def given_up_notices(deps: Deps, source: DashboardSource, viewer: Viewer) -> GivenUpNotices:
    """The notices given up on in the last ``GIVEN_UP_DAYS`` days (the security team's alone: empty for anyone
    else, whose page never lists notices to other people)."""
    if not viewer.security:
        return GivenUpNotices()
    count, rows = await source.given_up_notices(deps.now() - timedelta(days=GIVEN_UP_DAYS), limit=GIVEN_UP_SHOWN,
                                                never_sent=NO_CHANNEL)
    recent = tuple(GivenUp(recipient=str(r["recipient"]), kind=str(r["kind"]),
                           request=req_id(r["request_id"]) if r["request_id"] else "", at=r["done_at"],
                           status=str(r["status"]), attempts=int(r["attempts"] or 0), error=str(r["last_error"] or ""))
                   for r in rows)
    return GivenUpNotices(count=count, recent=recent)


@dataclass(frozen=True)
class HeldReroute:
    request: str
    step: int
    asked: tuple[str, ...]  # the managers the step stays with
    named: tuple[str, ...]  # the managers the provider names now


@dataclass(frozen=True)
class RerouteRelease:
    at: str
    by: str
    count: int


@dataclass(frozen=True)
class RerouteHold:
    held: tuple[HeldReroute, ...] = ()  # the first REROUTES_SHOWN, by request
    count: int = 0
    limit: int | None = None
    since: str = ""
    released_by: str = ""  # a release given, waiting for the next sweep
    released_at: str = ""
    last_release: RerouteRelease | None = None  # the latest approval.reroutes_released

    @property
    def holding(self) -> bool:
        return self.count > 0

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.held))


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


async def reroute_hold(source: DashboardSource) -> RerouteHold:
    """The re-route brake as stored, and its latest release from the chain."""
    state = await source.compliance_state(REROUTE_KEY) or {}
    items = [i for i in (state.get("held") or {}).values() if isinstance(i, dict)]
    items.sort(key=lambda i: (req_number(i.get("request")) or 0, str(i.get("request")), _int(i.get("step"))))
    held = tuple(HeldReroute(request=str(i.get("request") or ""), step=_int(i.get("step")),
                             asked=_names(i.get("from")), named=_names(i.get("to"))) for i in items[:REROUTES_SHOWN])
    event = await source.latest_event((RELEASED,))
    last = RerouteRelease(at=event.ts, by=event.actor, count=_int(event.data.get("count"))) if event else None
    limit = state.get("limit")
    return RerouteHold(held=held, count=len(items), limit=_int(limit) if limit is not None else None,
                       since=str(state.get("since") or "") if items else "",
                       released_by=str(state.get("released_by") or "") if items else "",
                       released_at=str(state.get("released_at") or "") if items else "", last_release=last)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0
