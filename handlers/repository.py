"""The store port: one unit of work at a time, every write serialised with the audit chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from handlers.audit import Verification
from handlers.records import (
    AuditEvent,
    DecisionRecord,
    DriftRecord,
    LeaverRecord,
    OpRecord,
    OutboxNotice,
    RequestRecord,
)


class Repository(Protocol):
    """What a handler may read and write inside one transaction."""

    async def get_request(self, request_id: int) -> RequestRecord | None: ...

    async def add_request(self, record: RequestRecord) -> int: ...

    async def save_request(self, record: RequestRecord) -> None: ...

    async def find_requests(
        self,
        *,
        requester: str | None = None,
        states: Sequence[str] | None = None,
        profile: str | None = None,
        provider: str | None = None,
        group: str | None = None,
        expires_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[RequestRecord]: ...

    async def decisions(self, request_id: int, round: int | None = None) -> list[DecisionRecord]: ...

    async def request_with_decisions(self, request_id: int) -> tuple[RequestRecord | None, list[DecisionRecord]]:
        """The request and its decisions (in the order taken), read at once."""
        ...

    async def add_decision(self, decision: DecisionRecord) -> None: ...

    async def append(
        self,
        type: str,
        *,
        actor: str,
        ts: datetime,
        request: RequestRecord | None = None,
        request_id: str | None = None,
        profile: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AuditEvent: ...

    async def events_for(self, request_id: int) -> list[AuditEvent]: ...

    async def last_ending(self, request_id: int) -> AuditEvent | None:
        """The newest event of the request among those that say why it waits on no decision (extension asked,
        grant revoked / expired / released, request cancelled / failed / denied, a step denied, request approved)."""
        ...

    async def add_op(self, op: OpRecord) -> int: ...

    async def save_op(self, op: OpRecord) -> None: ...

    async def due_ops(self, now: datetime, *, limit: int = 100,
                      member: tuple[str, str, str] | None = None) -> list[OpRecord]:
        """Due pending operations, only the first pending one of each (provider, group, user)."""
        ...

    async def ops_for_member(self, provider: str, group: str, email: str, *,
                             statuses: Sequence[str] | None = None) -> list[OpRecord]: ...

    async def unsettled_ops(self, since: datetime) -> list[OpRecord]:
        """Operations still pending, or finished at or after ``since``."""
        ...

    async def ops_for(self, request_id: int) -> list[OpRecord]: ...

    async def get_op(self, op_id: int) -> OpRecord | None: ...
    async def get_ops(self, op_ids: list[int]) -> dict[int, OpRecord]: ...

    async def get_leaver(self, email: str) -> LeaverRecord | None: ...

    async def save_leaver(self, record: LeaverRecord) -> None: ...

    async def forget_leaver(self, email: str) -> None: ...

    async def first_seen(self, key: str, at: datetime) -> bool: ...

    async def unsee(self, key: str) -> None: ...

    async def get_state(self, key: str) -> dict[str, Any] | None: ...

    async def set_state(self, key: str, value: dict[str, Any], at: datetime) -> None: ...

    async def mark_reroutes_held(self, marks: dict[int, int]) -> None:
        """``reroute_held`` of each request id (round * 100 + step), all other requests' marks cleared."""
        ...

    async def open_drift(self) -> list[DriftRecord]: ...

    async def get_drift(self, record_id: int) -> DriftRecord | None:
        """A finding by its number, open or resolved."""
        ...

    async def add_drift(self, record: DriftRecord) -> None: ...

    async def resolve_drift(self, record_id: int, at: datetime) -> None: ...

    async def ensure_policy(self, version: str, sha256: str, raw: bytes, at: datetime) -> bool:
        """Store a policy version; True when it was not the one in force before."""
        ...

    async def policy_raw(self, sha256: str) -> bytes | None: ...

    async def group_ids(self) -> dict[tuple[str, str], str]:
        """(provider, group reference as written) → the id it was resolved to when first loaded."""
        ...

    async def save_group_id(self, provider: str, ref: str, object_id: str, at: datetime) -> None: ...

    async def forget_seen(self, before: datetime) -> int:
        """Delete inbound event keys first seen before ``before``; how many went."""
        ...

    async def queue_notices(self, notices: Sequence[Any], at: datetime) -> None:
        """Write these notices (``handlers.ports.Notice``) to the outbox, pending and due at once."""
        ...

    async def notices_due(self, now: datetime) -> bool:
        """Whether any pending notice is due by ``now`` (a read: no lease is taken)."""
        ...

    async def claim_notice(self, now: datetime, lease_until: datetime, token: str) -> OutboxNotice | None:
        """The oldest pending notice due by ``now``, leased to ``token`` until ``lease_until`` (None: none due)."""
        ...

    async def claim_alike(self, notice: OutboxNotice, now: datetime, lease_until: datetime, token: str,
                          limit: int) -> list[OutboxNotice]:
        """With ``notice`` just claimed (same transaction): up to ``limit`` other pending notices due by ``now`` to
        its recipient, of its kind and with no card (no view, or only a queued drift re-add's, kept for the outbox to
        judge), oldest first, leased to ``token`` until ``lease_until``."""
        ...

    async def save_notice(self, notice: OutboxNotice, at: datetime) -> bool:
        """Record how sending went (``done_at`` is set to ``at`` once it is no longer pending), if the notice is
        still pending and leased to ``notice.claimed_by``; False (nothing written) when another process took it."""
        ...


class Store(Protocol):
    def write(self) -> AbstractAsyncContextManager[Repository]:
        """A transaction that holds the global write lock: writes and audit appends inside it
        are atomic and serialised against every other writer, in any process."""
        ...

    def read(self) -> AbstractAsyncContextManager[Repository]:
        """A read-only snapshot."""
        ...

    async def first_seen(self, key: str, at: datetime) -> bool:
        """Record an inbound event key; True the first time it is seen (two deliveries at once: one is first)."""
        ...

    async def verify_audit(self) -> Verification: ...

    def audit_events(self, *, from_seq: int = 1, batch: int = 5000) -> AsyncIterator[AuditEvent]: ...
