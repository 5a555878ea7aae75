"""The safety brake as the dashboard shows it, read from the audit chain alone.

The brake (SPEC §3.6) records ``automation.paused`` {reason, count, limit, sample} by ``system`` when one
source of bulk removals (``terminated``, ``ineligible``, ``review``, …) goes over ``safety.max_removals``,
again whenever the held count changes, and ``automation.resumed`` {count, reason} when a security team
member says ``resume removals`` (the held removals run at the next sweep) or when the count falls back
under the limit by itself (``count: 0``, by ``system``). Each reason pauses and resumes on its own, so the
state is folded per reason: paused since the first pause after its last resume, holding the count of its
latest pause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from handlers.records import AuditEvent

BRAKE_TYPES = ("automation.paused", "automation.resumed")
RECENT = 1000  # brake events read, newest first: far more than any run of pauses between two resumes


@dataclass(frozen=True)
class Pause:
    reason: str
    since: str  # ts of the first automation.paused since this reason last resumed
    count: int  # removals held, as of the latest pause event
    limit: int | None
    sample: tuple[str, ...]
    last_seq: int


@dataclass(frozen=True)
class Resume:
    reason: str
    at: str
    by: str
    count: int


@dataclass(frozen=True)
class Brake:
    pauses: tuple[Pause, ...] = ()  # one per reason still paused, oldest pause first
    resumed: Resume | None = None  # the latest resume, if any

    @property
    def paused(self) -> bool:
        return bool(self.pauses)

    @property
    def count(self) -> int:
        """Removals held over every paused reason."""
        return sum(p.count for p in self.pauses)

    @property
    def since(self) -> str:
        return min(p.since for p in self.pauses) if self.pauses else ""

    @property
    def reason(self) -> str:
        return ", ".join(p.reason for p in self.pauses)


def brake_state(events: Sequence[AuditEvent]) -> Brake:
    """Fold ``automation.paused`` / ``automation.resumed`` events (any order in; folded by seq)."""
    open_: dict[str, Pause] = {}
    resumed: Resume | None = None
    for e in sorted(events, key=lambda e: e.seq):
        reason = str(e.data.get("reason") or "").strip()
        if e.type == "automation.paused":
            reason = reason or "removals"
            before = open_.get(reason)
            limit = e.data.get("limit")
            open_[reason] = Pause(reason=reason, since=before.since if before else e.ts,
                                  count=_int(e.data.get("count")), limit=_int(limit) if limit is not None else None,
                                  sample=tuple(str(s) for s in e.data.get("sample") or ())[:10], last_seq=e.seq)
        elif e.type == "automation.resumed":
            if reason:
                open_.pop(reason, None)
            else:  # a resume that names no reason resumes them all
                open_.clear()
            resumed = Resume(reason=reason, at=e.ts, by=e.actor, count=_int(e.data.get("count")))
    return Brake(pauses=tuple(sorted(open_.values(), key=lambda p: (p.since, p.reason))), resumed=resumed)


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0
