"""Two sweeps (two processes) judge the same request at once: what one of them recorded under the write
lock is what the other finds there, so a request fails closed once, not once per sweep."""

from __future__ import annotations

import yaml

from handlers.sweeps import sweep
from tests.support import RecordingNotifier, before_looking_up, harness, second_process

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
        async with second_process(h) as other:
            # the other process has read the request as pending and looks its approvers up, when this one's sweep
            # fails it and commits; then the other goes on to its write
            ran = before_looking_up(monkeypatch, other, MARK, lambda: sweep(h.app.deps))
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
        notifier = RecordingNotifier()
        async with second_process(h, notifier) as other:
            # the sweep has read the request as waiting on Mark when he approves
            approved = before_looking_up(monkeypatch, other, MARK, lambda: h.say(MARK, "approve REQ-1"))
            await sweep(other.deps)
        assert [r.ok for r in approved] == [True]
        assert (await h.request(1)).step == 1
        assert not await h.events("approval.reminded")
        assert not notifier.to(MARK, "reminder")
