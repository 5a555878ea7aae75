"""The posture and reviews pages: figures per quarter, and access-review campaigns read from the chain.

Reviews are read from their ``review.*`` events (SPEC §7 fixes their data), so the page shows
every campaign the chain holds and is empty, not broken, while there are none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from statistics import median

from handlers.context import Deps
from handlers.dashboard.brake import Brake
from handlers.dashboard.holds import GivenUpNotices, RerouteHold, given_up_notices, reroute_hold
from handlers.dashboard.pages import moment, read_brake
from handlers.dashboard.ports import DashboardSource
from handlers.dashboard.signin import Viewer
from handlers.records import RequestRecord
from handlers.reports import ReportSource, termination_rows

QUARTERS = 4
REVIEW_TYPES = ("review.started", "review.opened", "review.decided", "review.reminded", "review.escalated",
                "review.closed", "review.failed")


def quarter_of(at: datetime | date) -> str:
    return f"{at.year}-Q{(at.month - 1) // 3 + 1}"


def quarter_start(at: datetime) -> datetime:
    return datetime(at.year, 3 * ((at.month - 1) // 3) + 1, 1, tzinfo=UTC)


def previous_quarters(now: datetime, n: int) -> list[str]:
    out, year, q = [], now.year, (now.month - 1) // 3 + 1
    for _ in range(n):
        out.append(f"{year}-Q{q}")
        year, q = (year - 1, 4) if q == 1 else (year, q - 1)
    return list(reversed(out))


@dataclass
class Quarter:
    label: str
    requests: int = 0
    exceptions: int = 0
    approved: int = 0
    decide_hours: list[float] = field(default_factory=list)
    leavers: int = 0
    within_sla: int = 0

    @property
    def exception_rate(self) -> float | None:
        return self.exceptions / self.requests if self.requests else None

    @property
    def median_decide_hours(self) -> float | None:
        return median(self.decide_hours) if self.decide_hours else None

    @property
    def sla_rate(self) -> float | None:
        return self.within_sla / self.leavers if self.leavers else None


@dataclass(frozen=True)
class Coverage:
    granted: int
    exceptions: int
    reviewed: int
    drift: int

    @property
    def backed(self) -> int:
        return self.granted + self.exceptions + self.reviewed

    @property
    def rate(self) -> float | None:
        total = self.backed + self.drift
        return self.backed / total if total else None


@dataclass(frozen=True)
class Posture:
    viewer: Viewer
    coverage: Coverage
    quarters: list[Quarter]
    sla_hours: float
    brake: Brake = field(default_factory=Brake)
    reroutes: RerouteHold = field(default_factory=RerouteHold)
    given_up: GivenUpNotices = field(default_factory=GivenUpNotices)

    def series(self, attribute: str, scale: float = 1.0) -> list[tuple[str, float]]:
        """(quarter, figure) pairs for a chart; a quarter without the figure shows 0."""
        return [(q.label, float(getattr(q, attribute) or 0) * scale) for q in self.quarters]


async def posture(deps: Deps, source: DashboardSource, events: ReportSource, viewer: Viewer) -> Posture:
    now = deps.now()
    labels = previous_quarters(now, QUARTERS)
    start = datetime(int(labels[0][:4]), 3 * (int(labels[0][-1]) - 1) + 1, 1, tzinfo=UTC)
    quarters = {label: Quarter(label) for label in labels}
    for row in await source.quarter_figures(start):
        q = quarters.get(quarter_of(row["submitted_at"]))
        if q is None:
            continue
        q.requests += 1
        q.exceptions += row["kind"] == "exception"
        if row["approved_at"] is not None:
            q.approved += 1
        if row["first_decision"] is not None:
            q.decide_hours.append((row["first_decision"] - row["submitted_at"]).total_seconds() / 3600)
    sla = deps.policy.schedule.termination_sla.total_seconds() / 3600
    for row in await termination_rows(events, sla):
        q = quarters.get(quarter_of(datetime.fromisoformat(row["detected_at"].replace("Z", "+00:00"))))
        if q is not None:
            q.leavers += 1
            q.within_sla += row["within_sla"] == "yes" and bool(row["revoked_at"] or not row["grants"])
    holding = await source.holding()
    drift_open, _ = await source.drift_summary()
    reviewed = await kept_by_reviews(deps, source, holding)
    coverage = Coverage(granted=sum(1 for r in holding if r.kind != "exception"),
                        exceptions=sum(1 for r in holding if r.kind == "exception"), reviewed=reviewed,
                        drift=drift_open)
    return Posture(viewer=viewer, coverage=coverage, quarters=[quarters[label] for label in labels], sla_hours=sla,
                   brake=await read_brake(source), reroutes=await reroute_hold(source),
                   given_up=await given_up_notices(deps, source, viewer))


async def kept_by_reviews(deps: Deps, source: DashboardSource, holding: list[RequestRecord]) -> int:
    """Memberships a review backs: each standing membership the latest closed review to have reviewed it kept
    (or an undo restored), counted once however many campaigns kept it, not where a grant that holds it counts
    it, and not once the chain says it was taken out after that review's snapshot (a removal, or the end of a
    grant for it) and not put back. Ordered by the chain, not by clocks. Items, events and grants name a group as
    the policy did then (by name, or by id): memberships are matched by the group's resolved id."""
    from handlers.reviews.campaign import repo_of
    from handlers.reviews.records import rv_id

    ident = deps.groups.ident

    def by_id(provider: str, group: str, user: str) -> tuple[str, str, str]:
        return (*ident(provider, group), user)

    async with deps.store.read() as raw:
        stored = await repo_of(raw).kept_standing()
    if not stored:
        return 0
    kept: dict[tuple[str, str, str], int] = {}  # one membership kept under both spellings: the later campaign's
    for (provider, group, user), n in stored.items():
        key = by_id(provider, group, user)
        kept[key] = max(n, kept.get(key, n))
    started = {str(e.data.get("review_id")): e for e in await source.events_of_types(("review.started",))}
    after = {key: started[rv_id(n)].seq if rv_id(n) in started else 0 for key, n in kept.items()}
    since = min((started[rv_id(n)].ts for n in set(kept.values()) if rv_id(n) in started), default=None)
    events = await source.events_of_types(MEMBERSHIP_EVENTS, since=since)
    requesters = await _requesters(deps, {e.request_id for e in events if e.type in GRANT_ENDS and e.request_id})
    last: dict[tuple[str, str, str], str] = {}
    for e in events:
        user = requesters.get(e.request_id or "", "") if e.type in GRANT_ENDS else str(e.data.get("user") or "")
        key = by_id(str(e.data.get("provider") or ""), str(e.data.get("group") or ""), user.lower())
        if key in after and e.seq > after[key]:
            last[key] = "added" if e.type == "membership.added" else "removed"
    held = {by_id(r.provider, r.group, r.requester.lower()) for r in holding}
    return sum(1 for key in kept if last.get(key) != "removed" and key not in held)


MEMBERSHIP_EVENTS = ("membership.added", "membership.removed", "grant.expired", "grant.revoked")
GRANT_ENDS = ("grant.expired", "grant.revoked")


async def _requesters(deps: Deps, refs: set[str]) -> dict[str, str]:
    """The requester of each request named ``REQ-n``."""
    numbers = sorted(int(r[4:]) for r in refs if r.startswith("REQ-") and r[4:].isdigit() and len(r) < 14)
    if not numbers:
        return {}
    async with deps.store.read() as raw:
        records = [await raw.get_request(n) for n in numbers]
    return {r.ref: r.requester for r in records if r is not None}


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- reviews --------------------------------------------------------------------------------------
@dataclass
class ReviewerFigures:
    reviewer: str
    department: str = ""
    decided: int = 0
    removed: int = 0
    hours: list[float] = field(default_factory=list)
    overdue: bool = False

    @property
    def median_hours(self) -> float | None:
        return median(self.hours) if self.hours else None


@dataclass
class Campaign:
    review_id: str
    review: str
    started: str
    items: int
    decided: dict[str, tuple[str, str]] = field(default_factory=dict)  # item -> (decision, by)
    closed: str = ""
    reviewers: dict[str, ReviewerFigures] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return len(self.decided)

    @property
    def completion(self) -> float | None:
        return self.done / self.items if self.items else None

    @property
    def removed(self) -> int:
        return sum(1 for d, _ in self.decided.values() if d == "remove")

    @property
    def removal_rate(self) -> float | None:
        return self.removed / self.done if self.done else None

    def departments(self) -> list[tuple[str, int, int]]:
        """(department, decided, removed) of the reviewers' departments."""
        out: dict[str, list[int]] = {}
        for r in self.reviewers.values():
            row = out.setdefault(r.department or "unknown", [0, 0])
            row[0] += r.decided
            row[1] += r.removed
        return [(k, v[0], v[1]) for k, v in sorted(out.items())]

    def department_series(self) -> list[tuple[str, float]]:
        return [(d, float(n)) for d, n, _ in self.departments()]


@dataclass(frozen=True)
class Reviews:
    viewer: Viewer
    campaigns: list[Campaign]


async def reviews(deps: Deps, source: DashboardSource, viewer: Viewer) -> Reviews:
    campaigns: dict[str, Campaign] = {}
    started_at: dict[str, datetime] = {}
    for e in await source.events_of_types(REVIEW_TYPES):
        rid = str(e.data.get("review_id") or "")
        if not rid:
            continue
        if e.type == "review.started":
            campaigns[rid] = Campaign(rid, str(e.data.get("review") or ""), moment(e.ts), int(e.data.get("items") or 0))
            started_at[rid] = _at(e.ts)
            continue
        c = campaigns.get(rid)
        if c is None:
            continue
        who = str(e.data.get("reviewer") or e.actor)
        if e.type == "review.decided":
            item, decision = str(e.data.get("item")), str(e.data.get("decision") or "")
            before = c.decided.get(item)
            if before is not None:  # the last decision counts
                old = c.reviewers.get(before[1])
                if old is not None:
                    old.decided -= 1
                    old.removed -= before[0] == "remove"
            c.decided[item] = (decision, e.actor)
            r = c.reviewers.setdefault(e.actor, ReviewerFigures(e.actor))
            r.decided += 1
            r.removed += decision == "remove"
            r.hours.append((_at(e.ts) - started_at[rid]).total_seconds() / 3600)
        elif e.type in ("review.opened", "review.reminded"):
            c.reviewers.setdefault(who, ReviewerFigures(who))
        elif e.type == "review.escalated":
            c.reviewers.setdefault(who, ReviewerFigures(who)).overdue = True
        elif e.type == "review.closed":
            c.closed = moment(e.ts)
    shown: list[Campaign] = []
    for c in campaigns.values():
        if not viewer.security:  # a reviewer sees the campaigns they decide on (from its start, opened or not,
            # in a reviewing group, escalated to), with their own figures, not their colleagues'
            mine = await decided_on(deps, c.review_id, viewer.email)
            if not mine and viewer.email not in c.reviewers:
                continue
            c.reviewers = {viewer.email: c.reviewers.get(viewer.email) or ReviewerFigures(viewer.email)}
            own_items(c, mine, viewer.email)
        shown.append(c)
    for c in shown:
        for r in c.reviewers.values():
            person = await deps.person(r.reviewer) if "@" in r.reviewer else None
            r.department = (person.department or "") if person else ""
            if c.closed:
                r.overdue = False
    return Reviews(viewer=viewer, campaigns=sorted(shown, key=lambda c: c.started, reverse=True))


async def decided_on(deps: Deps, review_id: str, email: str) -> set[str] | None:
    """The item numbers of campaign ``review_id`` that ``email`` decides on (their batches, a group batch
    they belong to, a batch escalated to them: the rule of the review commands), or None when the store
    has no such campaign."""
    from handlers.reviews.campaign import pinned, repo_of
    from handlers.reviews.decide import may_decide

    m = re.fullmatch(r"RV-([0-9]{1,9})", review_id)
    if m is None:
        return None
    async with deps.store.read() as raw:
        repo = repo_of(raw)
        campaign = await repo.get_campaign(int(m.group(1)))
        if campaign is None:
            return None
        batches = await repo.batches(campaign.id or 0)
        items = await repo.items(campaign.id or 0)
    judged = await pinned(deps, campaign)
    return {str(i.number) for i in items if may_decide(judged, i, email, batches)}


def own_items(c: Campaign, mine: set[str] | None, email: str) -> None:
    """Narrow a campaign's figures (progress, items, removals) to the items its viewer decides on, and
    those they decided; without the campaign's record, to those they decided."""
    mine = (mine or set()) | {item for item, (_, by) in c.decided.items() if by == email}
    c.items = len(mine)
    c.decided = {item: d for item, d in c.decided.items() if item in mine}


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))
