"""A reminder Slack keeps refusing (chat.postMessage answers 400 every time) is tried a bounded number of times
through the real Slack channel, then recorded as undeliverable; nothing is sent for it afterwards. A notice for
someone Slack has no account for is not counted as sent: tried again, then unreachable, and the team is told."""

from __future__ import annotations

from sqlalchemy import select
from structlog.testing import capture_logs

from handlers.outbox import LONGEST_RETRY, MAX_ATTEMPTS, NO_ADDRESS, deliver_pending
from handlers.ports import Notice
from handlers.sweeps import sweep
from store import schema as t
from tests.slack.conftest import UID

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def _outbox(h) -> list[dict]:  # type: ignore[no-untyped-def]
    async with h.app.store.read() as repo:
        rows = (await repo.conn.execute(select(t.notice_outbox).order_by(t.notice_outbox.c.id))).all()
    return [dict(r._mapping) for r in rows]


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


async def test_a_notice_for_someone_slack_cannot_reach_is_retried_then_ends_unreachable(slack_any_db) -> None:
    h = slack_any_db
    ghost = "ghost@example.com"  # in no directory and without a Slack account: no DM can be opened
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(ghost, "reminder", "Reminder: REQ-9 waits for your decision.", None)],
                                 h.clock.now())
    with capture_logs() as logs:
        assert await deliver_pending(h.app.deps) == 0
    [row] = await _outbox(h)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, NO_ADDRESS), row  # not "sent"
    assert not [e for e in logs if e.get("exc_info") or e["log_level"] in ("error", "critical")], logs
    for _ in range(MAX_ATTEMPTS + 2):  # they may open a chat with the bot meanwhile: tried again, a bounded time
        h.clock.advance(seconds=LONGEST_RETRY.total_seconds() + 1)
        await deliver_pending(h.app.deps)
    [row] = [r for r in await _outbox(h) if r["recipient"] == ghost]
    assert (row["status"], row["attempts"], row["last_error"]) == ("unreachable", MAX_ATTEMPTS, NO_ADDRESS)
    [gone] = await h.events("notice.undeliverable")
    assert gone["data"]["recipient"] == ghost and gone["data"]["error"] == NO_ADDRESS
    security = sorted(h.app.deps.policy.security_members())
    told = [r for r in await _outbox(h) if r["kind"] == "failure"]
    assert sorted(r["recipient"] for r in told) == security and {r["status"] for r in told} == {"sent"}
    assert all(ghost in r["text"] for r in told)
