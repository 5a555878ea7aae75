"""Full lifecycle cycles per second through the handlers: request → four approvals → provision → expire.

Runs on PostgreSQL (a throwaway cluster is started when ``--url`` is not given and ``pg_ctl`` is
installed) and, for comparison in the same run, on SQLite.

The floor: every statement the cycles sent (with its parameters and its transaction boundaries)
is recorded, and replayed as bare round trips with the driver alone (asyncpg, sqlite3) on a second
database of the same server, brought to the same starting state the same way. The ratio of the
two rates says how much of a cycle is the database and how much is ours (goal: >= 1/3).

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


Statement = tuple[str, Any, bool]  # (SQL as the driver got it, parameters, executemany)


def record(engine: Any, backend: str, into: list[Statement]) -> None:
    """Every round trip the engine makes from now on, in order, with the transaction boundaries."""
    @event.listens_for(engine, "before_cursor_execute")
    def statement(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        into.append((sql, params, many))

    def autocommit(conn: Any) -> bool:  # the store's reads send no BEGIN and no COMMIT (store/repository.py)
        return sends_no_begin(conn)

    @event.listens_for(engine, "commit")
    def commit(conn: Any) -> None:
        if not autocommit(conn):
            into.append(("COMMIT", None, False))

    @event.listens_for(engine, "rollback")
    def rollback(conn: Any) -> None:
        into.append(("ROLLBACK", None, False))

    @event.listens_for(engine.pool, "reset")
    def reset(dbapi_conn: Any, record: Any, reset_state: Any) -> None:
        into.append(("ROLLBACK", None, False))

    if backend == "postgresql":  # SQLite's BEGIN is a statement already (store/db.py)
        @event.listens_for(engine, "begin")
        def begin(conn: Any) -> None:
            if not autocommit(conn):
                into.append(("BEGIN", None, False))


async def run(url: str, cycles: int, recorded: list[Statement] | None = None) -> float:
    clock = Clock()
    settings = Settings(database_url=url, policy=str(ROOT / "examples/policy.yaml"),
                        directory=str(ROOT / "examples/directory.yaml"))
    async with build_app(settings, clock=clock) as app:
        service, deps = app.service, app.deps
        bob = await service.identify("bob@example.com")
        approvers = [await service.identify(a) for a in CHAIN]
        if recorded is None:  # the floor's database: the same starting state, nothing measured here
            return 0.0
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


async def replay_pg(url: str, statements: list[Statement]) -> float:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        in_txn = False
        started = time.perf_counter()
        for sql, params, many in statements:
            word = _is_txn(sql)
            if word == "BEGIN":
                if in_txn:
                    continue
                in_txn = True
            elif word in ("COMMIT", "ROLLBACK"):
                if not in_txn:
                    continue
                in_txn = False
            if many:
                await conn.executemany(sql, params)
            elif params:
                await conn.fetch(sql, *params)
            else:
                await conn.execute(sql)
        return time.perf_counter() - started
    finally:
        await conn.close()


def replay_sqlite(path: str, statements: list[Statement]) -> float:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("busy_timeout = 60000", "journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}")
    try:
        started = time.perf_counter()
        for sql, params, many in statements:
            word = _is_txn(sql)
            needless = conn.in_transaction if word == "BEGIN" else not conn.in_transaction
            if word is not None and needless:
                continue
            if many:
                conn.executemany(sql, params)
            else:
                conn.execute(sql, params or ()).fetchall()
        return time.perf_counter() - started
    finally:
        conn.close()


async def measured(url: str, floor_url: str, cycles: int) -> tuple[float, float | str, int]:
    """(seconds through accessbot, seconds of the bare replay or why it failed, round trips)."""
    statements: list[Statement] = []
    app_s = await run(url, cycles, statements)
    await run(floor_url, cycles)  # the floor's database, brought to the same starting state
    try:
        if floor_url.startswith("sqlite"):
            floor_s: float | str = replay_sqlite(floor_url.split("///", 1)[1], statements)
        else:
            floor_s = await replay_pg(floor_url, statements)
    except Exception as exc:  # the figure without its floor says so rather than vanish
        floor_s = f"replay failed: {type(exc).__name__}: {exc}"[:300]
    return app_s, floor_s, len(statements)


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
        url = base.rsplit("/", 1)[0] + "/" + name
    floor_url = args.floor_url or url + "_floor"
    try:
        pg = asyncio.run(measured(url, floor_url, args.cycles))
        with tempfile.TemporaryDirectory() as tmp:
            lite = asyncio.run(measured(f"sqlite:///{tmp}/bench.db", f"sqlite:///{tmp}/floor.db", args.cycles))
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
