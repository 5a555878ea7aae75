"""The dashboard's tables and reads (implements ``handlers.dashboard.ports.DashboardSource``).

Sign-in secrets and sessions are kept as SHA-256 digests only. Every figure a page shows is
counted by the database (``GROUP BY``, ``COUNT``, ``MIN``) with the indexes of migration
``0005_dashboard``, so a page costs a handful of index scans whatever the size of the store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Index, String, Table, Text, and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from handlers.audit import GENESIS, Verification, format_ts
from handlers.dashboard.ports import RequestFilter, SessionRecord, SignInToken
from handlers.records import ACTIVE, PENDING, AuditEvent, DecisionRecord, RequestRecord, req_id
from store import schema as t
from store.repository import SqlRepository, SqlStore, _request, event_from_row
from store.schema import UTCDateTime, metadata

dashboard_tokens = Table(
    "dashboard_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("email", String(320)),
    Column("data", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("used_at", UTCDateTime),
)

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("via", String(10), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
    Column("ended_at", UTCDateTime),
)

# Indexes the pages lean on (created by migration 0005_dashboard).
Index("ix_requests_state_expires", t.requests.c.state, t.requests.c.expires_at)
Index("ix_requests_state_id", t.requests.c.state, t.requests.c.id)
Index("ix_audit_events_type_seq", t.audit_events.c.type, t.audit_events.c.seq)
Index("ix_audit_events_actor_seq", t.audit_events.c.actor, t.audit_events.c.seq)
Index("ix_decisions_approver", t.decisions.c.approver)


def _token(row: Any) -> SignInToken:
    m = row._mapping
    return SignInToken(token_hash=m["token_hash"], kind=m["kind"], email=m["email"], created_at=m["created_at"],
                       expires_at=m["expires_at"], used_at=m["used_at"], data=json.loads(m["data"] or "{}"))


def _session(row: Any) -> SessionRecord:
    m = row._mapping
    return SessionRecord(session_hash=m["session_hash"], email=m["email"], via=m["via"], created_at=m["created_at"],
                         expires_at=m["expires_at"], ended_at=m["ended_at"])


class SqlSignInTx:
    """One write transaction of sign-in changes and their audit events (implements ``SignInTx``)."""

    def __init__(self, repo: SqlRepository) -> None:
        self.repo = repo

    @property
    def conn(self) -> AsyncConnection:
        return self.repo.conn  # refused once the repository's scope has ended

    async def add_token(self, token: SignInToken) -> None:
        await self.conn.execute(insert(dashboard_tokens).values(
            token_hash=token.token_hash, kind=token.kind, email=token.email, data=json.dumps(token.data),
            created_at=token.created_at, expires_at=token.expires_at, used_at=None))

    async def get_token(self, token_hash: str) -> SignInToken | None:
        row = (await self.conn.execute(select(dashboard_tokens)
                                       .where(dashboard_tokens.c.token_hash == token_hash))).first()
        return _token(row) if row else None

    async def use_token(self, token_hash: str, at: datetime) -> bool:
        c = dashboard_tokens.c
        result = await self.conn.execute(update(dashboard_tokens)
                                         .where(c.token_hash == token_hash, c.used_at.is_(None), c.expires_at > at)
                                         .values(used_at=at))
        return result.rowcount == 1

    async def add_session(self, session: SessionRecord) -> None:
        await self.conn.execute(insert(dashboard_sessions).values(
            session_hash=session.session_hash, email=session.email, via=session.via,
            created_at=session.created_at, expires_at=session.expires_at, ended_at=None))

    async def get_session(self, session_hash: str) -> SessionRecord | None:
        row = (await self.conn.execute(select(dashboard_sessions)
                                       .where(dashboard_sessions.c.session_hash == session_hash))).first()
        return _session(row) if row else None

    async def end_session(self, session_hash: str, at: datetime) -> None:
        await self.conn.execute(update(dashboard_sessions).where(dashboard_sessions.c.session_hash == session_hash)
                                .values(ended_at=at))

    async def purge(self, before: datetime) -> int:
        gone = (await self.conn.execute(dashboard_tokens.delete().where(dashboard_tokens.c.expires_at < before)))
        ended = (await self.conn.execute(dashboard_sessions.delete()
                                         .where(dashboard_sessions.c.expires_at < before)))
        return int(gone.rowcount or 0) + int(ended.rowcount or 0)

    async def trim_flows(self, now: datetime, keep: int) -> int:
        c = dashboard_tokens.c
        gone = await self.conn.execute(dashboard_tokens.delete().where(c.kind == "oidc", c.expires_at <= now))
        # the newest first (by expiry, the same order as by start); among equals, any
        older = (select(c.token_hash).where(c.kind == "oidc").order_by(c.expires_at.desc(), c.token_hash)
                 .offset(keep).scalar_subquery())
        dropped = await self.conn.execute(dashboard_tokens.delete().where(c.token_hash.in_(older)))
        return int(gone.rowcount or 0) + int(dropped.rowcount or 0)

    async def append(self, type: str, *, actor: str, ts: datetime, data: dict[str, Any] | None = None,
                     request_id: str | None = None, profile: str | None = None) -> AuditEvent:
        return await self.repo.append(type, actor=actor, ts=ts, data=data, request_id=request_id, profile=profile)


_reading: ContextVar[Any] = ContextVar("accessbot_dashboard_conn", default=None)


class SqlDashboardSource:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """One connection and one snapshot for every read of a page (instead of one per query)."""
        if _reading.get() is not None:
            yield
            return
        async with self.store.engine.connect() as conn, conn.begin():
            token = _reading.set(conn)
            try:
                yield
            finally:
                _reading.reset(token)

    @asynccontextmanager
    async def signin(self) -> AsyncIterator[SqlSignInTx]:
        async with self.store.write() as repo:
            yield SqlSignInTx(repo)

    @asynccontextmanager
    async def flows(self) -> AsyncIterator[SqlSignInTx]:
        """Anyone may start a Microsoft sign-in, signed in or not: storing its flow takes a transaction of its
        own instead of the audit chain's write lock, so a flood of starts does not queue the bot's decisions
        behind it (no event is appended here). SQLite has one writer whatever the lock: there it is a write
        like the others, queued in this process rather than holding pooled connections while it waits."""
        if self.store.backend != "postgresql":
            async with self.store.write() as repo:
                yield SqlSignInTx(repo)
            return
        async with self.store.engine.connect() as conn, conn.begin():
            yield SqlSignInTx(SqlRepository(conn, writable=True))

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        shared = _reading.get()
        if shared is not None:
            yield shared
            return
        async with self.store.engine.connect() as conn:
            yield conn

    async def _rows(self, query: Any) -> list[Any]:
        async with self._conn() as conn:
            return list((await conn.execute(query)).all())

    async def _scalar(self, query: Any) -> Any:
        async with self._conn() as conn:
            return (await conn.execute(query)).scalar()

    async def terminated_since(self, email: str, since: datetime) -> bool:
        c = t.audit_events.c
        named = json.dumps(email, ensure_ascii=False)  # as the data column holds it (canonical JSON)
        rows = await self._rows(select(c.ts, c.data).where(
            c.type == "user.terminated", c.ts > format_ts(since), c.data.contains(named, autoescape=True)))
        return any(str(json.loads(raw).get("user") or "").lower() == email.lower() for _, raw in rows)

    async def live_sessions(self, now: datetime) -> list[tuple[str, str]]:
        c = dashboard_sessions.c
        rows = await self._rows(select(c.session_hash, c.email).where(c.ended_at.is_(None), c.expires_at > now))
        return [(str(h), str(e)) for h, e in rows]

    async def session(self, session_hash: str) -> SessionRecord | None:
        rows = await self._rows(select(dashboard_sessions).where(dashboard_sessions.c.session_hash == session_hash))
        return _session(rows[0]) if rows else None

    # -- overview -----------------------------------------------------------------------------
    async def state_counts(self) -> dict[str, int]:
        c = t.requests.c
        return {r[0]: int(r[1]) for r in await self._rows(select(c.state, func.count()).group_by(c.state))}

    async def open_requests(self, *, limit: int, requester: str | None = None) -> list[RequestRecord]:
        """Two ordered range scans of ``(state, id)``, merged: an ``OR`` across states would walk the
        whole primary key instead."""
        c = t.requests.c
        found: list[RequestRecord] = []
        for cond in (c.state == PENDING, and_(c.state == ACTIVE, c.ext_duration_s.is_not(None))):
            q = select(t.requests).where(cond)
            if requester is not None:
                q = q.where(c.requester == requester)
            found += [_request(r) for r in await self._rows(q.order_by(c.state, c.id).limit(limit))]
        return sorted(found, key=lambda r: r.id or 0)[:limit]

    async def count_open(self) -> int:
        c = t.requests.c
        rows = await self._rows(select(
            select(func.count()).where(c.state == PENDING).scalar_subquery(),
            select(func.count()).where(c.state == ACTIVE, c.ext_duration_s.is_not(None)).scalar_subquery()))
        return int(rows[0][0] or 0) + int(rows[0][1] or 0)

    async def expiring_counts(self, now: datetime, horizons: Sequence[datetime]) -> dict[str, list[int]]:
        c = t.requests.c
        cols = [func.count().label("active")] + [
            func.sum(case((c.expires_at <= h, 1), else_=0)).label(f"h{i}")
            for i, h in enumerate(horizons)]
        rows = await self._rows(select(c.kind, *cols).where(c.state == ACTIVE).group_by(c.kind))
        out = {"standard": [0] * (len(horizons) + 1), "exception": [0] * (len(horizons) + 1)}
        for row in rows:
            out[row[0]] = [int(v or 0) for v in row[1:]]
        return out

    async def drift_summary(self) -> tuple[int, datetime | None]:
        c = t.drift_findings.c
        rows = await self._rows(select(func.count(), func.min(c.first_seen)).where(c.resolved_at.is_(None)))
        count, oldest = rows[0]
        return int(count or 0), _aware(oldest)

    async def provider_failures(self) -> dict[str, int]:
        o, r = t.provider_ops.c, t.requests.c
        rows = await self._rows(select(
            select(func.count()).where(o.status == "failed").scalar_subquery(),
            select(func.count()).where(o.status == "pending", o.attempts > 0).scalar_subquery(),
            select(func.count()).where(r.state == "failed").scalar_subquery()))
        failed, retrying, requests = rows[0]
        return {"failed": int(failed or 0), "retrying": int(retrying or 0), "requests": int(requests or 0)}

    async def latest_event(self, types: Sequence[str]) -> AuditEvent | None:
        c = t.audit_events.c
        best: AuditEvent | None = None
        for type_ in types:  # one index probe per type: (type, seq) backwards
            rows = await self._rows(select(t.audit_events).where(c.type == type_).order_by(c.seq.desc()).limit(1))
            if rows:
                event = event_from_row(rows[0])
                if best is None or event.seq > best.seq:
                    best = event
        return best

    async def head(self) -> tuple[int, str]:
        c = t.audit_events.c
        rows = await self._rows(select(c.seq, c.hash).order_by(c.seq.desc()).limit(1))
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)

    async def verify_from(self, first_seq: int, prev_hash: str) -> Verification:
        return await self.store.verify_audit(first_seq=first_seq, prev_hash=prev_hash)

    async def decisions_for(self, request_ids: Sequence[int]) -> dict[int, list[DecisionRecord]]:
        out: dict[int, list[DecisionRecord]] = {i: [] for i in request_ids}
        c = t.decisions.c
        ids = list(request_ids)
        for start in range(0, len(ids), 500):
            rows = await self._rows(select(t.decisions).where(c.request_id.in_(ids[start:start + 500])).order_by(c.id))
            for row in rows:
                m = row._mapping
                out[m["request_id"]].append(DecisionRecord(
                    id=m["id"], request_id=m["request_id"], round=m["round"], step=m["step"], approver=m["approver"],
                    decision=m["decision"], comment=m["comment"], decided_at=m["decided_at"]))
        return out

    # -- requests page ------------------------------------------------------------------------
    async def search_requests(self, flt: RequestFilter, *, requesters: Sequence[str] | None = None,
                              ids: Sequence[int] | None = None, offset: int, limit: int
                              ) -> tuple[list[RequestRecord], int]:
        c = t.requests.c
        conds: list[Any] = []
        if flt.profile:
            conds.append(c.profile == flt.profile)
        if flt.state:
            conds.append(c.state == flt.state)
        if flt.person:
            conds.append(c.requester == flt.person)
        if flt.submitted_from is not None:
            conds.append(c.submitted_at >= flt.submitted_from)
        if flt.submitted_to is not None:
            conds.append(c.submitted_at < flt.submitted_to)
        if requesters is not None or ids is not None:
            scope = []
            if requesters:
                scope.append(c.requester.in_(list(requesters)))
            if ids:
                scope.append(c.id.in_(list(ids)))
            conds.append(or_(*scope) if scope else c.id.is_(None))
        total = await self._scalar(select(func.count()).select_from(t.requests).where(*conds))
        rows = await self._rows(select(t.requests).where(*conds).order_by(c.id.desc()).offset(offset).limit(limit))
        return [_request(r) for r in rows], int(total or 0)

    async def decided_by(self, email: str) -> list[int]:
        c = t.decisions.c
        return [int(r[0]) for r in await self._rows(select(c.request_id).where(c.approver == email).distinct())]

    async def events_for(self, request_id: int) -> list[AuditEvent]:
        c = t.audit_events.c
        rows = await self._rows(select(t.audit_events).where(c.request_id == req_id(request_id)).order_by(c.seq))
        return [event_from_row(r) for r in rows]

    async def person_events(self, email: str, request_ids: Sequence[str], *, limit: int) -> list[AuditEvent]:
        c = t.audit_events.c
        found: dict[int, AuditEvent] = {}
        queries = [select(t.audit_events).where(c.actor == email).order_by(c.seq.desc()).limit(limit)]
        if request_ids:
            queries.append(select(t.audit_events).where(c.request_id.in_(list(request_ids)))
                           .order_by(c.seq.desc()).limit(limit))
        # events about the person that name them in data.user (terminations, drift, removals)
        about = ("user.terminated", "membership.removed", "drift.detected", "drift.resolved")
        named = json.dumps(email, ensure_ascii=False)  # as the data column holds it (canonical JSON)
        queries.append(select(t.audit_events).where(c.type.in_(about), c.data.contains(named, autoescape=True))
                       .order_by(c.seq.desc()).limit(limit))
        for q in queries:
            for row in await self._rows(q):
                event = event_from_row(row)
                if event.type not in about or str(event.data.get("user", "")).lower() == email or event.actor == email:
                    found[event.seq] = event
        return [found[s] for s in sorted(found, reverse=True)[:limit]]

    async def events_of_types(self, types: Sequence[str], *, since: str | None = None,
                              limit: int = 100_000) -> list[AuditEvent]:
        c = t.audit_events.c
        q = select(t.audit_events).where(c.type.in_(list(types)))
        if since is not None:
            q = q.where(c.ts >= since)
        return [event_from_row(r) for r in await self._rows(q.order_by(c.seq).limit(limit))]

    async def recent_events(self, types: Sequence[str], *, limit: int) -> list[AuditEvent]:
        c = t.audit_events.c
        found: list[AuditEvent] = []
        for type_ in types:  # one (type, seq) index range per type, read backwards: never a scan of the chain
            rows = await self._rows(select(t.audit_events).where(c.type == type_).order_by(c.seq.desc())
                                    .limit(limit))
            found.extend(event_from_row(r) for r in rows)
        return sorted(found, key=lambda e: e.seq)[-limit:]

    async def holding(self, *, requester: str | None = None) -> list[RequestRecord]:
        c = t.requests.c
        q = select(t.requests).where(c.state.in_(("approved", ACTIVE)))
        if requester is not None:
            q = q.where(c.requester == requester)
        return [_request(r) for r in await self._rows(q.order_by(c.id))]

    async def given_up_notices(self, since: datetime, *, limit: int, never_sent: str
                               ) -> tuple[int, list[dict[str, Any]]]:
        c = t.notice_outbox.c
        conds = (c.status.in_(("undeliverable", "unreachable")), c.done_at >= since,
                 or_(c.last_error.is_(None), c.last_error != never_sent))
        total = await self._scalar(select(func.count()).select_from(t.notice_outbox).where(*conds))
        rows = await self._rows(select(c.recipient, c.kind, c.request_id, c.status, c.attempts, c.last_error,
                                       c.done_at).where(*conds).order_by(c.done_at.desc(), c.id.desc()).limit(limit))
        return int(total or 0), [{**r._mapping, "done_at": _aware(r.done_at)} for r in rows]

    async def compliance_state(self, key: str) -> dict[str, Any] | None:
        c = t.compliance_state.c
        rows = await self._rows(select(c.value).where(c.key == key))
        value = json.loads(rows[0][0]) if rows else None
        return value if isinstance(value, dict) else None

    async def quarter_figures(self, since: datetime) -> list[dict[str, Any]]:
        r, d = t.requests.c, t.decisions.c
        first = (select(d.request_id, func.min(d.decided_at).label("first"), func.max(d.decided_at).label("last"))
                 .where(d.round == 0).group_by(d.request_id).subquery())
        q = (select(r.id, r.kind, r.state, r.submitted_at, r.approved_at, first.c.first, first.c.last)
             .select_from(t.requests.outerjoin(first, first.c.request_id == r.id))
             .where(r.submitted_at >= since))
        out = []
        for row in await self._rows(q):
            out.append({"id": row[0], "kind": row[1], "state": row[2], "submitted_at": row[3],
                        "approved_at": row[4], "first_decision": _aware(row[5]), "last_decision": _aware(row[6])})
        return out


def _aware(value: Any) -> datetime | None:
    """An aggregate of a UTC column (SQLite hands back text or a naive datetime)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
