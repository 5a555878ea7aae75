"""Plain records the handlers read and write through the repository port."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

PENDING = "pending"
APPROVED = "approved"
ACTIVE = "active"
EXPIRED = "expired"
RELEASED = "released"
REVOKED = "revoked"
DENIED = "denied"
CANCELLED = "cancelled"
FAILED = "failed"

OPEN_STATES = (PENDING, APPROVED, ACTIVE)
ENDED_STATES = (EXPIRED, RELEASED, REVOKED, DENIED, CANCELLED, FAILED)
HOLDING_STATES = (APPROVED, ACTIVE)  # states in which the user is (or is about to be) a member


def req_id(n: int) -> str:
    return f"REQ-{n}"


def req_number(ref: object) -> int | None:
    """The number of a ``REQ-n`` this store wrote (1 to 9 ASCII digits), or None for anything else."""
    text = str(ref)
    digits = text[4:]
    return int(digits) if text[:4] == "REQ-" and 0 < len(digits) < 10 and digits.isascii() and digits.isdigit() \
        else None


@dataclass
class RequestRecord:
    requester: str
    profile: str
    kind: str  # standard | exception
    duration: timedelta
    justification: str | None
    ticket: str | None
    state: str
    submitted_at: datetime
    policy_version: str
    policy_sha256: str
    provider: str
    group: str
    id: int | None = None
    step: int = 0  # index of the open step in the chain of the current round
    round: int = 0  # 0 = the request itself; n > 0 = the n-th extension
    step_opened_at: datetime | None = None
    ext_duration: timedelta | None = None  # the extension awaiting approval
    ext_justification: str | None = None
    approved_at: datetime | None = None
    started_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    reminded_step: int | None = None  # (round * 100 + step) last reminded
    escalated_step: int | None = None
    warned_expiry: datetime | None = None  # the expiry the holder was last warned about
    failure: str | None = None
    reroute_held: int | None = None  # (round * 100 + step) whose re-route the safety brake held
    asked_step: int | None = None  # (round * 100 + step) whose asking ``asked`` / ``asked_at`` record
    asked: tuple[str, ...] | None = None  # whom that step last asked (approval.requested / approval.rerouted)
    asked_at: datetime | None = None

    @property
    def ref(self) -> str:
        return req_id(self.id or 0)

    @property
    def extension_pending(self) -> bool:
        return self.ext_duration is not None

    @property
    def asked_now(self) -> frozenset[str] | None:
        """Whom the open step of the current round asked, when the request itself records it (``asked_step``
        names that step); None otherwise (a request asked before the request kept it: its events say)."""
        if self.asked is None or self.asked_step != self.round * 100 + self.step:
            return None
        return frozenset(self.asked)


@dataclass(frozen=True)
class DecisionRecord:
    """One approval or denial, as recorded (never changed: a read's decisions are shared by the callers it answers,
    handlers/shared_reads.py)."""

    request_id: int
    round: int
    step: int
    approver: str
    decision: str  # approved | denied
    comment: str | None
    decided_at: datetime
    id: int | None = None


@dataclass
class OutboxNotice:
    """An unattended notice in the outbox (``handlers/outbox.py``): what to send, and how sending went."""

    recipient: str
    kind: str
    text: str
    request_id: int | None = None
    status: str = "pending"  # pending | sent | undeliverable | unreachable | dropped
    attempts: int = 0
    next_attempt_at: datetime | None = None  # due from then; while a process sends it, its lease
    last_error: str | None = None
    id: int | None = None
    view: Any = None  # a card's view-model (handlers/notice_views.py), rebuilt from what was stored
    claimed_by: str | None = None  # the lease token of the process that took it to send


@dataclass
class OpRecord:
    """An intended provider call, recorded before it is made and marked done after."""

    request_id: int
    op: str  # add | remove
    provider: str
    group: str
    email: str
    created_at: datetime
    status: str = "pending"  # pending | done | skipped | failed
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    correlation_id: str | None = None
    failure_reported: bool = False
    done_at: datetime | None = None
    leased_until: datetime | None = None  # a process owns the call until then (it is in flight)
    reason: str | None = None  # a standing membership's removal (request_id 0): review | terminated
    id: int | None = None
    # why a membership no grant holds is removed (``terminated``, ``drift``, ``review``); request_id is 0 then
    reason: str | None = None
    # some attempt may have carried the call out at the provider though no success came back: an answer that never
    # came (a time-out, a dropped connection, a claim whose answer was never recorded) or a 500/502/504
    may_have_landed: bool = False

    @property
    def member(self) -> tuple[str, str, str]:
        """The membership this operation changes: (provider, group, user)."""
        return (self.provider, self.group, self.email)

    def in_flight(self, now: datetime) -> bool:
        """Claimed by a process whose lease still runs: its call may be at the provider now."""
        return self.status == "pending" and self.leased_until is not None and self.leased_until > now


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    ts: str
    type: str
    actor: str
    request_id: str | None
    profile: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "type": self.type,
            "actor": self.actor,
            "request_id": self.request_id,
            "profile": self.profile,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass
class DriftRecord:
    provider: str
    group: str
    email: str
    first_seen: datetime
    resolved_at: datetime | None = None
    id: int | None = None
    kind: str = "member"  # member: in the group with no grant; missing: holds a grant, not in the group
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LeaverRecord:
    """A person the identity provider reports inactive or no longer finds (SPEC §3.6).

    ``first_seen`` is the real instant of the first sweep that saw it, ``first_judged`` the instant that
    sweep judged as of (the unknown grace is counted on it); ``terminated_at`` is set once, when the
    person became a leaver (``user.terminated``).
    """

    email: str
    found: bool
    first_seen: datetime
    first_judged: datetime
    terminated_at: datetime | None = None


# The events that say why a request waits on no decision, the newest of them deciding (handlers/approvals.py
# closed_why): an extension asked, a grant revoked, expired or released, a request cancelled, failed or denied, a
# step denied, a request approved.
ENDING_TYPES = ("request.extension_requested", "grant.revoked", "grant.expired", "grant.released",
                "request.cancelled", "request.failed", "request.denied", "approval.denied", "request.approved")
