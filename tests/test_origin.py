"""Every audit event says which door it came through: data.channel and the platform user id."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.scheduler import run_sweep
from handlers.audit import verify_chain
from tests.support import cli, copy_examples, harness


def _events(db: str) -> list[dict]:
    return [json.loads(x) for x in cli("audit", "export", db=db, check=True).stdout.splitlines()]


def test_console_and_cli_events_say_so(database_url, tmp_path):
    files = copy_examples(tmp_path)
    db = database_url
    cli("chat", "--as", "bob@example.com", input="request staging-admin for 1h\n", db=db, files=files)
    cli("chat", "--as", "mark.mgr@example.com", input="approve REQ-1\n", db=db, files=files)
    cli("sweep", "--as-of", "2030-01-01T00:00:00Z", db=db, files=files, check=True)
    events = _events(db)
    by_type = {e["type"]: e for e in events}
    for kind in ("request.submitted", "approval.requested", "approval.granted", "request.approved",
                 "grant.provisioned"):
        assert by_type[kind]["data"]["channel"] == "console", by_type[kind]
        assert "channel_user_id" not in by_type[kind]["data"]  # the console has no platform id
    assert by_type["grant.expired"]["data"]["channel"] == "cli"
    assert by_type["grant.expired"]["actor"] == "system"
    assert verify_chain(events).ok
    assert cli("audit", "verify", db=db).returncode == 0


async def test_the_scheduler_and_an_unmarked_caller(sqlite_url, tmp_path):
    async with harness(sqlite_url, tmp_path) as h:
        await h.say("bob@example.com", "request staging-admin for 1h")  # no channel around it
        await h.say("mark.mgr@example.com", "approve REQ-1")
        h.clock.advance(hours=2)
        await run_sweep(h.app, "expiry")
        events = await h.events()
        assert "channel" not in next(e for e in events if e["type"] == "request.submitted")["data"]
        [expired] = [e for e in events if e["type"] == "grant.expired"]
        assert expired["data"]["channel"] == "scheduler" and "channel_user_id" not in expired["data"]


async def test_seen_events_are_forgotten_after_a_day(sqlite_url, tmp_path):
    async with harness(sqlite_url, tmp_path) as h:
        store = h.app.store
        async with store.write() as repo:
            assert await repo.first_seen("slack:event:OLD", h.clock.now())
        h.clock.advance(hours=2)
        async with store.write() as repo:
            assert await repo.first_seen("slack:event:NEW", h.clock.now())
        h.clock.at += timedelta(hours=23)  # OLD is 25 hours old, NEW 23
        await h.app.service.sweep()
        async with store.write() as repo:
            assert not await repo.first_seen("slack:event:NEW", h.clock.now())
            assert await repo.first_seen("slack:event:OLD", h.clock.now())
