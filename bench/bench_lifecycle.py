"""Full lifecycle cycles per second through the handlers: request → four approvals → provision → expire.

Runs on PostgreSQL (a throwaway cluster is started when ``--url`` is not given and ``pg_ctl`` is
installed) and, for comparison in the same run, on SQLite.

The floor: every statement the cycles sent (with its parameters, its transaction boundaries and
the pooled connection that sent it) is recorded, and replayed as bare round trips with the driver
alone (asyncpg, sqlite3) on a second database of the same server, brought to the same starting
state the same way, each connection's statements on a connection of their own. The recording is
done in a run of its own, on a third database: the timed run carries no listener of the bench's,
as the replay carries none. The replay counts
as a floor only when every transaction ours committed committed there too and its tables end with
ours' row counts; otherwise the line says how it diverged. The ratio of the two rates says how
much of a cycle is the database and how much is ours (goal: >= 1/3).

    python bench/bench_lifecycle.py [--cycles 200] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.bootstrap import build_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from handlers.sweeps import SweepReport, expire_due  # noqa: E402
from store.db import sends_no_begin  # noqa: E402

CHAIN = ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com")


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 8, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


# (SQL as the driver got it, parameters, executemany, connection, rows a write matched or -1)
Statement = tuple[str, Any, bool, int, int]


def writes(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")


def record(engine: Any, backend: str, into: list[Statement]) -> None:
    """Every round trip the engine makes from now on, in order, with the transaction boundaries and the
    pooled connection that made it (numbered in order of first use).

    The connection matters: a command's write transaction on one connection is open while a read on
    another checks its connection back in (the pool's reset, a ROLLBACK there). Replayed on one
    connection, that ROLLBACK would end the write transaction, the rest of it would run in autocommit
    and its COMMIT would be skipped: a floor of other work than ours."""
    numbers: dict[int, int] = {}

    def number(dbapi_conn: Any) -> int:
        return numbers.setdefault(id(dbapi_conn), len(numbers))

    def of(conn: Any) -> int:
        return number(conn.connection.dbapi_connection)

    sent: dict[int, int] = {}  # a connection's statement waiting for its row count: its place in ``into``

    @event.listens_for(engine, "before_cursor_execute")
    def statement(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        key = of(conn)
        sent[key] = len(into)
        into.append((sql, params, many, key, -1))

    @event.listens_for(engine, "after_cursor_execute")
    def done(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        at = sent.pop(of(conn), None)
        rowcount = getattr(cursor, "rowcount", -1)
        if at is not None and writes(sql) and isinstance(rowcount, int) and rowcount >= 0:
            into[at] = (*into[at][:4], rowcount)

    def autocommit(conn: Any) -> bool:  # the store's reads send no BEGIN and no COMMIT (store/repository.py)
        return sends_no_begin(conn)

    @event.listens_for(engine, "commit")
    def commit(conn: Any) -> None:
        if not autocommit(conn):
            into.append(("COMMIT", None, False, of(conn), -1))

    @event.listens_for(engine, "rollback")
    def rollback(conn: Any) -> None:
        into.append(("ROLLBACK", None, False, of(conn), -1))

    @event.listens_for(engine.pool, "reset")
    def reset(dbapi_conn: Any, record: Any, reset_state: Any) -> None:
        into.append(("ROLLBACK", None, False, number(dbapi_conn), -1))

    if backend == "postgresql":  # SQLite's BEGIN is a statement already (store/db.py)
        @event.listens_for(engine, "begin")
        def begin(conn: Any) -> None:
            if not autocommit(conn):
                into.append(("BEGIN", None, False, of(conn), -1))


async def run(url: str, cycles: int, recorded: list[Statement] | None = None, *, prepare_only: bool = False) -> float:
    """Seconds ``cycles`` cycles took on ``url``, the round trips appended to ``recorded`` if given;
    ``prepare_only``: the starting state alone, nothing run (the floor's database)."""
    clock = Clock()
    settings = Settings(database_url=url, policy=str(ROOT / "examples/policy.yaml"),
                        directory=str(ROOT / "examples/directory.yaml"))
    async with build_app(settings, clock=clock) as app:
        service, deps = app.service, app.deps
        bob = await service.identify("bob@example.com")
        approvers = [await service.identify(a) for a in CHAIN]
        if prepare_only:  # the floor's database: the same starting state, nothing measured here
            return 0.0
        if recorded is not None:
            record(app.store.engine.sync_engine, app.store.backend, recorded)
        started = time.perf_counter()
        for _ in range(cycles):
            reply = await service.handle_text(bob, "request prod-db-read for 1h because INC-1 bench")
            assert reply.ok, reply.text
            n = reply.request.number
            for a in approvers:
                assert (await service.handle_text(a, f"approve REQ-{n}")).ok
            clock.at += timedelta(hours=1, seconds=1)
            report = SweepReport(as_of=clock.at, dry_run=False)
            await expire_due(deps, report)
            assert report.expired == [f"REQ-{n}"]
        return time.perf_counter() - started


def _is_txn(sql: str) -> str | None:
    word = sql.split(None, 1)[0].upper() if sql.strip() else ""
    return word if word in ("BEGIN", "COMMIT", "ROLLBACK") else None


def needless(word: str | None, in_transaction: bool) -> bool:
    """A BEGIN inside a transaction, or an end outside one (a pool reset of a connection that only read)."""
    if word == "BEGIN":
        return in_transaction
    return word is not None and not in_transaction


LOCK_WAIT_MS = 2000  # a replay that would wait on itself fails in seconds instead of hanging


class PgReplay:
    """The recorded statements as bare asyncpg round trips, each on its own connection's counterpart."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://")
        self.conns: dict[int, Any] = {}
        self.commits = 0  # COMMITs that ended a transaction
        self.matched: list[int] = []  # the rows each write matched (-1: not a write, or not told)

    async def __call__(self, sql: str, params: Any, many: bool, key: int) -> None:
        import asyncpg

        conn = self.conns.get(key)
        if conn is None:
            conn = self.conns[key] = await asyncpg.connect(self.url)
            await conn.execute(f"SET lock_timeout = {LOCK_WAIT_MS}")
        word = _is_txn(sql)
        if needless(word, conn.is_in_transaction()):
            self.matched.append(-1)
            return
        self.commits += word == "COMMIT"
        if many:
            await conn.executemany(sql, params)
            self.matched.append(-1)
        elif writes(sql) and " RETURNING " not in sql.upper():
            status = await conn.execute(sql, *(params or ()))  # "UPDATE 3", "INSERT 0 1"
            tail = status.rsplit(" ", 1)[-1]
            self.matched.append(int(tail) if tail.isdigit() else -1)
        elif params:
            rows = await conn.fetch(sql, *params)
            self.matched.append(len(rows) if writes(sql) else -1)
        else:
            await conn.execute(sql)
            self.matched.append(-1)

    async def close(self) -> None:
        for conn in self.conns.values():
            await conn.close()


class SqliteReplay:
    """The recorded statements as bare sqlite3 calls, each on its own connection's counterpart."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conns: dict[int, Any] = {}
        self.commits = 0  # COMMITs that ended a transaction
        self.matched: list[int] = []  # the rows each write matched (-1: not a write)

    def connection(self, key: int) -> Any:
        import sqlite3

        conn = self.conns.get(key)
        if conn is None:
            conn = self.conns[key] = sqlite3.connect(self.path, isolation_level=None)
            for pragma in (f"busy_timeout = {LOCK_WAIT_MS}", "journal_mode = WAL", "synchronous = NORMAL",
                           "foreign_keys = ON"):
                conn.execute(f"PRAGMA {pragma}")
        return conn

    async def __call__(self, sql: str, params: Any, many: bool, key: int) -> None:
        self.run(sql, params, many, key)

    def run(self, sql: str, params: Any, many: bool, key: int) -> None:
        conn = self.connection(key)
        word = _is_txn(sql)
        if needless(word, conn.in_transaction):
            self.matched.append(-1)
            return
        self.commits += word == "COMMIT"
        cursor = conn.executemany(sql, params) if many else conn.execute(sql, params or ())
        cursor.fetchall()
        self.matched.append(cursor.rowcount if writes(sql) else -1)

    async def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


Replayed = tuple[float, int, list[int]]  # (seconds, COMMITs that ended a transaction, rows each write matched)


async def replay_pg(url: str, statements: list[Statement]) -> Replayed:
    replay = PgReplay(url)
    try:
        for key in sorted({s[3] for s in statements}):  # the connections open before the clock starts
            await replay("SELECT 1", None, False, key)
        started = time.perf_counter()
        replay.matched.clear()
        for sql, params, many, key, _ in statements:
            await replay(sql, params, many, key)
        return time.perf_counter() - started, replay.commits, replay.matched
    finally:
        await replay.close()


def replay_sqlite(path: str, statements: list[Statement]) -> Replayed:
    replay = SqliteReplay(path)
    try:
        for key in {s[3] for s in statements}:
            replay.connection(key)
        started = time.perf_counter()
        for sql, params, many, key, _ in statements:
            replay.run(sql, params, many, key)
        return time.perf_counter() - started, replay.commits, replay.matched
    finally:
        for conn in replay.conns.values():
            conn.close()


async def measured(url: str, record_url: str, floor_url: str, cycles: int) -> tuple[float, float | str, int]:
    """(seconds through accessbot, seconds of the bare replay or why it is no floor, round trips).

    Ours is timed on ``url`` with nothing listening; the same cycles run again on ``record_url`` with every
    round trip recorded, and those are replayed on ``floor_url``. The replay is a floor only if it did our
    work: every transaction we committed committed there too (not cut short by a ROLLBACK of another
    connection, its writes not autocommitted one by one), every write matched as many rows as ours did, and
    its database ends with the rows ours ended with."""
    app_s = await run(url, cycles)
    statements: list[Statement] = []
    await run(record_url, cycles, statements)
    url = record_url  # the rows the replay must end with
    await run(floor_url, cycles, prepare_only=True)  # the floor's database, brought to the same starting state
    floor_s: float | str
    try:
        if floor_url.startswith("sqlite"):
            floor_s, commits, matched = replay_sqlite(floor_url.split("///", 1)[1], statements)
        else:
            floor_s, commits, matched = await replay_pg(floor_url, statements)
    except Exception as exc:  # the figure without its floor says so rather than vanish
        return app_s, f"replay failed: {type(exc).__name__}: {exc}"[:300], len(statements)
    ours_commits = sum(1 for s in statements if s[0] == "COMMIT")
    if commits != ours_commits:
        return app_s, f"replay diverged: {commits} transactions committed where ours committed {ours_commits}", \
            len(statements)
    differ = matched_differ(statements, matched)
    if differ:
        return app_s, f"replay diverged: {differ}", len(statements)
    ours, bare = await row_counts(url), await row_counts(floor_url)
    if ours != bare:
        differ = sorted(name for name in ours.keys() | bare.keys() if ours.get(name) != bare.get(name))
        floor_s = "replay diverged: rows differ in " + ", ".join(
            f"{name} ({ours.get(name)} vs {bare.get(name)})" for name in differ)
    return app_s, floor_s, len(statements)


def matched_differ(statements: list[Statement], matched: list[int]) -> str | None:
    """Where a replayed write matched other rows than ours (an UPDATE that matched nothing), or None.

    A write whose count one side was not told (-1) is not compared; the rows checked at the end cover it."""
    if len(matched) != len(statements):
        return f"{len(matched)} statements replayed of {len(statements)}"
    off = [(s[0], s[4], m) for s, m in zip(statements, matched, strict=True) if s[4] >= 0 and m >= 0 and s[4] != m]
    checked = sum(1 for s, m in zip(statements, matched, strict=True) if s[4] >= 0 and m >= 0)
    if not off:
        return None if checked else "no write's row count was compared"
    sql, ours, bare = off[0]
    return f"{len(off)} writes matched other row counts, first {' '.join(sql.split())[:80]!r} ({ours} vs {bare})"


async def row_counts(url: str) -> dict[str, int]:
    """Rows in each of the store's tables: the replay must leave the floor's database as the cycles left ours."""
    from sqlalchemy import func, select

    from store import schema as t
    from store.db import make_async_engine

    engine = make_async_engine(url)
    try:
        async with engine.connect() as conn:
            return {table.name: int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)
                    for table in t.metadata.sorted_tables}
    finally:
        await engine.dispose()


def report(name: str, cycles: int, app_s: float, floor_s: float | str, trips: int) -> None:
    print(f"{name + ':':<12}{cycles / app_s:8.1f} cycles/s  ({app_s / cycles * 1000:.1f} ms a cycle, "
          f"{trips / cycles:.0f} round trips a cycle)")
    if isinstance(floor_s, str):
        print(f"{'  bare SQL:':<12} {floor_s}")
        return
    print(f"{'  bare SQL:':<12}{cycles / floor_s:8.1f} cycles/s  ({floor_s / cycles * 1000:.1f} ms a cycle); "
          f"ratio accessbot : bare = {floor_s / app_s:.2f} (goal >= 0.33)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--url", help="PostgreSQL URL of an empty database (default: start a throwaway cluster)")
    parser.add_argument("--floor-url", help="with --url: a second empty database on the same server, for the floor")
    parser.add_argument("--record-url", help="with --url: a third empty database on the same server, where the "
                        "statements replayed as the floor are recorded")
    args = parser.parse_args()
    cluster = None
    url = args.url
    if url is None:
        from tests.pgcluster import PgCluster

        cluster = PgCluster()
        base = cluster.start()
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base.replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
            conn.execute(f"CREATE DATABASE {name}_floor")
            conn.execute(f"CREATE DATABASE {name}_record")
        url = base.rsplit("/", 1)[0] + "/" + name
    floor_url = args.floor_url or url + "_floor"
    record_url = args.record_url or url + "_record"
    try:
        pg = asyncio.run(measured(url, record_url, floor_url, args.cycles))
        with tempfile.TemporaryDirectory() as tmp:
            lite = asyncio.run(measured(f"sqlite:///{tmp}/bench.db", f"sqlite:///{tmp}/record.db",
                                        f"sqlite:///{tmp}/floor.db", args.cycles))
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"cycles: {args.cycles} (request, 4 approvals, provision, expire; 9 audit events each)")
    report("PostgreSQL", args.cycles, *pg)
    report("SQLite", args.cycles, *lite)


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
