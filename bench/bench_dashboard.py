"""The dashboard's overview page on a large store: 100,000 requests and 1,000,000 audit events in PostgreSQL.

Fills a throwaway cluster (started when ``--url`` is not given and ``pg_ctl`` is installed) with
requests in every state and a valid hash chain, serves the real application, signs in as the
security team, and renders ``GET /dashboard`` over HTTP again and again. Prints p50/p95/max render
times against the 200 ms target, the statements one render runs with their times, and the query
plan (EXPLAIN ANALYZE) of the slowest.

    python bench/bench_dashboard.py [--requests 100000] [--events 1000000] [--renders 100] [--url ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bot.bootstrap import build_app  # noqa: E402
from bot.notify import FanoutNotifier  # noqa: E402
from bot.server import create_web_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.web import DASHBOARD_KEY  # noqa: E402
from handlers.audit import GENESIS, canonical_body, canonical_json, format_ts  # noqa: E402

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
PEOPLE = ("alice@example.com", "bob@example.com", "carol@example.com", "frank@example.com", "mark.mgr@example.com")
PROFILES = (("prod-db-read", "sg-prod-db-read"), ("staging-admin", "sg-staging-admin"),
            ("analytics-read", "sg-analytics-read"), ("prod-k8s-admin", "sg-prod-k8s-admin"))
TYPES = ("request.submitted", "approval.requested", "approval.granted", "request.approved", "grant.provisioned",
         "grant.expired", "dashboard.signed_in", "command.refused")


class Clock:
    def now(self) -> datetime:
        return NOW


def fill(url: str, n_requests: int, n_events: int, sha: str) -> None:
    """Rows straight in with COPY: requests of every state, and a chain that verifies."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn, conn.cursor() as cur:
        cols = ("requester", "profile", "kind", "duration_s", "justification", "ticket", "state", "submitted_at",
                "policy_version", "policy_sha256", "provider", "group_name", "step", "round", "step_opened_at",
                "ext_duration_s", "approved_at", "started_at", "expires_at", "ended_at", "end_reason")
        with cur.copy(f"COPY requests ({', '.join(cols)}) FROM STDIN") as copy:
            for i in range(n_requests):
                profile, group = PROFILES[i % len(PROFILES)]
                submitted = NOW - timedelta(minutes=(n_requests - i) * 5)
                age = n_requests - i
                if age <= 300:
                    state = "pending"
                elif age <= 2300:
                    state = "active"
                else:
                    state = ("expired", "released", "denied", "revoked", "cancelled")[i % 5]
                active = state == "active"
                ended = None if state in ("pending", "active") else submitted + timedelta(hours=2)
                copy.write_row((PEOPLE[i % len(PEOPLE)], profile, "exception" if i % 17 == 0 else "standard", 7200,
                                "bench", f"INC-{i}", state, submitted, "2026.11", sha, "directory", group, 0, 0,
                                submitted, 3600 if active and i % 40 == 0 else None,
                                submitted + timedelta(minutes=20) if state not in ("pending", "denied") else None,
                                submitted + timedelta(minutes=21) if state not in ("pending", "denied") else None,
                                NOW + timedelta(hours=(i % 200)) if active else (
                                    submitted + timedelta(hours=2) if ended else None),
                                ended, state if ended else None))
        prev, start = GENESIS, NOW - timedelta(days=400)
        step = timedelta(days=400) / max(1, n_events)
        with cur.copy("COPY audit_events (seq, ts, type, actor, request_id, profile, data, prev_hash, hash) "
                      "FROM STDIN") as copy:
            for seq in range(1, n_events + 1):
                ts = format_ts(start + step * seq)
                type_ = TYPES[seq % len(TYPES)]
                rid = f"REQ-{seq % n_requests + 1}"
                data = canonical_json({"step": seq % 4, "comment": "bench"})
                body = canonical_body(seq, ts, type_, PEOPLE[seq % len(PEOPLE)], rid, "prod-db-read", data, prev)
                digest = hashlib.sha256((prev + body).encode()).hexdigest()
                copy.write_row((seq, ts, type_, PEOPLE[seq % len(PEOPLE)], rid, "prod-db-read", data, prev, digest))
                prev = digest
        conn.commit()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum does for a live database


def write_anchors(url: str, path: Path, every: int) -> None:
    """An anchor file as the sweeps would have left it: the head every ``every`` events."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        rows = conn.execute("SELECT seq, hash, ts FROM audit_events WHERE seq %% %s = 0 ORDER BY seq",
                            (every,)).fetchall()
    path.write_text("".join(f'{{"anchored_at": "{ts}", "hash": "{h}", "seq": {seq}, "ts": "{ts}"}}\n'
                            for seq, h, ts in rows))


async def bench(url: str, renders: int, n_requests: int, n_events: int) -> int:
    from store.db import upgrade

    upgrade(url)
    policy = (ROOT / "examples/policy.yaml").read_bytes()
    started = time.perf_counter()
    await asyncio.to_thread(fill, url, n_requests, n_events, hashlib.sha256(policy).hexdigest())
    print(f"filled {n_requests:,} requests and {n_events:,} audit events in {time.perf_counter() - started:.1f} s")
    anchors = Path(tempfile.mkdtemp()) / "accessbot.anchors"
    await asyncio.to_thread(write_anchors, url, anchors, every=100)
    settings = Settings(database_url=url, policy=str(ROOT / "examples/policy.yaml"),
                        directory=str(ROOT / "examples/directory.yaml"), env={"ACCESSBOT_ANCHOR_FILE": str(anchors)})
    notifier = FanoutNotifier()
    async with build_app(settings, clock=Clock(), notifier=notifier) as app:
        web_app = create_web_app(app, notifier, scheduler=False)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(runner, sock).start()
        board = web_app[DASHBOARD_KEY]
        started = time.perf_counter()
        state = await board.chain.state(NOW, wait=True)
        print(f"first full verification of the chain and its anchors: {time.perf_counter() - started:.1f} s "
              f"(ok={state.ok}, {state.verified_through:,} events; anchor file matches={state.anchor.matches}, "
              f"{state.anchor.full_count:,} anchors) — done once, then in the background hourly")
        reply = await app.service.handle_text(await app.service.identify("sam.sec@example.com"), "dashboard")
        link = reply.data["url"].replace(settings.public_base, base)
        async with aiohttp.ClientSession() as http:
            async with http.post(link, allow_redirects=False, headers={"Origin": base}) as resp:
                cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
            timings: list[float] = []
            cpu: list[float] = []
            for _ in range(renders):
                t0, c0 = time.perf_counter(), time.process_time()
                async with http.get(f"{base}/dashboard", headers={"Cookie": cookie}) as resp:
                    body = await resp.text()
                    assert resp.status == 200, body[:300]
                timings.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            statements: list[tuple[float, str, object]] = []
            engine = app.store.engine.sync_engine

            def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                conn.info["t0"] = time.perf_counter()

            def after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                statements.append(((time.perf_counter() - conn.info["t0"]) * 1000, statement, parameters))

            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            async with http.get(f"{base}/dashboard", headers={"Cookie": cookie}) as resp:
                await resp.text()
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
        timings.sort()
        cpu.sort()
        p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"GET /dashboard x{renders}: p50 {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, "
              f"max {timings[-1]:.1f} ms (target p95 < 200 ms: {'met' if p95 < 200 else 'MISSED'})")
        print(f"  this process's CPU per render (client and server, without the database): p50 "
              f"{statistics.median(cpu):.1f} ms, p95 {cpu[max(0, int(len(cpu) * 0.95) - 1)]:.1f} ms; "
              f"load average during the run {load:.1f} on {os.cpu_count()} cores")
        print(f"one render ran {len(statements)} statements, {sum(s[0] for s in statements):.1f} ms in all; slowest:")
        for ms, sql, _ in sorted(statements, key=lambda s: -s[0])[:5]:
            print(f"  {ms:6.2f} ms  {' '.join(sql.split())[:150]}")
        ms, sql, params = max(statements, key=lambda s: s[0])
        async with app.store.engine.connect() as conn:
            plan = (await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)).all()  # type: ignore[arg-type]
        print("query plan of the slowest statement:")
        print("\n".join("  " + row[0] for row in plan))
        await runner.cleanup()
        return 0 if p95 < 200 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--renders", type=int, default=100)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a throwaway cluster)")
    args = parser.parse_args()
    if args.url:
        return asyncio.run(bench(args.url, args.renders, args.requests, args.events))
    sys.path.insert(0, str(ROOT / "tests"))
    import psycopg
    from pgcluster import PgCluster  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory():
        cluster = PgCluster()
        server = cluster.start()
        try:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench_dashboard")
            url = server.rsplit("/", 1)[0] + "/bench_dashboard"
            return asyncio.run(bench(url, args.renders, args.requests, args.events))
        finally:
            cluster.stop()


if __name__ == "__main__":
    code = main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
    sys.exit(code)
