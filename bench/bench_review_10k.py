"""An access review over 10,000 memberships at the Graph stand-in: the start and the close with 2,000 removals.

One Entra group of ``--members`` people (``--managers`` managers, each the manager of an equal share)
is reviewed by a ``reviewer: manager`` review. Through the real ``EntraProvider`` and the real review
handlers on a fresh database:

* **start** (``review start``): the snapshot read from Graph (member pages of ``--page-size`` with
  ``@odata.nextLink``, then each member's sign-in activity and manager through ``$batch``), validated,
  planned by reviewer, stored with its items and ``review.started``. Its floor, measured in the same
  run: the provider's own ``snapshot_members`` of the same group, i.e. the Graph reads alone at the
  stand-in's rate.
* **clicks**: ``--clicks`` reviewers (who remove nothing) keep one item each, one after another, as a card's
  click does; each live-checks that one membership.
* the decisions (not timed as a figure): the first ``--removals / share`` managers say
  ``remove RV-1 all because …``; the other items are left to ``if_not_reviewed: keep``.
* **close** (``review close RV-1``): the defaults recorded, the removal intents planned, the removals
  run through ``$batch`` against Graph's write quota (``--quota`` writes per ``--window`` s; 429 +
  ``Retry-After`` beyond it), ``review.closed``; then, as the scheduler's sweeps would, the removals
  still due are run again until none is left. Its floor: the best the quota allows for that many
  writes under a sliding window (``floor((N-1)/quota) * window``), or, when the quota does not bind,
  the same number of removals sent as bare ``$batch`` requests (4 in flight, as the provider sends
  them) to another group of the stand-in.

Round trips: HTTP requests the stand-in received, and SQL statements sent to the database (counted
on the engine). Peak RSS covers the stand-in too (it serves from a thread of this process).

    python bench/bench_review_10k.py                       # 10,000 members, 2,000 removals, 3,000 writes / 150 s
    python bench/bench_review_10k.py --quota 300 --window 15   # a binding quota: removals wait for write slots
    python bench/bench_review_10k.py --database-url postgresql://…/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import ssl
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.bootstrap import build_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from handlers.grants import run_due_ops  # noqa: E402
from handlers.reviews.close import finish_stalled  # noqa: E402
from tests.standins.graph import GraphStandIn  # noqa: E402
from tests.standins.tls import make_tls  # noqa: E402

PROFILE = """
  - id: entra-bench
    title: Bench group at Entra
    owner: pat.lead@example.com
    risk: low
    provider: entra
    group: {group}
    eligible:
      - department: Engineering
    duration: {{default: 1h, max: 1d}}
    approval: [owner]
"""
REVIEW = """reviews:
  - id: bench-review
    title: Bench review
    scope: {profiles: [entra-bench]}
    reviewer: manager
    fallback: {any_of: security}
    schedule: {timezone: Europe/Berlin, holidays: DE}
    duration: 10bd
    if_not_reviewed: keep
    justification: {keep: optional, remove: required}
"""


class BenchGraph(GraphStandIn):
    """The Graph stand-in with O(1) look-ups by UPN and mail, counting requests and accepted writes."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.upn_index: dict[str, str] = {}
        self.requests_seen = 0

    def seed(self, mail: str, *, manager: str | None = None, department: str | None = None) -> str:
        uid = str(uuid.uuid4())
        self.users[uid] = {"id": uid, "mail": mail, "userPrincipalName": mail, "displayName": mail.split("@")[0],
                           "department": department, "jobTitle": None, "employeeType": None, "accountEnabled": True}
        self.upn_index[mail.lower()] = uid
        if manager:
            self.managers[uid] = self.upn_index[manager.lower()]
        return uid

    def user_id(self, key: str) -> str | None:
        return key if key in self.users else self.upn_index.get(key.lower())

    def _by_id_or_upn(self, key: str) -> str | None:
        return self.user_id(key)

    async def _graph(self, request: Any) -> Any:
        self.requests_seen += 1
        return await super()._graph(request)


class Statements:
    """SQL statements sent to the database (one round trip each)."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1


@dataclass
class Phase:
    name: str
    seconds: float
    floor: float
    floor_what: str
    http: int
    sql: int

    def line(self) -> str:
        ratio = self.seconds / self.floor if self.floor > 0 else float("inf")
        return (f"{self.name}: {self.seconds:.2f} s; floor {self.floor:.2f} s ({self.floor_what}) -> {ratio:.2f}x "
                f"the floor; round trips: {self.http} HTTP to Graph, {self.sql} SQL statements")


async def bare_removals(graph: BenchGraph, n: int, token: str, ca_file: str) -> float:
    """``n`` removals as bare ``$batch`` requests (20 a batch, 4 batches in flight) to another group."""
    gid = graph.add_group("sg-floor")
    uids = list(graph.users)[:n]
    graph.members[gid] = list(uids)
    requests = [{"id": str(i), "method": "DELETE", "url": f"/groups/{gid}/members/{uid}/$ref"}
                for i, uid in enumerate(uids)]
    batches = [requests[i:i + 20] for i in range(0, len(requests), 20)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.monotonic()
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_file))
    async with aiohttp.ClientSession(connector=connector) as http:
        for k in range(0, len(batches), 4):
            async def send(batch: list[dict[str, Any]]) -> None:
                async with http.post(f"{graph.graph_url}/$batch", data=json.dumps({"requests": batch}),
                                     headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()
            await asyncio.gather(*(send(b) for b in batches[k:k + 4]))
    seconds = time.monotonic() - started
    assert graph.members[gid] == [], "the floor's removals did not all land"
    return seconds


async def run(args: argparse.Namespace, workdir: Path) -> list[str]:
    (workdir / "tls").mkdir()
    tls = make_tls(workdir / "tls")
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = tls.ca_file
    graph = BenchGraph(tls, page_size=args.page_size, max_top=args.max_top)
    graph.start()
    try:
        return await _run(args, workdir, graph)
    finally:
        graph.stop()


async def _run(args: argparse.Namespace, workdir: Path, graph: BenchGraph) -> list[str]:
    managers = [f"mgr{m:03d}@example.com" for m in range(args.managers)]
    share = math.ceil(args.members / args.managers)
    gid = graph.add_group("sg-bench")
    for mgr in managers:
        graph.seed(mgr, department="Engineering")
    members = [f"user{i:05d}@example.com" for i in range(args.members)]
    graph.members[gid] = [graph.seed(email, manager=managers[i // share], department="Engineering")
                          for i, email in enumerate(members)]
    directory = yaml.safe_load((ROOT / "examples/directory.yaml").read_text())
    directory["users"] += [{"email": m, "name": m.split("@")[0], "department": "Engineering",
                            "manager": "pat.lead@example.com"} for m in managers]
    (workdir / "directory.yaml").write_text(yaml.safe_dump(directory, sort_keys=False))
    policy = workdir / "policy.yaml"
    shutil.copy(ROOT / "examples/policy.yaml", policy)
    # the safety brake would hold the close's removals for a person's `resume removals` (a review's removals above
    # safety.max_removals always need a second person): not what this measures, so the limit is above them (whole
    # shares of the reviewers who remove: a few more than --removals when the shares do not divide it)
    policy.write_text(policy.read_text().replace("reviews:\n", REVIEW, 1) + PROFILE.format(group=gid)
                      + f"\nsafety: {{max_removals: {math.ceil(args.removals / share) * share + 1}}}\n")
    url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    settings = Settings(database_url=url, policy=str(policy), directory=str(workdir / "directory.yaml"),
                        identity="directory", entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                        entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)
    lines = [f"{args.members} memberships of one Entra group, {args.managers} reviewers, {args.removals} removals; "
             f"Graph pages of {args.page_size} (up to {args.max_top} asked with $top), "
             f"write quota {args.quota} per {args.window:g} s; "
             f"database {url.split(':', 1)[0]}"]
    async with build_app(settings) as app:
        sql = Statements(app.store.engine)
        sam = await app.service.identify("sam.sec@example.com")
        assert sam is not None
        provider = app.deps.providers["entra"]

        warm = graph.add_group("sg-warm")  # the token and the connection, which a running service has already
        graph.members[warm] = [graph.upn_index[managers[0]]]
        await provider.list_members(warm)  # type: ignore[attr-defined]
        started = time.monotonic()  # the floor of the start: the same reads by the provider alone
        read = await provider.snapshot_members(gid)  # type: ignore[attr-defined]
        read_floor = time.monotonic() - started
        assert len(read) == args.members

        http0, sql0 = graph.requests_seen, sql.count
        started = time.monotonic()
        reply = await app.service.handle_text(sam, "review start bench-review")
        start = Phase("start", time.monotonic() - started, read_floor, "the Graph reads alone",
                      graph.requests_seen - http0, sql.count - sql0)
        assert reply.ok and f"{args.members} item(s)" in reply.text, reply.text

        # Monday 08:00: every reviewer opens their batch at once (`review RV-1`, what a card's refresh shows), then
        # again (the card refreshed with nothing new to record); each live-checks their items' group at Graph
        people = [await app.service.identify(mgr) for mgr in managers[:math.ceil(args.members / share)]]  # with items
        cards: list[Phase] = []
        for round_ in ("first", "again"):
            http0, sql0 = graph.requests_seen, sql.count
            started = time.monotonic()
            shown = await asyncio.gather(*(app.service.handle_text(p, "review RV-1") for p in people if p))
            cards.append(Phase(f"{len(people)} reviewers open their batch at once ({round_})",
                               time.monotonic() - started, 0.0, "", graph.requests_seen - http0, sql.count - sql0))
            assert all(r.ok for r in shown), [r.text for r in shown if not r.ok][:3]

        # reviewers clicking Keep on one item each, one after another (a card's click): each live-checks that one
        # membership at Graph
        clickers = [p for p in people[math.ceil(args.removals / share):][:args.clicks] if p]
        async with app.store.read() as repo:
            first_of = {}
            for item in await repo.items(1):
                first_of.setdefault(item.reviewer, item.number)
        http0, sql0 = graph.requests_seen, sql.count
        started = time.monotonic()
        for person in clickers:
            kept = await app.service.handle_text(person, f"keep RV-1 {first_of[person.email]}")
            assert kept.ok, kept.text
        clicks = Phase(f"{len(clickers)} reviewers keep one item each, one after another",
                       time.monotonic() - started, 0.0, "", graph.requests_seen - http0, sql.count - sql0)

        deciders = managers[:math.ceil(args.removals / share)]
        started = time.monotonic()
        for mgr in deciders:
            person = await app.service.identify(mgr)
            assert person is not None
            decided = await app.service.handle_text(person, "remove RV-1 all because bench: no longer needed")
            assert decided.ok, decided.text
        deciding = time.monotonic() - started
        removals = min(args.members, len(deciders) * share)

        graph.set_write_quota(args.quota, args.window)
        http0, sql0 = graph.requests_seen, sql.count
        started = time.monotonic()
        closed = await app.service.handle_text(sam, "review close RV-1")
        assert closed.ok, closed.text
        at_close = time.monotonic() - started
        passes = 0
        while True:  # what the scheduler's sweeps do: removals still due run again when Graph allows
            async with app.store.read() as repo:
                waiting = await repo.due_ops(app.deps.now() + _days(1), limit=removals * 2)
                closing = await repo.campaigns(states=("closing",))  # type: ignore[attr-defined]
            if not waiting and not closing:
                break
            wake = min((op.next_attempt_at for op in waiting if op.next_attempt_at), default=app.deps.now())
            await asyncio.sleep(max(0.0, (wake - app.deps.now()).total_seconds()))
            await run_due_ops(app.deps, limit=removals * 2)
            await finish_stalled(app.deps)
            passes += 1
        total = time.monotonic() - started
        http_close, sql_close = graph.requests_seen - http0, sql.count - sql0
        async with app.store.read() as repo:
            items = await repo.items(1)
        failed_at_close = sum(i.state == "failed" for i in items)
        left = len(graph.member_emails(gid))

    quota_floor = math.floor((removals - 1) / args.quota) * args.window if removals > args.quota else 0.0
    token = next(iter(graph.valid_tokens))
    graph.set_write_quota(None)
    bare = await bare_removals(graph, removals, token, os.environ["SSL_CERT_FILE"])
    floor, what = (quota_floor, "the write quota's sliding window") if quota_floor > bare else \
        (bare, f"{removals} bare $batch removals")
    close = Phase("close", total, floor, what, http_close, sql_close)
    sustained = removals * args.window / args.quota
    lines += [start.line(),
              *(f"{c.name}: {c.seconds:.2f} s; round trips: {c.http} HTTP to Graph, {c.sql} SQL statements"
                for c in (*cards, clicks)),
              f"decisions (not a figure): {len(deciders)} reviewers removed {removals} items in {deciding:.2f} s",
              close.line(),
              f"  at the quota's sustained rate ({args.quota / args.window:.1f} writes/s) {removals} writes take "
              f"{sustained:.1f} s: the close took {total / sustained:.2f}x that",
              f"  the first answer to `review close` after {at_close:.2f} s ({closed.text[:80]}); {passes} later "
              f"pass(es); {failed_at_close} removals recorded failed; {left} still members (must be "
              f"{args.members - removals})"]
    if left != args.members - removals:
        lines.append("LOST: the group does not hold what the review decided")
    return lines


def _days(n: int) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--managers", type=int, default=100)
    parser.add_argument("--removals", type=int, default=2_000)
    parser.add_argument("--clicks", type=int, default=20, help="reviewers who keep one item each, one at a time")
    parser.add_argument("--page-size", type=int, default=100, help="Graph's default page of group members")
    parser.add_argument("--max-top", type=int, default=999, help="the largest page $top may ask for (Graph: 999)")
    parser.add_argument("--quota", type=int, default=3000, help="writes allowed per window")
    parser.add_argument("--window", type=float, default=150.0, help="seconds")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        lines = asyncio.run(run(args, Path(tmp)))
    print("\n".join(lines), flush=True)
    sys.exit(1 if any(line.startswith("LOST") for line in lines) else 0)


if __name__ == "__main__":
    try:
        main()
    finally:
        from bench.rss import peak_rss_line

        print(peak_rss_line())
