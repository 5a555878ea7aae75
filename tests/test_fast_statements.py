"""The click's statements on the driver connection (store/fast.py) read and write exactly what
SQLAlchemy's own execution does, raise its errors, and are seen by its statement listeners."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError

from handlers.records import DecisionRecord, OpRecord, RequestRecord
from store.db import make_async_engine, upgrade
from store.fast import Driver, _fused
from store.repository import SqlStore
from store.schema import UTCDateTime

AT = datetime(2026, 11, 23, 8, 30, 15, 123456, tzinfo=UTC)


def _record() -> RequestRecord:
    return RequestRecord(
        id=None, requester="bob@example.com", profile="prod-db-read", kind="access",
        duration=timedelta(hours=2), justification="INC-7 — naïve “quotes”", ticket="INC-7", state="ACTIVE",
        submitted_at=AT, policy_version="v1", policy_sha256="a" * 64, provider="directory",
        group="sg-prod-db-read", step=2, round=1, step_opened_at=AT + timedelta(minutes=1),
        ext_duration=timedelta(minutes=30), ext_justification=None, approved_at=AT + timedelta(minutes=2),
        started_at=AT + timedelta(minutes=3), expires_at=AT + timedelta(hours=2), ended_at=None,
        end_reason=None, reminded_step=1, escalated_step=None, warned_expiry=AT, failure=None,
    )


async def _filled(url: str, **engine_kw: object) -> tuple[SqlStore, int]:
    upgrade(url)
    store = SqlStore(url, engine=make_async_engine(url, **engine_kw))  # type: ignore[arg-type]
    async with store.write() as repo:
        n = await repo.add_request(_record())
        await repo.add_decision(DecisionRecord(id=None, request_id=n, round=1, step=0, approver="mark@example.com",
                                               decision="approve", comment=None, decided_at=AT))
        await repo.append("request.approved", actor="mark@example.com", ts=datetime.now(UTC), request=_record())
        await repo.set_membership("sg-prod-db-read", "bob@example.com", True, AT)
        await repo.save_address("teams", "bob@example.com", {"user": {"id": "29:bob"}}, AT)
        await repo.set_membership("sg-prod-db-read", "bob@example.com", False, AT)  # the update of the upsert
        other = _record()
        other.state, other.requester, other.expires_at = "PENDING", "eve@example.com", None
        m = await repo.add_request(other)
        assert m == n + 1
        for i, (status, due) in enumerate((("pending", None), ("pending", AT + timedelta(hours=1)), ("done", None))):
            op = OpRecord(request_id=n, op="add", provider="directory", group="sg-prod-db-read",
                          email="bob@example.com", created_at=AT, status=status, next_attempt_at=due,
                          failure_reported=i == 1)
            assert await repo.add_op(op) == i + 1
        op = await repo.get_op(3)
        assert op is not None
        op.status, op.done_at = "pending", AT
        await repo.save_op(op)
    return store, n


async def _everything(store: SqlStore, n: int) -> tuple[object, ...]:
    async with store.read() as repo:
        return (await repo.get_request(n), await repo.decisions(n), await repo.decisions(n, 1),
                [e.hash for e in await repo.events_for(1)], await repo.overlay(),
                await repo.overlay(email="bob@example.com"), await repo.overlay(group="sg-prod-db-read"),
                await repo.overlay(email="bob@example.com", group="nope"),
                await repo.address("teams", "bob@example.com"), await repo.address("teams", "nobody"),
                await repo.find_requests(requester="bob@example.com"), await repo.find_requests(states=("PENDING",)),
                await repo.find_requests(states=("ACTIVE", "PENDING"), provider="directory", group="sg-prod-db-read"),
                await repo.find_requests(profile="prod-db-read", expires_before=AT + timedelta(hours=3), limit=1),
                await repo.find_requests(states=()), await repo.find_requests(limit=5),
                await repo.due_ops(AT), await repo.due_ops(AT + timedelta(hours=2)),
                await repo.due_ops(AT, member=("directory", "sg-prod-db-read", "bob@example.com"), limit=1),
                await repo.ops_for_member("directory", "sg-prod-db-read", "bob@example.com"),
                await repo.ops_for_member("directory", "sg-prod-db-read", "bob@example.com", statuses=("done",)),
                await repo.ops_for_member("directory", "sg-prod-db-read", "bob@example.com", statuses=()),
                await repo.ops_for(n), await repo.get_op(2), await repo.get_op(99))


async def test_the_driver_path_reads_what_sqlalchemy_reads(database_url: str, tmp_path) -> None:
    store, n = await _filled(database_url)
    try:
        async with store.read() as repo:
            assert await Driver.of(repo.conn) is not None  # the fast path is the one under test
        fast = await _everything(store, n)
        record = fast[0]
        assert record is not None and record.submitted_at == AT and record.submitted_at.tzinfo is not None  # type: ignore[attr-defined]
        assert record.justification == "INC-7 — naïve “quotes”"  # type: ignore[attr-defined]
        assert record.duration == timedelta(hours=2) and record.ext_duration == timedelta(minutes=30)  # type: ignore[attr-defined]
        assert fast[4] == {("sg-prod-db-read", "bob@example.com"): False} and fast[7] == {}
        assert fast[8] == {"user": {"id": "29:bob"}} and fast[9] is None
        ids = [[r.id for r in found] for found in fast[10:16]]  # type: ignore[attr-defined]
        assert ids == [[n], [n + 1], [n, n + 1], [n], [], [n, n + 1]]
        assert [[o.id for o in ops] for ops in fast[16:22]] == [[1], [1], [1], [1, 2, 3], [], []]  # type: ignore[attr-defined]
        assert [o.status for o in fast[22]] == ["pending", "pending", "pending"]  # type: ignore[attr-defined]
        op2 = fast[23]
        assert op2.failure_reported is True and op2.next_attempt_at == AT + timedelta(hours=1)  # type: ignore[attr-defined]
        assert fast[24] is None
        if database_url.startswith("sqlite"):  # the same file through aiosqlite's own thread: SQLAlchemy executes
            slow_store = SqlStore(database_url, engine=make_async_engine(database_url, inline_sqlite=False))
            try:
                async with slow_store.read() as repo:
                    assert await Driver.of(repo.conn) is None
                assert await _everything(slow_store, n) == fast
            finally:
                await slow_store.close()
        assert (await store.verify_audit()).ok
    finally:
        await store.close()


async def test_a_driver_error_is_sqlalchemys_error_and_the_write_rolls_back(database_url: str) -> None:
    store, n = await _filled(database_url)
    try:
        twice = DecisionRecord(id=None, request_id=n, round=1, step=0, approver="mark@example.com",
                               decision="approve", comment="again", decided_at=AT)
        with pytest.raises(IntegrityError) as caught:
            async with store.write() as repo:
                await repo.append("decision.recorded", actor="mark@example.com", ts=datetime.now(UTC))
                await repo.add_decision(twice)
        assert isinstance(caught.value, DBAPIError) and "decisions" in str(caught.value.statement)
        async with store.read() as repo:  # nothing of the failed transaction stayed, the connection works
            assert len(await repo.decisions(n)) == 1
            assert [e.type for e in await repo.events_for(n)] == []  # appended without a request id
        assert (await store.verify_audit()).count == 1
    finally:
        await store.close()


async def test_statement_listeners_see_the_driver_statements(database_url: str) -> None:
    store, n = await _filled(database_url)
    seen: list[tuple[str, tuple[object, ...]]] = []

    def before(conn, cursor, sql, params, context, many) -> None:  # type: ignore[no-untyped-def]
        seen.append((" ".join(sql.split())[:24], tuple(params)))

    event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    try:
        async with store.read() as repo:
            await repo.get_request(n)
        assert seen == [("SELECT requests.id, requ", (n,))]
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", before)
        await store.close()


async def test_after_listeners_get_the_rows_a_driver_write_matched(database_url: str) -> None:
    """The benchmarks compare the rows each write matched with their bare replay's: the driver path tells them."""
    store, n = await _filled(database_url)
    seen: list[tuple[str, str, int]] = []

    def after(conn, cursor, sql, params, context, many) -> None:  # type: ignore[no-untyped-def]
        seen.append((sql.split()[0].upper(), type(cursor).__name__, cursor.rowcount))

    event.listen(store.engine.sync_engine, "after_cursor_execute", after)
    try:
        async with store.read() as repo:
            await repo.get_request(n)
        async with store.write() as repo:
            op = await repo.get_op(3)
            assert op is not None
            op.status = "done"
            await repo.save_op(op)
            await repo.set_membership("sg-prod-db-read", "eve@example.com", True, AT)
        driven = [s for s in seen if s[1] == "Done"]
        assert ("SELECT", "Done", -1) in driven
        assert ("UPDATE", "Done", 1) in driven or ("INSERT", "Done", 1) in driven, seen
        assert all(count == 1 for word, _, count in driven if word in ("UPDATE", "INSERT")), seen
    finally:
        event.remove(store.engine.sync_engine, "after_cursor_execute", after)
        await store.close()


def test_a_fresh_process_takes_the_driver_path_on_postgresql(pg_url: str) -> None:
    """The fast path finds asyncpg's connections by the module the dialect imported (it no longer imports
    asyncpg itself, so that SQLite commands start without it): in a process that imported nothing else, a
    command's store on PostgreSQL still takes it."""
    import subprocess
    import sys

    from store.db import upgrade
    from tests.support import ROOT

    upgrade(pg_url)
    code = (
        "import asyncio, sys\n"
        "from store.fast import Driver\n"
        "from store.repository import SqlStore\n"
        "assert 'asyncpg' not in sys.modules\n"
        "async def main():\n"
        "    store = SqlStore(sys.argv[1])\n"
        "    async with store.read() as repo:\n"
        "        driver = await Driver.of(repo.conn)\n"
        "    await store.close()\n"
        "    print(driver.kind if driver else None)\n"
        "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", code, pg_url], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "asyncpg", done.stdout + done.stderr


@pytest.mark.parametrize("moment", [
    AT, datetime(2026, 3, 29, 1, 30, 5, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")), datetime(1970, 1, 1, tzinfo=UTC),
    datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(1, 1, 2, tzinfo=UTC), None,
])
def test_a_utc_datetime_goes_to_sqlite_and_back_as_through_its_type(moment: datetime | None) -> None:
    """store.fast writes a UTCDateTime on SQLite in one step: the text SQLAlchemy's chain of processors writes,
    and reads it back as that chain does (aware, UTC)."""
    dialect = sqlite.dialect()
    kind = UTCDateTime()
    chained_bind, chained_result = kind._cached_bind_processor(dialect), kind._cached_result_processor(dialect, None)
    bind, result = _fused(kind, dialect, "bind"), _fused(kind, dialect, "result")
    assert chained_bind is not None and chained_result is not None and bind is not None and result is not None
    text = bind(moment)
    assert text == chained_bind(moment)
    assert result(text) == chained_result(text) == (moment.astimezone(UTC) if moment else None)
    if moment is not None:
        assert result(text).tzinfo is UTC
    for stored in ("2026-11-23 08:00:00", "2026-11-23 08:00:00.5", "2026-11-23 08:00:00.123000",
                   "2026-11-23T08:00:00.000000", "2026-11-23 08:00:00+05:00", "0001-01-02 00:00:00.000000",
                   "2026-11-23 08:00:0x.000000", "2026-11-23 24:00:00.000000", "2026-11-23 08:00:00.12345",
                   "2026-11-23 08:00:00.1234567", "２０２６-11-23 08:00:00.000000",
                   # the storage format's lengths with an offset in them: their UTC time, the offset not dropped
                   "2026-11-23 08:00+01", "2026-11-23 08:00:00.000+01", "2026-11-23 08:00:00.1+1406",
                   "2026-11-23 08-02:00", "2026-11-23 08:+0700", "2026-11-23 08:00:00.0-01:00",
                   "2026-11-23 23:59:60.000000", "0000-01-01 00:00:00", "2026-11-23 08:00:00.12345 ",
                   "٢٠٢٦-١١-٢٣ ٠٨:٠٠:٠٠", "2026-11-23 08:00:00.00000٠"):  # texts written by other means
        outcomes = []
        for read in (result, chained_result):
            try:
                outcomes.append(read(stored))
            except Exception as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1], stored
    assert result("2026-11-23 08:00:00.000+01") == datetime(2026, 11, 23, 7, tzinfo=UTC)


@pytest.mark.parametrize("value", [datetime(2026, 1, 1), date(2026, 1, 1), "2026-01-01", 7])
def test_anything_else_is_refused_as_its_type_refuses_it(value: object) -> None:
    dialect = sqlite.dialect()
    kind = UTCDateTime()
    chained, bind = kind._cached_bind_processor(dialect), _fused(kind, dialect, "bind")
    assert chained is not None and bind is not None
    with pytest.raises(Exception) as ours:
        bind(value)
    with pytest.raises(Exception) as theirs:
        chained(value)
    assert type(ours.value) is type(theirs.value)
