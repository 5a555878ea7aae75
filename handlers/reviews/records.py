"""Plain records of access reviews that the handlers read and write through the repository port."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

OPEN = "open"
PAST_DUE = "past its due time"  # an open campaign whose due time has come: decided no more, closed at the next sweep
SIGNOFF = "signoff"  # closed for decisions, waiting for the sign-off chain before anything is removed
CLOSED = "closed"


def rv_id(n: int) -> str:
    return f"RV-{n}"


@dataclass
class CampaignRecord:
    """One campaign of a review: ``RV-n``, its snapshot's hash and its timers."""

    review: str
    title: str
    started_at: datetime
    due_at: datetime  # when it closes by itself (``duration`` after the start)
    started_by: str  # an email, or ``system`` for a scheduled start
    policy_version: str
    policy_sha256: str
    snapshot_sha256: str
    items: int
    scheduled_for: datetime | None = None  # the scheduled instant this campaign answers; None when started by hand
    state: str = OPEN
    closed_at: datetime | None = None
    signoff: str | None = None
    id: int | None = None
    signoff_asked: dict[str, list[str]] | None = None  # sign-off step (0-based, as text) → the people it asked

    @property
    def ref(self) -> str:
        return rv_id(self.id or 0)

    def decidable_at(self, now: datetime) -> bool:
        """Whether reviewers may decide at ``now``: open, and its due time not reached (the campaign closes at its
        due time; the sweep that records the close may come minutes, or after downtime days, later)."""
        return self.state == OPEN and now < self.due_at


@dataclass
class ItemRecord:
    """One membership under review: who holds what, how, and who is asked about it."""

    campaign_id: int
    number: int  # 1..k within the campaign
    user: str
    profile: str
    provider: str
    group: str
    held_via: str  # REQ-n | exception REQ-n | standing
    reviewer: str  # an email, or group:<name>
    reviewer_basis: str  # why this reviewer: manager | owner | any_of | user | service owner | fallback: <why>
    recommendation: str  # keep | remove
    recommendation_reason: str = ""
    name: str = ""
    title: str | None = None
    department: str | None = None
    kind: str = "user"  # user | service
    active: bool = True
    last_sign_in: datetime | None = None
    request_id: int | None = None
    expires_at: datetime | None = None
    since: datetime | None = None
    state: str = OPEN  # open | gone | removed | kept | failed
    removed_at: datetime | None = None
    outcome: str | None = None
    id: int | None = None


@dataclass
class ReviewDecisionRecord:
    campaign_id: int
    item: int
    decision: str  # keep | remove
    actor: str  # the reviewer's email, or system
    decided_at: datetime
    comment: str | None = None
    recommendation: str | None = None
    id: int | None = None


@dataclass
class SnapshotRecord:
    campaign_id: int
    review: str
    taken_at: datetime
    sha256: str
    body: str  # the canonical JSON whose SHA-256 is ``sha256``


@dataclass
class ScheduleRecord:
    """The bookkeeping of one review's scheduled starts.

    ``first_seen`` is when a policy with the review was first in force (earlier instants never
    start it); ``done_for`` the latest scheduled instant already started; ``pending_for`` the one
    being attempted, with its lease and its retry time after a failed start.
    """

    review: str
    first_seen: datetime
    done_for: datetime | None = None
    pending_for: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    last_error: str | None = None


@dataclass
class BatchRecord:
    """One reviewer's batch in a campaign: when it was first opened, reminded and escalated."""

    campaign_id: int
    reviewer: str  # an email, or group:<name>
    opened_at: datetime | None = None
    opened_by: str | None = None
    reminded_at: datetime | None = None
    reminders: int = 0
    escalated_at: datetime | None = None
    escalated_to: str | None = None  # an email, or group:<name>
    escalated_items: list[int] | None = None  # the items escalated (undecided then); None: the whole batch
    escalation_opened_at: datetime | None = None  # when the escalation's addressee first opened it


@dataclass
class SignoffRecord:
    campaign_id: int
    step: int
    approver: str
    decision: str  # approved | denied
    decided_at: datetime
    comment: str | None = None


@dataclass
class UndoRecord:
    """``review undo RV-n ITEM because …`` by one security member, approved by another."""

    campaign_id: int
    item: int
    requested_by: str
    reason: str
    requested_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None
    id: int | None = None
