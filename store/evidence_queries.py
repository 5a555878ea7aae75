"""Streaming reads for evidence packs (implements ``handlers.evidence.EvidenceSource``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from handlers.audit import ChainVerifier, Verification, format_ts
from handlers.evidence import verify_rows
from handlers.records import req_id
from handlers.reviews.report_check import CHAIN_TYPES, StoredCampaign
from store import review_schema as rt
from store import schema as t
from store.evidence_checks import SqlEvidenceChecks, format_duration_s
from store.repository import SqlStore

PAGE = 5000
AUDIT_PAGE = 20000


class ReviewEvidenceMixin:
    """The reads behind ``reviews.csv`` and ``review_items.csv`` (SPEC §7) and their check against the chain
    (implements ``handlers.evidence_review_check.ReviewCheckSource``)."""

    store: SqlStore

    async def review_campaign_ids(self, start: datetime, end: datetime) -> list[int]:
        c = rt.review_campaigns.c
        async with self.store.engine.connect() as conn:
            q = select(c.id).where(c.started_at >= start, c.started_at < end).order_by(c.id)
            return [int(r[0]) for r in (await conn.execute(q)).all()]

    async def stored_campaigns(self, ids: Sequence[int]) -> list[StoredCampaign]:
        found = []
        async with self.store.read() as repo:  # the reads a certification makes (handlers/reviews/report.py)
            for n in ids:
                campaign = await repo.get_campaign(n)
                if campaign is None:
                    continue
                found.append(StoredCampaign(campaign=campaign, items=await repo.items(n),
                                            decisions=await repo.review_decisions(n),
                                            signoffs=await repo.signoffs(n), snapshot=await repo.snapshot(n)))
        return found

    async def review_ids_started_in_chain(self, start: datetime, end: datetime) -> list[int]:
        c = t.audit_events.c
        lo, hi = format_ts(start), format_ts(end)
        found = set()
        async with self.store.engine.connect() as conn:
            for ts, raw in (await conn.execute(select(c.ts, c.data).where(c.type == "review.started"))).all():
                data = json.loads(raw)
                ref = str(data.get("review_id") or "")
                judged = str(data.get("as_of") or ts)
                if lo <= judged < hi and ref.startswith("RV-") and ref[3:].isascii() and ref[3:].isdigit():
                    found.add(int(ref[3:]))
        return sorted(found)

    async def review_events(self, refs: Sequence[str]) -> list[tuple[str, str, str, dict[str, Any]]]:
        c = t.audit_events.c
        wanted = set(refs)
        rows: dict[int, tuple[str, str, str, dict[str, Any]]] = {}
        async with self.store.engine.connect() as conn:
            for i in range(0, len(refs), 50):  # data names its campaign as the JSON string "RV-n"
                near = or_(*(c.data.contains(f'"{ref}"', autoescape=True) for ref in refs[i:i + 50]))
                q = select(c.seq, c.type, c.actor, c.ts, c.data).where(c.type.in_(sorted(CHAIN_TYPES)), near)
                for seq, type_, actor, ts, raw in (await conn.execute(q)).all():
                    data = json.loads(raw)
                    if data.get("review_id") in wanted:
                        rows[int(seq)] = (type_, actor, ts, data)
        return [rows[seq] for seq in sorted(rows)]


class SqlEvidenceSource(SqlEvidenceChecks, ReviewEvidenceMixin):
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
                   "policy_sha256": m["policy_sha256"], "expires_at": m["expires_at"]}

    async def decisions_made(self, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]:
        d, r = t.decisions.c, t.requests.c
        q = (select(t.decisions, r.kind, r.policy_version, r.policy_sha256).join(t.requests, r.id == d.request_id)
             .where(d.decided_at >= start, d.decided_at < end))
        async for row in self._pages(q, d.id):
            m = row._mapping
            yield {"request_id": req_id(m["request_id"]), "step": m["step"] + 1, "approver": m["approver"],
                   "decision": m["decision"], "comment": m["comment"], "decided_at": m["decided_at"],
                   "kind": m["kind"], "round": m["round"], "policy_version": m["policy_version"],
                   "policy_sha256": m["policy_sha256"]}

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
                   "kind": m["kind"], "policy_version": m["policy_version"], "policy_sha256": m["policy_sha256"],
                   "round": m["round"]}

    async def audit_pages(self, *, ts_from: str | None = None, ts_to: str | None = None, first_seq: int = 1,
                          last_seq: int | None = None) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Pages of stored audit columns in ``seq`` order; the next page is read while the caller
        works on this one (two pages in memory at most, one short query each).

        A ``ts`` window is turned into a ``seq`` range first (``ts`` grows with ``seq``), so every
        page is a primary-key range scan; rows outside the window are still left out, and a
        verifier then sees the gap."""
        c = t.audit_events.c
        cols = (c.seq, c.ts, c.type, c.actor, c.request_id, c.profile, c.data, c.prev_hash, c.hash)
        if ts_from is not None or ts_to is not None:
            bounds = await self._seq_bounds(ts_from, ts_to)
            if bounds is None:
                return
            first_seq = max(first_seq, bounds[0])
            last_seq = bounds[1] if last_seq is None else min(last_seq, bounds[1])

        def inside(ts: str) -> bool:
            return (ts_from is None or ts >= ts_from) and (ts_to is None or ts < ts_to)

        async def fetch(after: int) -> Sequence[Sequence[Any]]:
            q = select(*cols).where(c.seq > after)
            if last_seq is not None:
                q = q.where(c.seq <= last_seq)
            async with self.store.engine.connect() as conn:
                return (await conn.execute(q.order_by(c.seq).limit(AUDIT_PAGE))).all()

        task = asyncio.ensure_future(fetch(first_seq - 1))
        try:
            while True:
                rows = await task
                more = len(rows) == AUDIT_PAGE
                if more:
                    task = asyncio.ensure_future(fetch(int(rows[-1][0])))
                if rows and not (inside(rows[0][1]) and inside(rows[-1][1])):
                    rows = [r for r in rows if inside(r[1])]
                if rows:
                    yield rows
                if not more:
                    return
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _seq_bounds(self, ts_from: str | None, ts_to: str | None) -> tuple[int, int] | None:
        """The first and last ``seq`` recorded in [ts_from, ts_to), by the ``ts`` index."""
        c = t.audit_events.c
        window = [c.ts >= ts_from] if ts_from is not None else []
        if ts_to is not None:
            window.append(c.ts < ts_to)
        async with self.store.engine.connect() as conn:
            first = (await conn.execute(select(c.seq).where(*window).order_by(c.ts, c.seq).limit(1))).scalar()
            last = (await conn.execute(select(c.seq).where(*window).order_by(c.ts.desc(), c.seq.desc())
                                       .limit(1))).scalar()
        return None if first is None or last is None else (int(first), int(last))

    async def verify_range(self, *, first_seq: int, last_seq: int | None, prev_hash: str) -> Verification:
        if first_seq == 1:  # from the chain's start: a row below it is outside the chain
            outside = await self.store.seq_below_chain()
            if outside is not None:
                return outside
        verifier = ChainVerifier(prev_hash=prev_hash, first_seq=first_seq,
                                 prev_ts=await self.store.ts_before(first_seq))
        async for page in self.audit_pages(first_seq=first_seq, last_seq=last_seq):
            if not verify_rows(page, verifier):
                break
        return verifier.result()

    async def event_before(self, start_ts: str) -> dict[str, Any] | None:
        c = t.audit_events.c
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(c.seq, c.hash).where(c.ts < start_ts)
                                      .order_by(c.ts.desc(), c.seq.desc()).limit(1))).first()
        return {"seq": int(row[0]), "hash": row[1]} if row else None

    async def policy_versions(self) -> list[tuple[str, str, bytes, datetime]]:
        c = t.policy_versions.c
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(c.version, c.sha256, c.raw, c.loaded_at))).all()
        return [(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    async def policy_in_force(self, at_ts: str) -> str | None:
        c = t.audit_events.c
        async with self.store.engine.connect() as conn:
            data = (await conn.execute(select(c.data).where(c.ts < at_ts, c.type == "policy.loaded")
                                       .order_by(c.ts.desc(), c.seq.desc()).limit(1))).scalar()
        return json.loads(data).get("sha256") if data else None


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
