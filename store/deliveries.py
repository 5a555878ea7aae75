"""Scheduled evidence deliveries (implements ``handlers.evidence_schedule.DeliveryStore``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from handlers.evidence_schedule import DeliveryRecord
from store.repository import SqlRepository, SqlStore
from store.schema import UTCDateTime, metadata

evidence_deliveries = Table(
    "evidence_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    Column("period_from", String(10), nullable=False),
    Column("period_to", String(10), nullable=False),
    Column("target", String(300), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("file_name", String(300)),
    Column("sha256", String(64)),
    Column("item_id", String(300)),
    Column("size", BigInteger),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    UniqueConstraint("kind", "period_from", "target", name="uq_evidence_delivery_once"),
    Index("ix_evidence_deliveries_status_next", "status", "next_attempt_at"),
)
FIELDS = [c.name for c in evidence_deliveries.c if c.name != "id"]


def _record(row: Any) -> DeliveryRecord:
    m = row._mapping
    return DeliveryRecord(id=m["id"], **{k: m[k] for k in FIELDS})


class SqlDeliveryTx:
    def __init__(self, repo: SqlRepository) -> None:
        self.repo = repo

    @property
    def conn(self) -> AsyncConnection:
        return self.repo.conn  # refused once the repository's scope has ended

    async def add(self, record: DeliveryRecord) -> bool:
        c = evidence_deliveries.c
        exists = (await self.conn.execute(select(c.id).where(
            c.kind == record.kind, c.period_from == record.period_from, c.target == record.target))).first()
        if exists:
            return False
        await self.conn.execute(insert(evidence_deliveries).values({k: getattr(record, k) for k in FIELDS}))
        return True

    async def due(self, now: datetime) -> list[DeliveryRecord]:
        c = evidence_deliveries.c
        rows = (await self.conn.execute(select(evidence_deliveries).where(
            c.status == "pending", or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now)).order_by(c.id))).all()
        return [_record(r) for r in rows]

    async def save(self, record: DeliveryRecord) -> None:
        await self.conn.execute(update(evidence_deliveries).where(evidence_deliveries.c.id == record.id)
                                .values({k: getattr(record, k) for k in FIELDS}))

    async def append(self, type: str, *, actor: str, ts: datetime, data: dict[str, Any] | None = None,
                     request_id: str | None = None, profile: str | None = None) -> Any:
        return await self.repo.append(type, actor=actor, ts=ts, data=data, request_id=request_id, profile=profile)

    async def queue_notices(self, notices: Sequence[Any], at: datetime) -> None:
        await self.repo.queue_notices(notices, at)


class SqlDeliveryStore:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SqlDeliveryTx]:
        async with self.store.write() as repo:
            yield SqlDeliveryTx(repo)
