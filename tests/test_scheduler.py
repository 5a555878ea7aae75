"""The clock inside ``accessbot serve``: overdue work at start-up, exact-time expiry, health, metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web

from bot.bootstrap import build_app
from bot.notify import FanoutNotifier
from bot.server import create_web_app
from bot.settings import Settings
from handlers.context import FixedClock
from handlers.grants import plan_remove
from tests.support import copy_examples


async def _ops(app, n: int) -> list:
    async with app.store.read() as repo:
        return await repo.ops_for(n)


async def test_expiry_is_exact_between_interval_runs(database_url, tmp_path):
    files = copy_examples(tmp_path)
    # an hour between interval sweeps: only the exact-time wake-up can expire the grant in time
    files.policy.write_text(files.policy.read_text() + "\nschedule: {sweep_interval: 1h}\n")
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    started = datetime.now(UTC) - timedelta(seconds=57)
    async with build_app(settings, clock=FixedClock(started)) as app:
        bob = await app.service.identify("bob@example.com")
        overdue = await app.service.handle_text(bob, "request analytics-read for 1m")
        async with app.store.write() as repo:  # one grant already overdue when the server starts
            record = await repo.get_request(overdue.request.number)
            record.expires_at = started
            await repo.save_request(record)
        alice = await app.service.identify("alice@example.com")
        soon = await app.service.handle_text(alice, "request analytics-read for 1m")
        assert soon.request.state == "active"
    async with build_app(settings) as app:
        web_app = create_web_app(app, FanoutNotifier())
        runner = web.AppRunner(web_app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async def state(n: int) -> str:
                async with app.store.read() as repo:
                    return (await repo.get_request(n)).state

            t0 = time.monotonic()
            while await state(1) != "expired":
                assert time.monotonic() - t0 < 5, "overdue grant not caught up at start-up"
                await asyncio.sleep(0.1)
            while await state(2) != "expired":
                assert time.monotonic() - t0 < 15, "grant not expired at its exact time"
                await asyncio.sleep(0.1)
            async with app.store.read() as repo:
                record = await repo.get_request(2)
            events = [e async for e in app.store.audit_events() if e.type == "grant.expired"]
            assert len(events) == 2
            lag = datetime.fromisoformat(events[1].ts.replace("Z", "+00:00")) - record.expires_at
            assert timedelta(0) <= lag < timedelta(seconds=3), lag

            # the removals run right after the expiry is recorded: wait for their answers
            while any(o.status == "pending" for o in await _ops(app, 1) + await _ops(app, 2)):
                assert time.monotonic() - t0 < 20, "the expired grants' removals did not finish"
                await asyncio.sleep(0.1)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    body = await r.json()
                    assert r.status == 200 and body["checks"]["database"] == "ok"
                    assert body["checks"]["scheduler"] == "running"
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    text = await r.text()
                    assert 'accessbot_requests{state="expired"} 2.0' in text
                    assert "accessbot_sweep_seconds" in text
                    assert "accessbot_oldest_overdue_revocation_seconds 0.0" in text
        finally:
            await runner.cleanup()


async def test_a_provider_retry_runs_when_it_is_due_not_at_the_next_interval(database_url, tmp_path):
    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text() + "\nschedule: {sweep_interval: 1h}\n")
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings) as app:
        bob = await app.service.identify("bob@example.com")
        reply = await app.service.handle_text(bob, "request analytics-read for 4h")
        record = reply.request
        assert record.state == "active"
        group = app.deps.policy.profile("analytics-read").group
        provider = app.deps.providers["directory"]
        assert "bob@example.com" in await provider.list_members(group)
        # what a release leaves behind when the provider answered 429 with Retry-After: 3 —
        # the grant ended, its removal pending until the moment the provider named
        now = datetime.now(UTC)
        async with app.store.write() as repo:
            stored = await repo.get_request(record.number)
            stored.state, stored.ended_at, stored.end_reason = "released", now, "released"
            await repo.save_request(stored)
            op = await plan_remove(repo, stored, now)
            op.next_attempt_at = now + timedelta(seconds=3)
            await repo.save_op(op)
        web_app = create_web_app(app, FanoutNotifier())
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            t0 = time.monotonic()
            while "bob@example.com" in await provider.list_members(group):
                assert time.monotonic() - t0 < 10, "the retry waited for the hourly sweep"
                await asyncio.sleep(0.1)
            # not before the provider said (measured from when it said it: setting the server up
            # may take seconds on a loaded machine)
            assert datetime.now(UTC) >= op.next_attempt_at - timedelta(seconds=0.2)
            # the member is gone once the call returned; its answer is recorded a moment later
            while True:
                async with app.store.read() as repo:
                    [op] = [o for o in await repo.ops_for(record.number) if o.op == "remove"]
                if op.status != "pending" or time.monotonic() - t0 > 10:
                    break
                await asyncio.sleep(0.05)
            assert op.status == "done"
        finally:
            await runner.cleanup()
