"""A review close whose removals fail part-way at Graph (SPEC §7, §3.4): the removals Graph refused are
recorded ``failed`` with their correlation ids and reported to the security team, retried by the sweep
and done exactly once; the campaign's record keeps ``failed`` (what happened at the close) and the later
removal is its own event, ``review.removal_completed``; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.bootstrap import build_app
from bot.evidence_commands import write_pack
from handlers.evidence import Period
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier

MEMBERS = ("bob@example.com", "carol@example.com", "dana.dba@example.com", "dev.dba@example.com")
OPS_REVIEW = """reviews:
  - id: ops-review
    title: Operations console review
    scope: {profiles: [entra-ops]}
    reviewer: manager
    fallback: {any_of: security}
    schedule: {timezone: Europe/Berlin, holidays: DE}
    duration: 10bd
    if_not_reviewed: remove
    justification: {keep: optional, remove: optional}
"""


async def test_failed_removals_are_reported_retried_done_once_and_stay_failed_in_the_record(
        database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1))
    for email in MEMBERS:  # standing members at Graph, no grant behind them
        graph.add_member(world.entra_group, email)
    clock = MutableClock()
    notifier = RecordingNotifier()
    async with build_app(world.settings(), clock=clock, notifier=notifier) as app:
        sam = await app.service.identify("sam.sec@example.com")
        assert sam is not None
        reply = await app.service.handle_text(sam, "review start ops-review")
        assert reply.ok and "4 item(s)" in reply.text, reply.text

        graph.writes_only = True
        graph.fail_inner_next(2, status=403)  # Graph refuses two of the four removals in the $batch
        reply = await app.service.handle_text(sam, "review close RV-1")
        assert reply.ok and "removed 4" in reply.text and "failed 2" in reply.text, reply.text
        async with app.store.read() as repo:
            items = {i.user: i for i in await repo.items(1)}
        failed = {u for u, i in items.items() if i.state == "failed"}
        assert len(failed) == 2 and set(graph.member_emails(world.entra_group)) == failed
        assert all(items[u].removed_at is None and "correlation id" in (items[u].outcome or "") for u in failed)
        events = [e.as_dict() async for e in app.store.audit_events()]
        (closed,) = [e for e in events if e["type"] == "review.closed"]
        assert closed["data"]["failed"] == 2
        reported = {f["user"]: f["correlation_id"] for f in closed["data"]["failures"]}
        assert set(reported) == failed and all(reported.values())
        # the security team is told who, what and the correlation id, once by the close
        told = [n.text for n in notifier.to("sam.sec@example.com", "failure") if "RV-1" in n.text]
        assert len(told) == 1 and all(u in told[0] and reported[u] in told[0] for u in failed), told
        assert sorted(e["data"]["user"] for e in events if e["type"] == "membership.removed") == sorted(
            set(MEMBERS) - failed)

        graph.up()
        clock.advance(minutes=10)  # past the retry's backoff
        report = await app.service.sweep()
        assert sorted(line for line in report.reviews_closed) == sorted(
            f"RV-1 item {items[u].number}: removed after the close" for u in failed), report.lines()
        again = await app.service.sweep()  # nothing more: each removal and its record happen once
        assert again.reviews_closed == []
        events = [e.as_dict() async for e in app.store.audit_events()]
        removed = Counter(e["data"]["user"] for e in events if e["type"] == "membership.removed")
        assert removed == Counter(MEMBERS)
        completed = [e for e in events if e["type"] == "review.removal_completed"]
        assert sorted(e["data"]["user"] for e in completed) == sorted(failed)
        assert all(e["data"]["correlation_id"] == reported[e["data"]["user"]] for e in completed)
        assert graph.member_emails(world.entra_group) == []
        async with app.store.read() as repo:
            after = {i.user: i for i in await repo.items(1)}
            ops = await repo.ops_for(0)
        assert Counter(o.status for o in ops if o.op == "remove") == Counter({"done": 4})
        for user in failed:  # the record of the close is kept: failed, with when it was finally removed
            assert after[user].state == "failed" and after[user].outcome == items[user].outcome
            assert after[user].removed_at is not None and after[user].removed_at >= clock.at - timedelta(minutes=1)

        pack = tmp_path / "pack.zip"
        days = sorted([clock.at.date().isoformat(), datetime.now(UTC).date().isoformat()])  # the events' recording
        await write_pack(app.store, Period.parse(*days), pack, sla_hours=24)  # time is real, as the CLI writes it
        with zipfile.ZipFile(pack) as zf:
            reviews = list(csv.DictReader(io.StringIO(zf.read("reviews.csv").decode())))
            rows = {r["user"]: r for r in csv.DictReader(io.StringIO(zf.read("review_items.csv").decode()))}
            report_html = zf.read("report.html").decode()
        assert reviews[0]["failed"] == "2"
        for user in failed:
            assert rows[user]["outcome"].startswith("failed at close (correlation id ") and rows[user]["removed_at"]
        assert "2 failed at close, 2 done later" in report_html


async def test_a_throttled_close_waits_for_graph_instead_of_recording_failures(
        database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1))
    for email in MEMBERS:
        graph.add_member(world.entra_group, email)
    clock = MutableClock()
    async with build_app(world.settings(), clock=clock, notifier=RecordingNotifier()) as app:
        sam = await app.service.identify("sam.sec@example.com")
        assert sam is not None
        assert (await app.service.handle_text(sam, "review start ops-review")).ok
        graph.writes_only = True
        graph.down(status=429, retry_after=0.05)  # Graph's write quota is spent: throttled, not failed
        reply = await app.service.handle_text(sam, "review close RV-1")
        assert reply.ok and "RV-1 closing: 4 removal(s) wait for the provider" in reply.text, reply.text
        async with app.store.read() as repo:
            assert (await repo.get_campaign(1)).state == "closing"  # type: ignore[union-attr]
        assert not [e async for e in app.store.audit_events() if e.type == "review.closed"]
        graph.up()
        clock.advance(seconds=30)
        report = await app.service.sweep()
        assert report.reviews_closed == ["RV-1 closed: kept 0, removed 4, defaulted 4, gone 0, failed 0"], \
            report.lines()
        closed = [e.as_dict() async for e in app.store.audit_events() if e.type == "review.closed"]
        assert len(closed) == 1 and closed[0]["data"]["failed"] == 0 and "failures" not in closed[0]["data"]
        assert graph.member_emails(world.entra_group) == []
