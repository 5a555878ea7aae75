"""A write scope whose body catches a failed statement and goes on commits nothing, on both databases, and says
so. PostgreSQL aborts the whole transaction on an error and its COMMIT then rolls back without a word (what the
scope wrote after was lost in silence); SQLite undoes the one statement and commits the rest (half a write)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from store import schema as t
from store.db import upgrade
from store.repository import SqlStore, WriteAbandoned


async def test_a_write_that_went_on_after_a_failed_statement_commits_nothing(database_url: str) -> None:
    upgrade(database_url)
    store = SqlStore(database_url)
    try:
        async with store.write() as repo:
            await repo.append("test.before", actor="a@example.com", ts=datetime.now(UTC))
        with pytest.raises(WriteAbandoned):
            async with store.write() as repo:
                await repo.append("test.lost", actor="a@example.com", ts=datetime.now(UTC))
                with pytest.raises(DBAPIError):  # the same key twice: refused by the database
                    for _ in range(2):
                        await repo.conn.execute(insert(t.seen_events).values(key="k", seen_at=datetime.now(UTC)))
                # and goes on: no more statements (PostgreSQL refuses them all now), the scope just ends
        async with store.write() as repo:  # the next write on the same (kept) connection is unaffected
            await repo.append("test.next", actor="a@example.com", ts=datetime.now(UTC))
        types = [e.type async for e in store.audit_events()]
        assert types == ["test.before", "test.next"], types
        assert (await store.verify_audit()).ok
    finally:
        await store.close()
