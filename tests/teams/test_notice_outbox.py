"""The outbox (handlers/outbox.py) sends through Teams (``TeamsNotifier.send``) against the Bot Connector stand-in:
a reminder goes out as Mark's approval card; a connector that keeps refusing with a permanent 4xx ends the
notice undeliverable after the bounded attempts; a 429 with Retry-After is waited out and tried again, and the
notice is sent, not given up."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from structlog.testing import capture_logs

from bot.notify import FanoutNotifier
from bot.teams.connector import ATTEMPTS, worst_call
from bot.teams.notifier import NOTICE_CALLS, TeamsNotifier
from handlers.outbox import FIRST_RETRY, LONGEST_RETRY, MAX_ATTEMPTS, deliver_pending, notice_lease
from handlers.ports import Notice
from handlers.sweeps import sweep
from store import schema as t
from tests.teams.cardcheck import texts_of
from tests.teams.conftest import AAD, TeamsHarness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def _outbox(h: TeamsHarness) -> list[dict]:
    async with h.app.store.read() as repo:
        rows = (await repo.conn.execute(select(t.notice_outbox).order_by(t.notice_outbox.c.id))).all()
    return [dict(r._mapping) for r in rows]


async def _asked_mark(h: TeamsHarness) -> str:
    """Bob asks; Mark's approval card opens a conversation with him: its id."""
    await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")
    assert (await h.request(1)).state == "pending"
    [created] = [p for p in h.connector.of("create") if AAD[MARK] in str(p.body)]
    sends = h.connector.of("send", created.conversation)
    assert sends and "REQ-1" in texts_of(sends[-1].card or {}), sends
    return created.conversation


def _reminders(h: TeamsHarness, conversation: str) -> list[str]:
    return [texts_of(p.card) for p in h.connector.of("send", conversation)
            if p.card is not None and "Reminder: REQ-1" in texts_of(p.card)]


async def test_a_reminder_goes_out_through_teams_via_the_outbox(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    mark = await _asked_mark(h)
    h.clock.advance(hours=5)  # past remind_after
    await sweep(h.app.deps)
    assert len(_reminders(h, mark)) == 1  # the approval card again, with the reminder on it
    [row] = [r for r in await _outbox(h) if r["kind"] == "reminder"]
    assert (row["recipient"], row["status"], row["attempts"]) == (MARK, "sent", 1)


async def test_a_permanent_refusal_ends_undeliverable_after_the_bounded_attempts(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    mark = await _asked_mark(h)
    h.clock.advance(hours=5)
    h.connector.fail_path(f"/v3/conversations/{mark}/activities", status=403)  # e.g. the user blocked the bot
    try:
        await sweep(h.app.deps)
        for _ in range(MAX_ATTEMPTS + 2):
            h.clock.advance(seconds=LONGEST_RETRY.total_seconds() + 1)
            await deliver_pending(h.app.deps)
        tried = [r for r in h.connector.received("POST", f"/v3/conversations/{mark}/activities")][1:]  # not the ask
    finally:
        h.connector.clear_path_faults()
    assert len(tried) == MAX_ATTEMPTS and {r.status for r in tried} == {403}  # a 403 is not retried in the call
    [gone] = [e for e in await h.events("notice.undeliverable") if e["data"]["kind"] == "reminder"]
    assert gone["request_id"] == "REQ-1" and gone["data"]["recipient"] == MARK
    assert gone["data"]["attempts"] == MAX_ATTEMPTS and "TeamsNotifier" in gone["data"]["error"], gone
    [row] = [r for r in await _outbox(h) if r["kind"] == "reminder"]
    assert (row["status"], row["attempts"]) == ("undeliverable", MAX_ATTEMPTS)
    h.clock.advance(hours=2)
    await deliver_pending(h.app.deps)
    assert len(h.connector.received("POST", f"/v3/conversations/{mark}/activities")) == 1 + MAX_ATTEMPTS
    assert _reminders(h, mark) == []


async def test_a_429_with_retry_after_is_tried_again_later_not_given_up(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    mark = await _asked_mark(h)
    h.clock.advance(hours=5)
    # throttled through every retry of the call: the notice waits for the outbox's next attempt
    h.connector.fail_next(ATTEMPTS, status=429, retry_after=0)
    await sweep(h.app.deps)
    assert _reminders(h, mark) == []
    [row] = [r for r in await _outbox(h) if r["kind"] == "reminder"]
    assert (row["status"], row["attempts"]) == ("pending", 1) and "429" in row["last_error"], row
    assert row["next_attempt_at"] == h.clock.now() + FIRST_RETRY
    assert not await h.events("notice.undeliverable")
    await deliver_pending(h.app.deps)  # not due yet: nothing is tried
    assert _reminders(h, mark) == []

    h.clock.advance(seconds=FIRST_RETRY.total_seconds() + 1)
    h.connector.fail_next(1, status=429, retry_after=0.01)  # once more, within the call: waited out, then sent
    assert await deliver_pending(h.app.deps) == 1
    assert len(_reminders(h, mark)) == 1
    [row] = [r for r in await _outbox(h) if r["kind"] == "reminder"]
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 2, None)
    # the lease outlasts the in-call retries of every call one notice may make
    assert notice_lease(h.app.deps.notifier) > timedelta(seconds=NOTICE_CALLS * worst_call())


async def _throttled_reminder(h: TeamsHarness, *, retry_after: float = 0.4,
                              times: int = 2) -> tuple[str, asyncio.Task[int]]:
    """Mark's reminder is queued; a first deliverer sends it and is throttled (429, Retry-After): the task, once
    the connector answered its first 429."""
    mark = await _asked_mark(h)
    async with h.app.store.write() as repo:  # as the reminders sweep records it (the reminder holds: not dropped)
        record = await repo.get_request(1)
        assert record is not None
        record.reminded_step = record.round * 100 + record.step
        await repo.save_request(record)
        await repo.queue_notices([Notice(MARK, "reminder", "Reminder: REQ-1 waits for your decision.", 1)],
                                 h.clock.now())
    path = f"/v3/conversations/{mark}/activities"
    before = len(h.connector.received("POST", path))
    h.connector.fail_next(times, status=429, retry_after=retry_after)
    first = asyncio.create_task(deliver_pending(h.app.deps))
    for _ in range(200):
        if len(h.connector.received("POST", path)) > before:
            break
        await asyncio.sleep(0.01)
    assert h.connector.received("POST", path)[-1].status == 429
    return mark, first


async def test_a_throttled_send_keeps_its_lease_and_no_other_deliverer_sends_it_again(
        teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    mark, first = await _throttled_reminder(h)
    # the first deliverer waits out Retry-After; minutes pass meanwhile (the old two-minute lease runs out)
    h.clock.advance(minutes=3)
    assert await deliver_pending(h.app.deps) == 0  # a second deliverer: the notice is still the first one's
    assert await first == 1
    assert len(_reminders(h, mark)) == 1
    [row] = [r for r in await _outbox(h) if r["kind"] == "reminder"]
    assert (row["status"], row["attempts"]) == ("sent", 1)


async def test_a_deliverer_whose_lease_was_taken_over_does_not_mark_the_notice(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    _, first = await _throttled_reminder(h, retry_after=1.0, times=1)
    h.clock.advance(seconds=notice_lease(h.app.deps.notifier).total_seconds() + 1)  # the first looks gone
    # a second process takes the notice over; its try is refused (403), to be tried again later
    other = FanoutNotifier()
    other.add(TeamsNotifier(h.app, h.channel.notifier.open_connector))
    h.connector.fail_next(1, status=403)
    with capture_logs() as logs:
        assert await deliver_pending(replace(h.app.deps, notifier=other)) == 0
        assert await first == 0  # the first sent it once Retry-After was waited out, but it is no longer its own
    [row] = [r for r in await _outbox(h) if r["kind"] == "reminder"]
    assert (row["status"], row["attempts"]) == ("pending", 1) and "403" in row["last_error"], row  # the second's
    assert any(e["event"].startswith("notice lease taken over") and e["outcome"] == "sent" for e in logs), logs
