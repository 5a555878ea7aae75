"""A reminder Slack keeps refusing (chat.postMessage answers 400 every time) is tried a bounded number of times
through the real Slack channel, then recorded as undeliverable; nothing is sent for it afterwards."""

from __future__ import annotations

from handlers.outbox import LONGEST_RETRY, MAX_ATTEMPTS, deliver_pending
from handlers.sweeps import sweep
from tests.slack.conftest import UID

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_a_reminder_slack_refuses_ends_undeliverable(slack_any_db) -> None:
    h = slack_any_db
    sent = await h.command(BOB, "request prod-db-read for 1h because INC-1 hot path")
    assert sent.status == 200
    await h.settle()
    assert (await h.request(1)).state == "pending"
    h.clock.advance(hours=5)  # past remind_after
    h.api.fail_path("chat.postMessage", status=400)
    try:
        await sweep(h.app.deps)
        for _ in range(MAX_ATTEMPTS + 2):
            h.clock.advance(seconds=LONGEST_RETRY.total_seconds() + 1)
            await deliver_pending(h.app.deps)
    finally:
        h.api.clear_path_faults()
    [gone] = [e for e in await h.events("notice.undeliverable") if e["data"]["kind"] == "reminder"]
    assert gone["request_id"] == "REQ-1" and gone["data"]["recipient"] == MARK
    assert gone["data"]["attempts"] == MAX_ATTEMPTS and "SlackNotifier" in gone["data"]["error"], gone
    assert len(await h.events("approval.reminded")) == 1
    h.clock.advance(hours=2)
    await deliver_pending(h.app.deps)
    await sweep(h.app.deps)
    assert not [m for m in h.api.dm(UID[MARK]) if "Reminder: REQ-1" in m.all_text]
    to_mark = [c for c in h.api.calls_of("chat.postMessage") if c.args.get("channel") == "D" + UID[MARK]]
    assert len(to_mark) == 1  # the approval message at the request; the reminder is not tried again
