"""Full lifecycle cycles per second through the handlers: request → four approvals → provision → expire.

Runs on PostgreSQL (a throwaway cluster is started when ``--url`` is not given and ``pg_ctl`` is
installed) and, for comparison in the same run, on SQLite.

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.bootstrap import build_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from handlers.sweeps import SweepReport, expire_due  # noqa: E402

CHAIN = ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com")


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 8, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


async def run(url: str, cycles: int) -> float:
    clock = Clock()
    settings = Settings(database_url=url, policy=str(ROOT / "examples/policy.yaml"),
                        directory=str(ROOT / "examples/directory.yaml"))
    async with build_app(settings, clock=clock) as app:
        service, deps = app.service, app.deps
        bob = await service.identify("bob@example.com")
        approvers = [await service.identify(a) for a in CHAIN]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--url", help="PostgreSQL URL of an empty database (default: start a throwaway cluster)")
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
        url = base.rsplit("/", 1)[0] + "/" + name
    try:
        pg = asyncio.run(run(url, args.cycles))
        with tempfile.TemporaryDirectory() as tmp:
            lite = asyncio.run(run(f"sqlite:///{tmp}/bench.db", args.cycles))
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"cycles: {args.cycles} (request, 4 approvals, provision, expire; 9 audit events each)")
    print(f"PostgreSQL: {args.cycles / pg:8.1f} cycles/s  ({pg / args.cycles * 1000:.1f} ms a cycle)")
    print(f"SQLite:     {args.cycles / lite:8.1f} cycles/s  ({lite / args.cycles * 1000:.1f} ms a cycle)")


if __name__ == "__main__":
    main()
