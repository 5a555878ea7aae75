"""Round trips a write makes: the audit chain's head is read once per transaction, however many events it appends."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event

from store.db import upgrade
from store.repository import SqlStore


async def test_one_head_read_per_transaction_and_the_chain_still_verifies(database_url) -> None:
    upgrade(database_url)
    store = SqlStore(database_url)
    statements: list[str] = []

    def seen(conn, cursor, sql, params, context, many) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(sql.split()))

    try:
        async with store.write() as repo:
            await repo.append("test.first", actor="a@example.com", ts=datetime.now(UTC))
        event.listen(store.engine.sync_engine, "before_cursor_execute", seen)
        async with store.write() as repo:
            for i in range(3):
                await repo.append("test.more", actor="a@example.com", ts=datetime.now(UTC), data={"i": i})
        async with store.write() as repo:
            await repo.append("test.last", actor="a@example.com", ts=datetime.now(UTC))
        event.remove(store.engine.sync_engine, "before_cursor_execute", seen)
        heads = [s for s in statements if s.startswith("SELECT audit_events.seq, audit_events.hash")]
        inserts = [s for s in statements if s.startswith("INSERT INTO audit_events")]
        assert (len(heads), len(inserts)) == (2, 4), statements
        result = await store.verify_audit()
        assert result.ok and result.count == 5, result
        seqs = [e.seq async for e in store.audit_events()]
        assert seqs == [1, 2, 3, 4, 5]
    finally:
        await store.close()
