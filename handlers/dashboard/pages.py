"""View-models of the dashboard's pages: overview, requests, one request, one person.

Each function reads through the ``DashboardSource`` port and the handlers' own queries, and
applies :mod:`handlers.dashboard.access`: a page never holds a request its viewer may not ``status``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from handlers.context import Deps
from handlers.dashboard.access import keep_visible, scope_of, visible
from handlers.dashboard.brake import BRAKE_TYPES, RECENT, Brake, brake_state
from handlers.dashboard.chain import ChainState, ChainWatch
from handlers.dashboard.ports import DashboardSource
from handlers.dashboard.signin import Viewer
from handlers.drift import groups_holding
from handlers.durations import format_duration
from handlers.present import event_summary, person_facts, request_view
from handlers.records import ENDED_STATES, OPEN_STATES, AuditEvent, RequestRecord
from handlers.requests import profile_views
from handlers.text import has_control, is_digits
from handlers.views import ProfileView, RequestView

STATES = (*OPEN_STATES, *ENDED_STATES)
OVERVIEW_LIST = 50
PAGE_SIZE = 50


def moment(value: datetime | str | None) -> str:
    """``YYYY-MM-DD HH:MM UTC`` for people; the exact instant stays in the audit chain."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%d %H:%M UTC")


def age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return ""
    return format_duration(timedelta(seconds=max(60, int((now - since).total_seconds()) // 60 * 60)))


async def views_of(deps: Deps, source: DashboardSource, records: list[RequestRecord]) -> list[RequestView]:
    decisions = await source.decisions_for([r.id or 0 for r in records])
    out = []
    for r in records:
        mine = [d for d in decisions.get(r.id or 0, []) if d.round == r.round]
        out.append(await request_view(deps, r, decisions=mine))
    return out


async def read_brake(source: DashboardSource) -> Brake:
    """The safety brake per reason, from its latest events in the chain."""
    return brake_state(await source.recent_events(BRAKE_TYPES, limit=RECENT))


# -- overview -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Organisation:
    """The security team's figures."""

    active: dict[str, int]  # kind -> active grants
    expiring_24h: dict[str, int]
    expiring_7d: dict[str, int]
    drift_open: int
    drift_oldest_age: str
    brake: Brake
    failures: dict[str, int]
    chain: ChainState


@dataclass(frozen=True)
class Overview:
    viewer: Viewer
    generated_at: str
    open_requests: list[RequestView]  # open requests the viewer may status, oldest first
    open_total: int
    waiting_on_me: list[RequestView]
    organisation: Organisation | None = None


async def overview(deps: Deps, source: DashboardSource, viewer: Viewer, chain: ChainWatch) -> Overview:
    now = deps.now()
    if viewer.security:
        records = await source.open_requests(limit=OVERVIEW_LIST)
        total = await source.count_open()
    else:
        scope = await scope_of(deps, source, viewer)
        assert scope is not None
        own = await source.open_requests(limit=OVERVIEW_LIST, requester=viewer.email)
        allowed = set(scope[1])
        others = [r for r in await source.open_requests(limit=5000) if (r.id or 0) in allowed]
        records = sorted({r.id: r for r in own + others}.values(), key=lambda r: r.id or 0)
        records = await keep_visible(deps, source, viewer, records)
        total = len(records)
        records = records[:OVERVIEW_LIST]
    views = await views_of(deps, source, records)
    mine = [v for v in views if viewer.email in v.waiting_on]
    organisation = await _organisation(deps, source, chain, now) if viewer.security else None
    return Overview(viewer=viewer, generated_at=moment(now), open_requests=views, open_total=total,
                    waiting_on_me=mine, organisation=organisation)


async def _organisation(deps: Deps, source: DashboardSource, chain: ChainWatch, now: datetime) -> Organisation:
    counts = await source.expiring_counts(now, [now + timedelta(hours=24), now + timedelta(days=7)])
    drift_open, oldest = await source.drift_summary()
    brake = await read_brake(source)
    return Organisation(
        active={k: v[0] for k, v in counts.items()},
        expiring_24h={k: v[1] for k, v in counts.items()},
        expiring_7d={k: v[2] for k, v in counts.items()},
        drift_open=drift_open, drift_oldest_age=age(oldest, now) if oldest else "",
        brake=brake, failures=await source.provider_failures(), chain=await chain.state(now))


# -- requests -------------------------------------------------------------------------------------
@dataclass
class Filter:
    profile: str | None = None
    state: str | None = None
    person: str | None = None
    submitted_from: datetime | None = None
    submitted_to: datetime | None = None  # the first instant after the period
    page: int = 1
    problems: list[str] = field(default_factory=list)
    malformed: bool = False  # a value no form makes (a control character): the page answers 400

    @classmethod
    def parse(cls, query: dict[str, str], profiles: list[str]) -> Filter:
        """Filters from a query string; what does not parse is named and left out, never guessed. A control
        character (which no one types, and PostgreSQL refuses) also marks the filter ``malformed``."""
        from datetime import UTC, date

        f = cls()
        profile = (query.get("profile") or "").strip().lower()
        if profile:
            f.profile = profile if profile in profiles else None
            if f.profile is None:
                f.problems.append(f"no profile {profile[:60]!r}")
        state = (query.get("state") or "").strip().lower()
        if state:
            f.state = state if state in STATES else None
            if f.state is None:
                f.problems.append(f"no state {state[:30]!r}")
        person = (query.get("person") or "").strip().lower()
        if has_control(person):
            f.problems.append("the person has a control character")
            f.malformed = True
        else:
            f.person = person[:320] or None
        for key in ("from", "to"):
            raw = (query.get(key) or "").strip()
            if not raw:
                continue
            try:
                day = date.fromisoformat(raw)
                at = datetime(day.year, day.month, day.day, tzinfo=UTC)
                end = at + timedelta(days=1)  # the last day of the calendar has no day after it
            except (ValueError, OverflowError):
                f.problems.append(f"{key} is a date like 2026-11-01, not {raw[:30]!r}")
                continue
            if key == "from":
                f.submitted_from = at
            else:
                f.submitted_to = end
        page = (query.get("page") or "").strip()
        f.page = max(1, min(100_000, int(page))) if is_digits(page) and len(page) <= 6 else 1  # ASCII digits only
        return f

    def query(self, **override: Any) -> dict[str, str]:
        values = {"profile": self.profile or "", "state": self.state or "", "person": self.person or "",
                  "from": self.submitted_from.date().isoformat() if self.submitted_from else "",
                  "to": (self.submitted_to - timedelta(days=1)).date().isoformat() if self.submitted_to else "",
                  "page": str(self.page)}
        values.update({k: str(v) for k, v in override.items()})
        return {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}


@dataclass(frozen=True)
class RequestList:
    viewer: Viewer
    filter: Filter
    requests: list[RequestView]
    total: int
    pages: int
    profiles: list[str]
    states: tuple[str, ...] = STATES


async def request_list(deps: Deps, source: DashboardSource, viewer: Viewer, flt: Filter) -> RequestList:
    scope = await scope_of(deps, source, viewer)
    requesters, ids = (None, None) if scope is None else scope
    records, total = await source.search_requests(flt, requesters=requesters, ids=ids,
                                                  offset=(flt.page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    records = await keep_visible(deps, source, viewer, records)
    return RequestList(viewer=viewer, filter=flt, requests=await views_of(deps, source, records), total=total,
                       pages=max(1, -(-total // PAGE_SIZE)), profiles=[p.id for p in deps.policy.profiles])


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    at: str
    ts: str
    type: str
    actor: str
    channel: str
    policy_version: str
    summary: str
    hash: str


@dataclass(frozen=True)
class RequestPage:
    viewer: Viewer
    request: RequestView
    timeline: list[TimelineEntry]
    reroute_released: str = ""  # who released the held re-route of its open step, when (it runs at the next sweep)


async def request_page(deps: Deps, source: DashboardSource, viewer: Viewer, n: int) -> RequestPage | None:
    """None when there is no such request or the viewer may not see it (the same answer for both)."""
    async with deps.store.read() as repo:
        record = await repo.get_request(n)
        decisions = await repo.decisions(n) if record else []
    if record is None or not await visible(deps, viewer, record, decisions):
        return None
    events = await source.events_for(n)
    view = await request_view(deps, record, decisions=[d for d in decisions if d.round == record.round],
                              events=events)
    version = record.policy_version
    timeline = []
    for e in events:
        version = str(e.data.get("policy_version") or version)
        timeline.append(TimelineEntry(seq=e.seq, at=moment(e.ts), ts=e.ts, type=e.type, actor=e.actor,
                                      channel=str(e.data.get("channel") or ""), policy_version=version,
                                      summary=event_summary(e), hash=e.hash))
    released = ""
    if any(s.held_for for s in view.steps):  # the brake's state, read already in this scope to pin the step
        from handlers.compliance.reroute_brake import hold_state

        state = await hold_state(deps)
        if state.get("released_by"):
            at = str(state.get("released_at") or "")
            released = f"{state['released_by']} at {moment(at)}" if at else str(state["released_by"])
    return RequestPage(viewer=viewer, request=view, timeline=timeline, reroute_released=released)


# -- people ---------------------------------------------------------------------------------------
async def drop_hidden(deps: Deps, source: DashboardSource, viewer: Viewer, events: list[AuditEvent]
                      ) -> list[AuditEvent]:
    """The events that name no request, or one the viewer may ``status``. One's own refused probes of a
    request one may not see (``command.refused``, ``approval.refused``) would otherwise tell it from one that
    does not exist (which leaves no event), and show its step and round."""
    numbers = {int(m.group(1)) for e in events if e.request_id
               for m in [re.fullmatch(r"REQ-([0-9]{1,9})", e.request_id)] if m}
    records, _ = (await source.search_requests(Filter(), ids=sorted(numbers), offset=0, limit=len(numbers))
                  if numbers else ([], 0))
    seen = {r.ref for r in await keep_visible(deps, source, viewer, records)}
    return [e for e in events if not e.request_id or e.request_id in seen]


@dataclass(frozen=True)
class Membership:
    provider: str
    group: str
    profiles: list[str]
    member: bool | None  # None: the provider could not answer
    backed_by: str  # "REQ-7", "exception REQ-9", or ""
    status: str  # granted | exception | drift | not a member | unknown


@dataclass(frozen=True)
class PersonPage:
    viewer: Viewer
    email: str
    found: bool
    name: str
    active: bool | None
    facts: tuple[tuple[str, str], ...]
    groups: list[str]
    profiles: list[ProfileView]
    memberships: list[Membership]
    requests: list[RequestView]
    trail: list[TimelineEntry]


# an event's fields a person's trail never shows: a notice's text (``notice.undeliverable``) is a message to
# someone else, for the record and the security team's own notice
_NOT_IN_TRAIL = frozenset({"text"})


async def person_page(deps: Deps, source: DashboardSource, viewer: Viewer, email: str) -> PersonPage | None:
    """None when the viewer may not see this person's page (only the security team sees others')."""
    email = email.strip().lower()
    if not viewer.security and email != viewer.email:
        return None
    person = await deps.person(email)
    holding = await source.holding(requester=email)
    by_group = {deps.groups.ident(r.provider, r.group): r for r in holding}  # by the group's id, not its spelling
    managed: dict[tuple[str, str], list[str]] = {}
    for p in deps.policy.profiles:
        managed.setdefault((p.provider, p.group), []).append(p.id)
    # One question per provider about this one person (principals too, as drift names them), never a listing
    # of every managed group: any signed-in person may reload their page, and the listings' cost grows with
    # the groups while the provider's rate limits are shared with provisioning and the sweeps.
    held: dict[str, set[str] | None] = {}
    for provider_name in sorted({name for name, _ in managed}):
        provider = deps.providers.get(provider_name)
        if provider is None:
            held[provider_name] = None
            continue
        try:
            held[provider_name] = await groups_holding(provider, email, [g for n, g in managed if n == provider_name])
        except Exception:
            held[provider_name] = None
    memberships = []
    for (provider_name, group), profiles in sorted(managed.items()):
        groups = held[provider_name]
        member: bool | None = None if groups is None else group in groups
        grant = by_group.get(deps.groups.ident(provider_name, group))
        backed = "" if grant is None else (f"exception {grant.ref}" if grant.kind == "exception" else grant.ref)
        if member is None:
            status = "unknown"
        elif not member:
            status = "not a member" if grant is None else "provisioning"
        elif grant is None:
            status = "drift"
        else:
            status = "exception" if grant.kind == "exception" else "granted"
        memberships.append(Membership(provider_name, group, profiles, member, backed, status))
    records, _ = await source.search_requests(Filter(person=email), offset=0, limit=500)
    events = await source.person_events(email, [r.ref for r in records], limit=500)
    if not viewer.security:
        events = await drop_hidden(deps, source, viewer, events)
    trail = [TimelineEntry(seq=e.seq, at=moment(e.ts), ts=e.ts, type=e.type, actor=e.actor,
                           channel=str(e.data.get("channel") or ""),
                           policy_version=str(e.data.get("policy_version") or ""), summary=event_summary(e) or
                           ", ".join(f"{k}={v}" for k, v in sorted(e.data.items())
                                     if isinstance(v, str | int) and k not in _NOT_IN_TRAIL)[:200],
                           hash=e.hash) for e in events]
    return PersonPage(
        viewer=viewer, email=email, found=person is not None, name=person.name if person else "",
        active=person.active if person else None, facts=person_facts(person),
        groups=sorted(person.groups) if person else [],
        profiles=list(await profile_views(deps, person)) if person else [],
        memberships=memberships, requests=await views_of(deps, source, records), trail=trail)
