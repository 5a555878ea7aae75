"""Two sweeps (two processes) judge the same request at once: what one of them recorded under the write
lock is what the other finds there, so a request fails closed once, not once per sweep."""

from __future__ import annotations

from typing import Any

import yaml

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.sweeps import sweep
from tests.support import RecordingNotifier, harness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_a_request_two_sweeps_fail_at_once_fails_once(database_url, tmp_path, monkeypatch) -> None:
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")
        assert r.ok and (await h.request(1)).state == "pending", r.text
        data = yaml.safe_load(h.files.directory.read_text())  # Bob's manager, asked at step 1, leaves
        for user in data["users"]:
            if user["email"] == MARK:
                user["active"] = False
        h.files.directory.write_text(yaml.safe_dump(data, sort_keys=False))
        settings = Settings(database_url=database_url, policy=str(h.files.policy),
                            directory=str(h.files.directory), env={})
        async with build_app(settings, clock=h.clock, notifier=RecordingNotifier()) as other:
            provider = other.deps.providers["directory"]
            look_up = provider.get_user
            ran: list[Any] = []

            async def meanwhile(email: str) -> Any:
                # The other process has read the request as pending and looks its approvers up, when
                # this one's sweep fails it and commits; then the other goes on to its write.
                if email == MARK and not ran:
                    ran.append(await sweep(h.app.deps))
                return await look_up(email)

            monkeypatch.setattr(provider, "get_user", meanwhile)
            theirs = await sweep(other.deps)
        assert ran and ran[0].failed == ["REQ-1"], ran
        assert theirs.failed == []
        assert (await h.request(1)).state == "failed"
        assert len(await h.events("request.failed")) == 1


async def test_no_reminder_for_a_step_decided_while_the_sweep_ran(database_url, tmp_path, monkeypatch) -> None:
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")
        assert r.ok, r.text
        h.clock.advance(hours=5)  # past remind_after: step 1 is due a reminder
        settings = Settings(database_url=database_url, policy=str(h.files.policy),
                            directory=str(h.files.directory), env={})
        notifier = RecordingNotifier()
        async with build_app(settings, clock=h.clock, notifier=notifier) as other:
            provider = other.deps.providers["directory"]
            look_up = provider.get_user
            approved: list[bool] = []

            async def meanwhile(email: str) -> Any:
                if email == MARK and not approved:  # the sweep has read the request as waiting on Mark
                    approved.append((await h.say(MARK, "approve REQ-1")).ok)
                return await look_up(email)

            monkeypatch.setattr(provider, "get_user", meanwhile)
            await sweep(other.deps)
        assert approved == [True]
        assert (await h.request(1)).step == 1
        assert not await h.events("approval.reminded")
        assert not notifier.to(MARK, "reminder")
