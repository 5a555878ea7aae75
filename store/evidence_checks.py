"""The reads that tie an evidence pack's rows to the audit chain, and check the store against it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, union

from handlers.durations import format_duration
from store import schema as t
from store.repository import SqlStore

PAGE = 20000

ENDING = ("grant.expired", "grant.released", "grant.revoked")
DETECTING = {"terminated": "user.terminated", "drift": "drift.detected"}  # removal reason -> the event that found it


class SqlEvidenceChecks:
    """The reads that tie a pack's rows to the chain (part of ``handlers.evidence.EvidenceSource``)."""

    store: SqlStore

    async def seq_bounds(self, ts_from: str, ts_to: str) -> tuple[int, int] | None:
        return await self._seq_bounds(ts_from, ts_to)  # type: ignore[attr-defined]

    async def head_seq(self) -> int:
        c = t.audit_events.c
        async with self.store.engine.connect() as conn:
            return int((await conn.execute(select(func.max(c.seq)))).scalar() or 0)

    def _concerned(self, first_seq: int, last_seq: int) -> Any:
        """The request ids with an event in [first_seq, last_seq], or a grant held when first_seq was recorded."""
        c = t.audit_events.c
        in_period = select(c.request_id).where(c.seq >= first_seq, c.seq <= last_seq, c.request_id.is_not(None))
        ended = select(c.request_id).where(c.seq < first_seq, c.type.in_(ENDING))
        holders = select(c.request_id).where(c.seq < first_seq, c.type == "grant.provisioned",
                                             c.request_id.not_in(ended))
        return union(in_period, holders).subquery()

    async def request_events(self, *, first_seq: int, last_seq: int, after: bool = False,
                             upto: int | None = None) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Pages of stored audit columns of the concerned requests (see :meth:`_concerned`): their events
        before ``first_seq``, or with ``after`` those after ``last_seq`` (up to ``upto``), in seq order."""
        c = t.audit_events.c
        cols = (c.seq, c.ts, c.type, c.actor, c.request_id, c.profile, c.data, c.prev_hash, c.hash)
        concerned = self._concerned(first_seq, last_seq)
        where = [c.request_id.in_(select(concerned.c.request_id))]
        where += [c.seq > last_seq] + ([c.seq <= upto] if upto is not None else []) if after else [c.seq < first_seq]
        seq = 0
        while True:
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(select(*cols).where(*where, c.seq > seq).order_by(c.seq)
                                           .limit(PAGE))).all()
            if rows:
                yield rows
            if len(rows) < PAGE:
                return
            seq = int(rows[-1][0])

    async def removal_detections(self, *, first_seq: int, last_seq: int) -> list[Sequence[Any]]:
        """The events before ``first_seq`` (same columns) that detected a removal in [first_seq, last_seq]: the
        person's last ``user.terminated`` for a leaver's removal, the last ``drift.detected`` of that member and
        group for a drift removal (a removal finished after the period turned, once the provider came back or
        the security team chose it, is measured from when it was found), in seq order."""
        c = t.audit_events.c
        cols = (c.seq, c.ts, c.type, c.actor, c.request_id, c.profile, c.data, c.prev_hash, c.hash)
        wanted: dict[str, set[tuple[str, str] | None]] = {}  # user -> None (a leaver) and drift (provider, group)
        revoked: set[int] = set()
        async with self.store.engine.connect() as conn:
            q = select(c.type, c.request_id, c.data).where(c.seq >= first_seq, c.seq <= last_seq,
                                                         c.type.in_(("membership.removed", "grant.revoked")))
            for type_, rid, raw in (await conn.execute(q)).all():
                data = json.loads(raw)
                reason = str(data.get("reason", "")).split(":")[0]
                if type_ == "grant.revoked":
                    if reason == "terminated" and rid and str(rid).partition("-")[2].isdigit():
                        revoked.add(int(str(rid).partition("-")[2]))
                elif reason in DETECTING and data.get("user"):
                    key = None if reason == "terminated" else (str(data.get("provider")), str(data.get("group")))
                    wanted.setdefault(str(data["user"]), set()).add(key)
            numbers = sorted(revoked)
            for i in range(0, len(numbers), 500):
                q = select(t.requests.c.requester).where(t.requests.c.id.in_(numbers[i:i + 500]))
                for (requester,) in (await conn.execute(q)).all():
                    wanted.setdefault(str(requester), set()).add(None)
            found: dict[int, Sequence[Any]] = {}
            for user, keys in wanted.items():
                for type_ in sorted({DETECTING["terminated" if k is None else "drift"] for k in keys}):
                    q = (select(*cols).where(c.type == type_, c.seq < first_seq, c.data.contains(user, autoescape=True))
                         .order_by(c.seq.desc()).limit(200))
                    left = set(keys)
                    for row in (await conn.execute(q)).all():  # the latest first: one detection per removal
                        data = json.loads(row[6])
                        if str(data.get("user", "")) != user:
                            continue
                        key = None if type_ == "user.terminated" else (str(data.get("provider")),
                                                                        str(data.get("group")))
                        if key in left:
                            left.discard(key)
                            if key is None or data.get("member", True):
                                found[int(row[0])] = row
        return [found[seq] for seq in sorted(found)]

    async def request_records(self, numbers: Sequence[int]) -> dict[int, dict[str, Any]]:
        c = t.requests.c
        found: dict[int, dict[str, Any]] = {}
        async with self.store.engine.connect() as conn:
            for i in range(0, len(numbers), 500):
                rows = (await conn.execute(select(t.requests).where(c.id.in_(numbers[i:i + 500])))).mappings()
                found.update({int(m["id"]): {**m, "duration": format_duration_s(m["duration_s"])} for m in rows})
        return found

    async def decision_records(self, numbers: Sequence[int]) -> dict[int, list[tuple[Any, ...]]]:
        """Per request, its decisions in the order they were made: (round, step from 1, approver, decision, comment)."""
        c = t.decisions.c
        found: dict[int, list[tuple[Any, ...]]] = {}
        async with self.store.engine.connect() as conn:
            for i in range(0, len(numbers), 500):
                q = select(c.request_id, c.round, c.step, c.approver, c.decision, c.comment).where(
                    c.request_id.in_(numbers[i:i + 500])).order_by(c.id)
                for r in (await conn.execute(q)).all():
                    found.setdefault(int(r[0]), []).append((int(r[1]), int(r[2]) + 1, r[3], r[4], r[5]))
        return found

    async def request_numbers_in(self, start: datetime, end: datetime) -> set[int]:
        """Requests the database says were submitted, or held a grant, in [start, end)."""
        c = t.requests.c
        q = select(c.id).where(or_(
            (c.submitted_at >= start) & (c.submitted_at < end),
            c.started_at.is_not(None) & (c.started_at < end) & (c.ended_at.is_(None) | (c.ended_at >= start))))
        async with self.store.engine.connect() as conn:
            return {int(r[0]) for r in (await conn.execute(q)).all()}

    async def submitted_in_chain(self, request_ids: Sequence[str]) -> set[str]:
        c = t.audit_events.c
        found: set[str] = set()
        async with self.store.engine.connect() as conn:
            for i in range(0, len(request_ids), 500):
                q = select(c.request_id).where(c.type == "request.submitted",
                                               c.request_id.in_(request_ids[i:i + 500]))
                found |= {r[0] for r in (await conn.execute(q)).all()}
        return found

    async def changed_after(self, seq: int, request_ids: Sequence[str]) -> set[str]:
        """Those of ``request_ids`` with an event after ``seq`` (changed while a pack was being made)."""
        c = t.audit_events.c
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(c.request_id).where(c.seq > seq, c.request_id.is_not(None))
                                       .distinct())).all()
        wanted = set(request_ids)
        return {r[0] for r in rows if r[0] in wanted}



def format_duration_s(seconds: int | None) -> str:
    return format_duration(timedelta(seconds=int(seconds or 0)))
