"""The access reviews of an evidence pack's period, as report.html shows them (SPEC §6, §7), gathered
from the ``review.*`` events of audit.jsonl and the removals they set off, so that the readable report
says what the chain says: campaigns, completion (by department), keeps and removals, time to decide,
what was overdue, the sign-off, and removals that failed at close and were done later."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

SYSTEM = "system"
REVIEW_EVENTS = frozenset({"review.started", "review.decided", "review.reminded", "review.escalated",
                           "review.item_gone", "review.signoff_requested", "review.signoff", "review.closed",
                           "review.removal_completed", "review.removal_skipped"})
MAX_CAMPAIGNS = 1000
UNKNOWN = "(no department)"


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@dataclass
class Campaign:
    review_id: str
    review: str = ""
    started_at: str | None = None  # None: started before the period
    due_at: str | None = None
    items: int | None = None
    departments: dict[str, int] = field(default_factory=dict)
    final: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # item → (actor, decision, department)
    first_by_person: dict[int, float] = field(default_factory=dict)  # item → seconds from the start
    gone: set[int] = field(default_factory=set)
    reminded: int = 0
    escalated: int = 0
    signoff: str | None = None  # requested | approved | denied | failed
    stood_in: list[str] = field(default_factory=list)  # approvers the security team signed instead of (own access)
    closed_at: str | None = None
    closed: dict[str, Any] | None = None
    completed_later: int = 0
    skipped: int = 0  # removals not run: the member had left, or a grant holds the membership (review.removal_skipped)

    @property
    def decided_by_people(self) -> int:
        return sum(actor != SYSTEM for actor, _, _ in self.final.values())

    def count(self, decision: str) -> int:
        return sum(d == decision for _, d, _ in self.final.values())

    @property
    def defaulted(self) -> int:
        return sum(actor == SYSTEM for actor, _, _ in self.final.values())

    def overdue(self, end: datetime) -> bool:
        """Still open after its due time at the end of what the pack covers."""
        return self.closed_at is None and self.signoff is None and self.due_at is not None and _at(self.due_at) < end


@dataclass
class ReviewFigures:
    campaigns: dict[str, Campaign] = field(default_factory=dict)

    def _campaign(self, review_id: str) -> Campaign | None:
        if review_id not in self.campaigns and len(self.campaigns) >= MAX_CAMPAIGNS:
            return None
        return self.campaigns.setdefault(review_id, Campaign(review_id))

    def event(self, event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        kind, ts = event["type"], event["ts"]
        review_id = data.get("review_id")
        if not review_id or kind not in REVIEW_EVENTS:
            return
        c = self._campaign(str(review_id))
        if c is None:
            return
        if kind == "review.started":
            c.review, c.started_at, c.due_at = str(data.get("review") or ""), ts, data.get("due_at")
            c.items = int(data.get("items") or 0)
            c.departments = {str(k): int(v) for k, v in (data.get("departments") or {}).items()}
        elif kind == "review.decided" and isinstance(data.get("item"), int):
            item, actor = data["item"], str(event.get("actor") or "")
            c.final[item] = (actor, str(data.get("decision")), str(data.get("department") or UNKNOWN))
            if actor != SYSTEM and c.started_at and item not in c.first_by_person:
                c.first_by_person[item] = (_at(ts) - _at(c.started_at)).total_seconds()
        elif kind == "review.item_gone" and isinstance(data.get("item"), int):
            c.gone.add(data["item"])
        elif kind == "review.reminded":
            c.reminded += 1
        elif kind == "review.escalated":
            c.escalated += 1
        elif kind == "review.signoff_requested":
            c.signoff = c.signoff or "requested"
            c.stood_in += [str(x) for x in data.get("instead_of") or () if str(x) not in c.stood_in]
        elif kind == "review.signoff" and data.get("decision") == "denied":
            c.signoff = "denied"
        elif kind == "review.closed":
            c.closed_at, c.closed = ts, data
            c.signoff = data.get("signoff") or c.signoff
        elif kind == "review.removal_completed":
            c.completed_later += 1
        elif kind == "review.removal_skipped":
            c.skipped += 1

    # -- what the report shows ------------------------------------------------------------------
    def ordered(self) -> list[Campaign]:
        return sorted(self.campaigns.values(), key=lambda c: (c.started_at or "", c.review_id))

    def by_department(self) -> list[tuple[str, int, int]]:
        """(department, items, decided by a person) over the campaigns started in the period."""
        items: dict[str, int] = {}
        done: dict[str, int] = {}
        for c in self.campaigns.values():
            if c.started_at is None:
                continue
            for dept, n in c.departments.items():
                items[dept] = items.get(dept, 0) + n
            for actor, _, dept in c.final.values():
                if actor != SYSTEM:
                    done[dept] = done.get(dept, 0) + 1
        return [(d, items.get(d, 0), done.get(d, 0)) for d in sorted(set(items) | set(done))]

    def decide_seconds(self) -> list[float]:
        return [s for c in self.campaigns.values() for s in c.first_by_person.values()]

    def summary(self) -> dict[str, float | int | None]:
        secs = self.decide_seconds()
        kept = sum(c.count("keep") for c in self.campaigns.values())
        removed = sum(c.count("remove") for c in self.campaigns.values())
        return {"campaigns": len(self.campaigns), "kept": kept, "removed": removed,
                "removal_rate": removed / (kept + removed) if kept + removed else None,
                "median_decide_s": median(secs) if secs else None, "max_decide_s": max(secs) if secs else None}
