"""What the dashboard reads and writes, as ports (implemented in ``store/dashboard.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from handlers.audit import Verification
from handlers.records import AuditEvent, DecisionRecord, RequestRecord


@dataclass
class SignInToken:
    """A one-time secret, stored only as its SHA-256: a sign-in link, or an OpenID Connect flow."""

    token_hash: str
    kind: str  # link | oidc
    email: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SessionRecord:
    session_hash: str
    email: str
    via: str  # link | entra
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None


class SignInTx(Protocol):
    """One write transaction (under the store's write lock) with the audit chain's ``append``."""

    async def add_token(self, token: SignInToken) -> None: ...

    async def get_token(self, token_hash: str) -> SignInToken | None: ...

    async def use_token(self, token_hash: str, at: datetime) -> bool:
        """Mark an unused, unexpired token used; False when it was used or expired meanwhile."""
        ...

    async def add_session(self, session: SessionRecord) -> None: ...

    async def get_session(self, session_hash: str) -> SessionRecord | None: ...

    async def end_session(self, session_hash: str, at: datetime) -> None: ...

    async def purge(self, before: datetime) -> int:
        """Forget tokens and sessions that expired before ``before``."""
        ...

    async def trim_flows(self, now: datetime, keep: int) -> int:
        """Forget OpenID Connect flows expired by ``now``, then all but the ``keep`` newest of the others."""
        ...

    async def append(self, type: str, *, actor: str, ts: datetime, data: dict[str, Any] | None = None,
                     request_id: str | None = None, profile: str | None = None) -> AuditEvent: ...


class RequestFilter(Protocol):
    profile: str | None
    state: str | None
    person: str | None
    submitted_from: datetime | None
    submitted_to: datetime | None


class DashboardSource(Protocol):
    """Reads for the pages: counts and lists computed by the database, not in Python."""

    def signin(self) -> AbstractAsyncContextManager[SignInTx]: ...

    def flows(self) -> AbstractAsyncContextManager[SignInTx]:
        """A transaction for sign-in flows alone (it appends no event), not behind the audit chain's lock."""
        ...

    async def session(self, session_hash: str) -> SessionRecord | None: ...

    async def live_sessions(self, now: datetime) -> list[tuple[str, str]]:
        """(session hash, email) of every session neither ended nor expired at ``now``."""
        ...

    async def terminated_since(self, email: str, since: datetime) -> bool:
        """Whether the leaver sweep recorded ``user.terminated`` for ``email`` after ``since`` (the audit chain)."""
        ...

    async def state_counts(self) -> dict[str, int]: ...

    async def open_requests(self, *, limit: int, requester: str | None = None) -> list[RequestRecord]:
        """Requests waiting on someone: pending, and active ones with an extension pending."""
        ...

    async def count_open(self) -> int: ...

    async def expiring_counts(self, now: datetime, horizons: Sequence[datetime]) -> dict[str, list[int]]:
        """Active grants by kind (standard | exception) expiring before each horizon."""
        ...

    async def drift_summary(self) -> tuple[int, datetime | None]:
        """Open drift findings and when the oldest was first seen."""
        ...

    async def provider_failures(self) -> dict[str, int]:
        """``failed`` provider calls, calls ``retrying`` (pending after a failed attempt), ``requests`` failed."""
        ...

    async def latest_event(self, types: Sequence[str]) -> AuditEvent | None: ...

    async def head(self) -> tuple[int, str]:
        """The chain's last seq and hash (0 and 64 zeros when empty)."""
        ...

    async def verify_from(self, first_seq: int, prev_hash: str) -> Verification: ...

    async def decisions_for(self, request_ids: Sequence[int]) -> dict[int, list[DecisionRecord]]: ...

    async def search_requests(self, flt: RequestFilter, *, requesters: Sequence[str] | None = None,
                              ids: Sequence[int] | None = None, offset: int, limit: int
                              ) -> tuple[list[RequestRecord], int]:
        """One page of requests matching ``flt`` (newest first) and how many match in all; ``requesters``
        and ``ids`` restrict to those (their union) when given."""
        ...

    async def decided_by(self, email: str) -> list[int]:
        """Ids of the requests this person decided a step of."""
        ...

    async def events_for(self, request_id: int) -> list[AuditEvent]: ...

    async def person_events(self, email: str, request_ids: Sequence[str], *, limit: int) -> list[AuditEvent]:
        """Events by this person, about them (``data.user``) or about their requests, newest first."""
        ...

    async def events_of_types(self, types: Sequence[str], *, since: str | None = None,
                              limit: int = 100_000) -> list[AuditEvent]: ...

    async def recent_events(self, types: Sequence[str], *, limit: int) -> list[AuditEvent]:
        """The newest ``limit`` events of these types, in chain order."""
        ...

    async def holding(self, *, requester: str | None = None) -> list[RequestRecord]: ...

    async def given_up_notices(self, since: datetime, *, limit: int, never_sent: str
                               ) -> tuple[int, list[dict[str, Any]]]:
        """Outbox notices marked ``undeliverable`` or ``unreachable`` since then (those whose last error is
        ``never_sent`` left out), how many, and the ``limit`` latest: recipient, kind, request_id, status,
        attempts, last_error, done_at."""
        ...

    async def compliance_state(self, key: str) -> dict[str, Any] | None: ...

    async def quarter_figures(self, since: datetime) -> list[dict[str, Any]]:
        """Per request submitted since then: id, kind, state, submitted_at, first and last decision time."""
        ...
