"""The domain work of one card click, without the network: identify, decide or read, render, encode.

What ``/bare`` of ``bench_teams_invoke.py`` does for each invoke, called in a loop in this process,
one click at a time, on SQLite and PostgreSQL:

    refresh (approver)   an approver's card refreshing: the request, its chain and the refresh ids
    refresh (again)      the same card refreshed again, nothing changed (a channel's approvers refreshing one
                         card): the answer is the one the first refresh built (bot/teams/invoke.py)
    refresh (requester)  the requester's status card refreshing
    approve (step)       the first of four approvals of prod-db-read: a decision that opens the next step
    approve (final)      the one approval of staging-admin: the decision, the grant and its provisioning
                         at the embedded directory
    approve (decided)    the same card clicked again once decided (a double click, a channel's approvers): its
                         "nothing to decide" answered from a read, the write lock not taken (handlers/approvals.py)

Targets (issue 13): a refresh under 0.5 ms, an approve under 2 ms. Each line gives the median and p99
of the wall time and of the process's CPU time (all threads: aiosqlite works in one), the
statements it sent, and its floor: the same statements, recorded with their parameters,
transaction boundaries and connections (in a second run of the same clicks: the timed one carries no
recording), replayed as bare driver round trips (asyncpg, sqlite3) on a
second database of the same server brought to the same state, each connection's on its own. The
ratio floor : accessbot says how much of a click is the database. The machine's load average is
printed beside the times.

    python bench/bench_hot_path.py [--clicks 300] [--overlay 5000] [--url postgresql://... --floor-url postgresql://...]

``--overlay N`` first records N memberships of other people that the embedded directory changed (what
years of grants leave in its overlay): a click reads the overlay's version, and the whole overlay only
after a membership changed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_lifecycle import PgReplay, SqliteReplay, Statement, _is_txn, matched_differ, record  # noqa: E402
from bot.bootstrap import build_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.teams.bot import invoke_json  # noqa: E402
from bot.teams.invoke import InvokeHandler, click_scope  # noqa: E402
from bot.teams.notifier import TeamsNotifier  # noqa: E402
from handlers.context import one_lookup_per_person  # noqa: E402

CHAIN = ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com")
OIDS = {"mark.mgr@example.com": "0a8e3c11-2b2d-4e6f-8a9b-0c1d2e3f4a5b",
        "bob@example.com": "1b0b0000-0000-4000-8000-00000000b0b1"}
CLICKS = ("refresh (approver)", "refresh (again)", "refresh (requester)", "approve (step)", "approve (final)",
          "approve (decided)")
TARGET_MS = {"refresh (approver)": 0.5, "refresh (again)": 0.5, "refresh (requester)": 0.5, "approve (step)": 2.0,
             "approve (final)": 2.0, "approve (decided)": 2.0}


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 8, tzinfo=UTC)

    def now(self) -> datetime:
        self.at += timedelta(microseconds=1)  # every event at its own instant, the same in both runs
        return self.at


def directory_file(tmp: str) -> str:
    path = Path(tmp) / "directory.yaml"
    data = yaml.safe_load((ROOT / "examples" / "directory.yaml").read_text())
    for user in data["users"]:
        if user["email"] in OIDS:
            user["aad_object_id"] = OIDS[user["email"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


class Timings:
    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {c: [] for c in CLICKS}
        self.cpu: dict[str, list[float]] = {c: [] for c in CLICKS}
        self.spans: list[tuple[str, int, int]] = []  # (click, first statement, end) in the recording


async def clicks(url: str, directory: str, n: int, recorded: list[Statement] | None, overlay: int = 0) -> Timings:
    """``n`` rounds of the four clicks after one warm-up round (none at all for ``n < 0``: the floor's
    database brought to the starting state); with ``recorded``, every statement from the first round
    on is recorded and the measured clicks' spans noted."""
    timings = Timings()
    settings = Settings(database_url=url, policy=str(ROOT / "examples/policy.yaml"), directory=directory)
    async with build_app(settings, clock=Clock()) as app:
        service, deps = app.service, app.deps
        teams = TeamsNotifier(app, None)  # type: ignore[arg-type]
        invokes = InvokeHandler(app, teams.refresh_ids, teams.user_ids)
        bob = await service.identify("bob@example.com")
        assert bob is not None
        async with app.store.write() as repo:
            for i, email in enumerate((*CHAIN, "bob@example.com")):
                await repo.save_address("teams", email, {"user": {"id": f"29:user-{i}"}}, deps.now())
            for i in range(overlay):  # memberships the bot changed earlier, of other people
                await repo.set_membership(f"sg-team-{i % 50}", f"person{i}@example.com", i % 3 != 0, deps.now())
        into: list[Statement] = recorded if recorded is not None else []  # nothing listens without ``recorded``
        if recorded is not None:
            record(app.store.engine.sync_engine, app.store.backend, into)

        async def click(name: str, oid: str, verb: str, n_: int, measured: bool) -> dict[str, Any]:
            first = len(into)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            with click_scope(verb):  # as the Teams route does
                with one_lookup_per_person():  # the sender identified in a scope, as bot/teams/identity.py does
                    person = await deps.directory.find_by_aad_object_id(oid)  # type: ignore[attr-defined]
                response = await invokes.handle(person, verb, {"request_id": n_})
            body = invoke_json(response.body)  # as the route writes the answer
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            if measured:
                timings.wall[name].append(wall * 1000)
                timings.cpu[name].append(cpu * 1000)
                timings.spans.append((name, first, len(into)))
            return json.loads(body)

        for i in range(n + 1 if n >= 0 else 0):
            measured = i > 0
            reply = await service.handle_text(bob, "request prod-db-read for 1h because INC-1 hot path")
            assert reply.ok and reply.request is not None, reply.text
            m = reply.request.number
            card = await click("refresh (approver)", OIDS[CHAIN[0]], "refresh", m, measured)
            assert [a["verb"] for a in card["value"]["actions"]] == ["approve", "deny"], card
            again = await click("refresh (again)", OIDS[CHAIN[0]], "refresh", m, measured)
            assert again == card, again
            await click("refresh (requester)", OIDS["bob@example.com"], "refresh", m, measured)
            await click("approve (step)", OIDS[CHAIN[0]], "approve", m, measured)
            await service.handle_text(bob, f"cancel REQ-{m}")
            reply = await service.handle_text(bob, "request staging-admin for 1h")
            assert reply.ok and reply.request is not None, reply.text
            m = reply.request.number
            card = await click("approve (final)", OIDS[CHAIN[0]], "approve", m, measured)
            assert "ACTIVE" in json.dumps(card), card
            await click("approve (decided)", OIDS[CHAIN[0]], "approve", m, False)  # the first finds it decided
            again = await click("approve (decided)", OIDS[CHAIN[0]], "approve", m, measured)
            assert "nothing to decide" in json.dumps(again), again
            await service.handle_text(bob, f"release REQ-{m}")
    return timings


async def _replay(statements: list[Statement], spans: list[tuple[str, int, int]],
                  replay: Any) -> dict[str, list[float]]:
    """Every recorded statement in order, each on its own connection's counterpart (the unmeasured ones keep
    the state the same); the measured clicks' spans timed."""
    times: dict[str, list[float]] = {c: [] for c in CLICKS}
    starts = {first: (name, end) for name, first, end in spans}
    i = 0
    try:
        for key in sorted({s[3] for s in statements}):  # the connections open before any span is timed
            await replay("SELECT 1", None, False, key)
        replay.matched.clear()
        while i < len(statements):
            name, end = starts.get(i, (None, i + 1))
            began = time.perf_counter()
            for sql, params, many, key, _ in statements[i:end]:
                await replay(sql, params, many, key)
            if name is not None:
                times[name].append((time.perf_counter() - began) * 1000)
            i = max(end, i + 1)
    finally:
        await replay.close()
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def measured(url: str, record_url: str, floor_url: str, directory: str, n: int, overlay: int = 0
                   ) -> tuple[Timings, dict[str, list[float]], dict]:
    """Our clicks timed on ``url`` with nothing listening; the same clicks again on ``record_url`` with every
    statement recorded, replayed on ``floor_url`` as the floor (the recording is no part of either figure)."""
    timings = await clicks(url, directory, n, None, overlay)
    statements: list[Statement] = []
    spans = (await clicks(record_url, directory, n, statements, overlay)).spans
    await clicks(floor_url, directory, -1, None, overlay)  # the floor's database: the same starting state
    replay = (SqliteReplay(floor_url.split("///", 1)[1]) if floor_url.startswith("sqlite")
              else PgReplay(floor_url))
    floor = await _replay(statements, spans, replay)
    differ = matched_differ(statements, replay.matched)
    if differ:  # the floor did other work than ours: no ratio to it
        print(f"bare SQL diverged ({url.split(':', 1)[0]}): {differ}")
        floor = {c: [] for c in CLICKS}
    counts = {c: statistics.fmean([sum(1 for s in statements[a:b] if not _is_txn(s[0]))
                                   for name, a, b in spans if name == c]) for c in CLICKS}
    return timings, floor, counts


def report(name: str, timings: Timings, floor: dict[str, list[float]], counts: dict[str, float]) -> None:
    print(f"{name}: {'click':<20} {'median':>7} {'p99':>7} {'cpu med':>8} {'cpu p99':>8} {'target':>7} "
          f"{'stmts':>6} {'floor med':>9} {'floor p99':>9} {'floor:ours':>10}")
    for c in CLICKS:
        wall, cpu, bare = timings.wall[c], timings.cpu[c], floor[c]
        ratio = percentile(bare, 50) / percentile(wall, 50) if wall and bare else float("nan")
        print(f"{'':<{len(name) + 1}} {c:<20} {percentile(wall, 50):7.3f} {percentile(wall, 99):7.3f} "
              f"{percentile(cpu, 50):8.3f} {percentile(cpu, 99):8.3f} {TARGET_MS[c]:7.1f} {counts[c]:6.1f} "
              f"{percentile(bare, 50):9.3f} {percentile(bare, 99):9.3f} {ratio:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=300, help="rounds of the four clicks (after one warm-up)")
    parser.add_argument("--url", help="PostgreSQL URL of an empty database (default: start a throwaway cluster)")
    parser.add_argument("--floor-url", help="with --url: a second empty database on the same server, for the floor")
    parser.add_argument("--record-url", help="with --url: a third empty database on the same server, where the "
                        "statements replayed as the floor are recorded")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--overlay", type=int, default=0,
                        help="memberships of other people the embedded directory changed earlier (default 0)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = directory_file(tmp)
        lite = asyncio.run(measured(f"sqlite:///{tmp}/hot.db", f"sqlite:///{tmp}/record.db", f"sqlite:///{tmp}/floor.db",
                                    directory, args.clicks, args.overlay))
        results.append(("SQLite", lite))
        if not args.no_postgres:
            cluster, url = None, args.url
            if url is None:
                import psycopg

                from tests.pgcluster import PgCluster

                cluster = PgCluster()
                base = cluster.start()
                name = f"hot_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {name}")
                    conn.execute(f"CREATE DATABASE {name}_floor")
                    conn.execute(f"CREATE DATABASE {name}_record")
                url = base.rsplit("/", 1)[0] + "/" + name
            try:
                pg = asyncio.run(measured(url, args.record_url or url + "_record", args.floor_url or url + "_floor",
                                          directory, args.clicks, args.overlay))
                results.append(("PostgreSQL", pg))
            finally:
                if cluster is not None:
                    cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.clicks} clicks of each kind, one at a time, in process (no HTTP), {args.overlay} overlay rows; "
          "times in ms; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, (timings, floor, counts) in results:
        report(name, timings, floor, counts)


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
