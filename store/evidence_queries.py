"""Streaming reads for evidence packs (implements ``handlers.evidence.EvidenceSource``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from handlers.audit import Verification, format_ts
from handlers.durations import format_duration
from handlers.records import req_id
from store import schema as t
from store.repository import SqlStore

PAGE = 5000


class SqlEvidenceSource:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def _pages(self, query: Any, key: Any) -> AsyncIterator[Any]:
        """Rows of ``query`` in ``key`` order, a page at a time (flat memory, no long-held cursor)."""
        last = None
        while True:
            q = query if last is None else query.where(key > last)
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(q.order_by(key).limit(PAGE))).all()
            for row in rows:
                yield row
            if len(rows) < PAGE:
                return
            last = rows[-1]._mapping[key.name]

    async def requests_submitted(self, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]:
        c = t.requests.c
        q = select(t.requests).where(c.submitted_at >= start, c.submitted_at < end)
        async for row in self._pages(q, c.id):
            m = row._mapping
            yield {"request_id": req_id(m["id"]), "requester": m["requester"], "profile": m["profile"],
                   "kind": m["kind"], "duration": format_duration_s(m["duration_s"]),
                   "justification": m["justification"], "ticket": m["ticket"], "state": m["state"],
                   "submitted_at": m["submitted_at"], "policy_version": m["policy_version"],
                   "policy_sha256": m["policy_sha256"]}

    async def decisions_made(self, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]:
        d, r = t.decisions.c, t.requests.c
        q = (select(t.decisions, r.kind).join(t.requests, r.id == d.request_id)
             .where(d.decided_at >= start, d.decided_at < end))
        async for row in self._pages(q, d.id):
            m = row._mapping
            yield {"request_id": req_id(m["request_id"]), "step": m["step"] + 1, "approver": m["approver"],
                   "decision": m["decision"], "comment": m["comment"], "decided_at": m["decided_at"],
                   "kind": m["kind"], "round": m["round"]}

    async def grants_active(self, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]:
        c = t.requests.c
        q = select(t.requests).where(c.started_at.is_not(None), c.started_at < end,
                                     or_(c.ended_at.is_(None), c.ended_at >= start))
        async for row in self._pages(q, c.id):
            m = row._mapping
            reason = m["end_reason"] if m["ended_at"] is not None else None
            yield {"request_id": req_id(m["id"]), "user": m["requester"], "profile": m["profile"],
                   "provider": m["provider"], "group": m["group_name"], "started_at": m["started_at"],
                   "expires_at": m["expires_at"], "ended_at": m["ended_at"], "end_reason": reason,
                   "kind": m["kind"], "policy_sha256": m["policy_sha256"], "round": m["round"]}

    def audit_rows(self, *, ts_from: str, ts_to: str) -> AsyncIterator[tuple[Any, ...]]:
        return self.store.audit_rows(ts_from=ts_from, ts_to=ts_to)

    async def verify_range(self, *, first_seq: int, last_seq: int | None, prev_hash: str) -> Verification:
        return await self.store.verify_audit(first_seq=first_seq, last_seq=last_seq, prev_hash=prev_hash)

    async def event_before(self, start_ts: str) -> dict[str, Any] | None:
        c = t.audit_events.c
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(c.seq, c.hash).where(c.ts < start_ts)
                                      .order_by(c.seq.desc()).limit(1))).first()
        return {"seq": int(row[0]), "hash": row[1]} if row else None

    async def policy_versions(self) -> list[tuple[str, str, bytes, datetime]]:
        c = t.policy_versions.c
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(c.version, c.sha256, c.raw, c.loaded_at))).all()
        return [(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    async def policy_in_force(self, at_ts: str) -> str | None:
        c = t.audit_events.c
        async with self.store.engine.connect() as conn:
            data = (await conn.execute(select(c.data).where(c.type == "policy.loaded", c.ts < at_ts)
                                       .order_by(c.seq.desc()).limit(1))).scalar()
        return json.loads(data).get("sha256") if data else None


def format_duration_s(seconds: int | None) -> str:
    from datetime import timedelta

    return format_duration(timedelta(seconds=int(seconds or 0)))


class SqlReportSource(SqlEvidenceSource):
    """Implements ``handlers.reports.ReportSource``."""

    async def drift_findings(self) -> AsyncIterator[dict[str, Any]]:
        c = t.drift_findings.c
        async for row in self._pages(select(t.drift_findings), c.id):
            m = row._mapping
            yield {"provider": m["provider"], "group": m["group_name"], "user": m["email"],
                   "first_seen": format_ts(m["first_seen"]),
                   "resolved_at": format_ts(m["resolved_at"]) if m["resolved_at"] else ""}

    async def events_of_type(self, *types: str) -> AsyncIterator[dict[str, Any]]:
        c = t.audit_events.c
        async for row in self._pages(select(t.audit_events).where(c.type.in_(types)), c.seq):
            m = row._mapping
            yield {"seq": int(m["seq"]), "ts": m["ts"], "type": m["type"], "actor": m["actor"],
                   "request_id": m["request_id"], "data": json.loads(m["data"])}
