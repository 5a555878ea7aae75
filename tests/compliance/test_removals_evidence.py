"""removals.csv and report.html of the evidence pack show a leaver's grants and standing memberships."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import store.repository
from bot.bootstrap import build_app
from bot.evidence_commands import write_pack
from handlers.audit import format_ts
from handlers.evidence import Period
from handlers.sweeps import sweep
from tests.compliance.test_leaver_fault import TWO_GROUPS
from tests.support import MutableClock, RecordingNotifier, harness
from tests.test_leaver_lookups import PAT, entra_settings, graph  # noqa: F401

BOB, DAN = "bob@example.com", "dan@example.com"
VERIFY = Path(__file__).resolve().parents[2] / "bot" / "evidence_files" / "verify_pack.py"


async def test_removals_csv_lists_a_leavers_grant_and_standing_membership(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request analytics-read for 1d")).ok
        h.files.add_to_group("sg-prod-db-read", BOB)
        h.files.set_active(BOB, False)
        await sweep(h.app.deps, drift=False)
        h.files.add_to_group("sg-staging-admin", "pat.lead@example.com")  # drift, removed from chat
        await sweep(h.app.deps)
        assert (await h.say("sam.sec@example.com", "drift remove D-1 because no grant")).ok
        today = datetime.now(UTC).date().isoformat()
        out = tmp_path / "pack.zip"
        await write_pack(h.app.store, Period.parse(today, today), out, sla_hours=24)
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("removals.csv").decode())))
        html = zf.read("report.html").decode()
    assert sorted((r["user"], r["group"], r["reason"], r["request_id"]) for r in rows) == [
        (BOB, "sg-analytics-read", "terminated", "REQ-1"), (BOB, "sg-prod-db-read", "terminated", ""),
        ("pat.lead@example.com", "sg-staging-admin", "drift", "")]
    assert all(r["detected_at"] and r["removed_at"] and float(r["hours"]) < 1 for r in rows)
    assert "Removals by the identity provider: 3" in html and "sg-prod-db-read" in html
    # the drift finding, its resolution, who chose it and the hours to resolution
    drift = html[html.index("<h2>Drift"):]
    assert "<td>removed</td><td>sam.sec@example.com</td>" in drift and "<td>0.00</td>" in drift, drift
    ok = await asyncio.to_thread(subprocess.run, [sys.executable, "-I", str(VERIFY), str(out)], capture_output=True,
                                 text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr


async def test_a_removal_finished_after_the_period_turned_is_measured_from_its_detection(database_url, tmp_path,
                                                                                        monkeypatch):
    """A drift finding of 23:00 removed at 01:00 the next day, and a leaver whose second removal failed at 23:50
    and ran at 00:10: the next day's removals.csv measures both from when they were found (the detections
    travel in audit_earlier.jsonl), and the pack still verifies."""
    clock = MutableClock(datetime(2026, 11, 23, 23, 0, tzinfo=UTC))
    monkeypatch.setattr(store.repository, "_wall_clock", clock.now)  # events recorded at the test's clock
    async with harness(database_url, tmp_path, clock=clock) as h:
        await sweep(h.app.deps)
        h.files.add_to_group("sg-staging-admin", "pat.lead@example.com")  # drift, found at 23:00
        await sweep(h.app.deps)
        (found,) = await h.events("drift.detected")
        clock.advance(hours=2)
        assert (await h.say("sam.sec@example.com", "drift remove D-1 because no grant")).ok
        out = tmp_path / "pack.zip"
        await write_pack(h.app.store, Period.parse("2026-11-24", "2026-11-24"), out, sla_hours=24)
    with zipfile.ZipFile(out) as zf:
        (row,) = csv.DictReader(io.StringIO(zf.read("removals.csv").decode()))
        earlier = [json.loads(line) for line in zf.read("audit_earlier.jsonl").decode().splitlines()]
    assert (row["user"], row["reason"], row["detected_at"], row["hours"]) == (
        "pat.lead@example.com", "drift", found["ts"], "2.00"), row
    assert [e["seq"] for e in earlier if e["type"] == "drift.detected"] == [found["seq"]]
    await _verified(out)


async def test_a_leavers_removal_retried_after_midnight_is_measured_from_the_departure(
        database_url, tmp_path, graph, monkeypatch):  # noqa: F811
    tools, ops = graph.add_group("sg-tools"), graph.add_group("sg-ops")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(DAN, department="Engineering", manager=PAT)
    graph.add_member(tools, DAN)
    graph.add_member(ops, DAN)
    settings = entra_settings(database_url, tmp_path, graph, tools)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text() + TWO_GROUPS.format(group=ops))
    clock = MutableClock(datetime(2026, 11, 23, 23, 50, tzinfo=UTC))
    monkeypatch.setattr(store.repository, "_wall_clock", clock.now)
    async with build_app(settings, clock=clock, notifier=RecordingNotifier()) as app:
        graph.users[graph.user_id(DAN)]["accountEnabled"] = False  # type: ignore[index]
        graph.fail_inner_next(1, status=403, retry_after=None)  # one of the two removals is refused
        assert (await app.service.sweep()).terminated == [DAN]
        for _ in range(3):  # recovered after midnight: the next sweeps finish the removal
            clock.advance(minutes=10)
            await app.service.sweep()
        assert graph.member_emails(tools) == [] and graph.member_emails(ops) == []
        (left,) = [e async for e in app.store.audit_events() if e.type == "user.terminated"]
        out = tmp_path / "pack.zip"
        await write_pack(app.store, Period.parse("2026-11-24", "2026-11-24"), out, sla_hours=24)
    with zipfile.ZipFile(out) as zf:
        (row,) = csv.DictReader(io.StringIO(zf.read("removals.csv").decode()))
    inactive = timedelta(hours=float(left.data.get("inactive_hours") or 0))
    assert (row["user"], row["reason"]) == (DAN, "terminated")
    assert row["detected_at"] == format_ts(datetime.fromisoformat(left.ts.replace("Z", "+00:00")) - inactive), row
    assert row["removed_at"] > "2026-11-24" and 0.15 < float(row["hours"]) < 1, row
    await _verified(out)


async def _verified(out: Path) -> None:
    ok = await asyncio.to_thread(subprocess.run, [sys.executable, "-I", str(VERIFY), str(out)], capture_output=True,
                                 text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
