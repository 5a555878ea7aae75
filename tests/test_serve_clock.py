"""The clock inside `accessbot serve` against the contract's timers (SPEC §3.6, §5, §7): what the
scheduled sweeps of serve do must be what `accessbot sweep` does."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.bootstrap import build_app
from bot.notify import FanoutNotifier
from bot.server import create_web_app
from bot.settings import Settings
from tests.reviews.test_start import REVIEW, staff
from tests.support import cli, copy_examples


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _serve_for(settings: Settings, seconds: float, until=None) -> None:  # type: ignore[no-untyped-def]
    async with build_app(settings) as app:
        web_app = create_web_app(app, FanoutNotifier())
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                if until is not None and await until(app):
                    break
                await asyncio.sleep(0.2)
        finally:
            await runner.cleanup()


def _events(db: str) -> list[dict]:
    out = cli("audit", "export", "--format", "jsonl", db=db, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


async def test_serve_runs_the_review_timers_of_an_overdue_campaign(sqlite_url, tmp_path):
    """A campaign whose 10bd have long passed is closed "at the next sweep" (SPEC §7 Close). `accessbot
    serve` "runs the scheduled sweeps" (SPEC §5): its sweeps must close it too, not only `accessbot sweep`."""
    files = copy_examples(tmp_path)
    staff(files)
    now = datetime.now(UTC)
    done = cli("review", "start", REVIEW, "--as-of", iso(now - timedelta(days=40)), db=sqlite_url, files=files)
    assert done.returncode == 0 and done.stdout.startswith("started RV-1"), done.stderr + done.stdout
    before = [e["type"] for e in _events(sqlite_url) if e["type"].startswith("review.")]
    settings = Settings(database_url=sqlite_url, policy=str(files.policy), directory=str(files.directory))
    async def moved(app) -> bool:  # type: ignore[no-untyped-def]
        return len([e async for e in app.store.audit_events() if e.type.startswith("review.")]) > len(before)

    await _serve_for(settings, 30, moved)
    after = [e["type"] for e in _events(sqlite_url) if e["type"].startswith("review.")]
    # the control: one `accessbot sweep` does what the campaign is due for
    swept = cli("sweep", db=sqlite_url, files=files, check=True).stdout
    assert after != before, (before, after, swept)


async def _file(settings: Settings, people: list[str]) -> None:
    async with build_app(settings) as app:
        for p in people:
            person = await app.service.identify(p)
            assert person is not None, p
            reply = await app.service.handle_text(person, "request analytics-read for 20h")
            assert reply.ok, reply.text


def _crowd(files, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    people = [f"eng{i:02d}@example.com" for i in range(n)]

    def change(data: dict) -> None:
        data["users"] += [{"email": p, "name": p, "department": "Engineering", "title": "Software Engineer",
                           "employment_type": "FTE", "manager": "mark.mgr@example.com", "active": True}
                          for p in people]
    files.edit_directory(change)
    return people


async def _fifteen_leave_fifteen_move(db: str, tmp_path):  # type: ignore[no-untyped-def]
    """30 engineers holding analytics-read (auto-approved); then one directory edit deactivates 15 and moves 15
    to Sales (no longer eligible): 30 removals for the next sweep."""
    files = copy_examples(tmp_path)
    people = _crowd(files, 30)
    settings = Settings(database_url=db, policy=str(files.policy), directory=str(files.directory))
    await _file(settings, people)
    leavers, movers = people[:15], people[15:]

    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in leavers:
                u["active"] = False
            if u["email"] in movers:
                u["department"] = "Sales"
    files.edit_directory(change)
    return files, settings


async def test_serve_counts_leavers_and_movers_of_one_sweep_together_against_the_brake(sqlite_url, tmp_path):
    """SPEC §3.6 safety brake: the removals of one sweep (leavers AND movers) count together; above
    safety.max_removals (25) none is executed. 15 leavers + 15 movers = 30: `accessbot sweep` holds them;
    the scheduled sweep of `accessbot serve` must hold them too."""
    _, settings = await _fifteen_leave_fifteen_move(sqlite_url, tmp_path)

    async def judged(app) -> bool:  # type: ignore[no-untyped-def]
        types = [e.type async for e in app.store.audit_events()]
        return "automation.paused" in types or types.count("grant.revoked") >= 30

    await _serve_for(settings, 20, judged)
    events = _events(sqlite_url)
    revoked = [e for e in events if e["type"] == "grant.revoked"]
    paused = [e for e in events if e["type"] == "automation.paused"]
    assert not revoked and paused, (len(revoked), [p["data"] for p in paused])


async def test_the_cli_sweep_holds_the_same_thirty(sqlite_url, tmp_path):
    """The control for the test above: `accessbot sweep` pauses them."""
    files, _ = await _fifteen_leave_fifteen_move(sqlite_url, tmp_path)
    cli("sweep", db=sqlite_url, files=files, check=True)
    events = _events(sqlite_url)
    assert not [e for e in events if e["type"] == "grant.revoked"]
    assert [e for e in events if e["type"] == "automation.paused"]
