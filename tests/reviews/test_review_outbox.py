"""The access reviews' unattended notices go through the outbox (handlers/outbox.py): a campaign's opening and
a reviewer's reminder or escalation are written with ``review.started`` / ``review.reminded`` /
``review.escalated``; a sweep cut off after the record has them sent, once, by a later sweep; a reminder whose
items were decided before it was sent is dropped, not sent. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.notice_views import decode_view, encode_view
from handlers.outbox import notice_lease
from handlers.reviews.links import ReviewLink, ReviewReminder, ReviewSignoffAsk, ReviewUndoAsk
from handlers.sweeps import sweep
from tests.reviews.test_close import at
from tests.reviews.test_decisions import started
from tests.reviews.test_start import scheduled
from tests.support import MutableClock, copy_examples, harness
from tests.test_notice_outbox import Channel, _outbox

MARK, PAT = "mark.mgr@example.com", "pat.lead@example.com"


async def _cut(deps) -> None:  # type: ignore[no-untyped-def]
    try:
        await sweep(deps, drift=False)
        raise AssertionError("the send was not cut off")
    except asyncio.CancelledError:
        pass


async def test_a_scheduled_campaigns_opening_cut_off_is_sent_once_by_the_next_sweep(database_url, tmp_path):
    files = copy_examples(tmp_path)
    scheduled(files)
    clock = MutableClock(datetime(2026, 3, 1, tzinfo=UTC))
    channel = Channel(cut=1)
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=clock, notifier=channel) as app:
        clock.at = datetime(2026, 4, 7, 6, 0, tzinfo=UTC)
        await _cut(app.deps)
        assert len([e async for e in app.store.audit_events() if e.type == "review.started"]) == 1
        assert channel.sent == []
        rows = await _outbox(type("H", (), {"app": app}))
        assert [(r["recipient"], r["kind"], r["status"]) for r in rows] == [(MARK, "info", "pending")]

        await sweep(app.deps, drift=False)  # within the lease of the process cut off: not this one's to send
        assert channel.sent == []
        clock.advance(seconds=notice_lease(channel).total_seconds() + 1)
        report = await sweep(app.deps, drift=False)
        assert report.reviews_started == []  # started once
        [told] = channel.to(MARK, "info")
        assert told.text.startswith("RV-1 (Quarterly privileged access review): you are asked to review 1 access")
        assert told.view == ReviewLink("RV-1", "Quarterly privileged access review", 1, told.view.due_at)
        clock.advance(hours=1)
        await sweep(app.deps, drift=False)
        assert len(channel.to(MARK, "info")) == 1
        assert {r["status"] for r in await _outbox(type("H", (), {"app": app}))} == {"sent"}


async def test_an_escalation_cut_off_is_sent_once_by_the_next_sweep_with_its_batch(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        n = {u.split("@")[0]: i.number for u, i in items.items()}
        h.clock.at = at(24)  # alice's grant expires (and she is told) before any review timer is due
        await sweep(h.app.deps, drift=False)
        channel = Channel(cut=1)
        h.app.deps.notifier = channel
        h.clock.at = at(30)  # 5 business days: every batch escalates (mark's to his manager, pat.lead)
        await _cut(h.app.deps)
        escalated = {e["data"]["reviewer"]: e["data"] for e in await h.events("review.escalated")}
        assert escalated[MARK]["to"] == PAT and channel.sent == []
        assert {r["status"] for r in await _outbox(h) if r["kind"] == "reminder"} == {"pending"}

        h.clock.advance(seconds=notice_lease(channel).total_seconds() + 1)
        await sweep(h.app.deps, drift=False)
        [handed] = [x for x in channel.to(PAT, "reminder") if f"of {MARK}" in x.text]
        assert "still undecided" in handed.text and "review RV-1" in handed.text
        assert isinstance(handed.view, ReviewLink)  # still the batch's card, naming what it hands over
        assert (handed.view.review_id, handed.view.reviewer, sorted(handed.view.waiting)) == (
            "RV-1", MARK, [n["bob"]])  # alice's grant ended and took her membership: nothing left to decide there
        sent = len(channel.sent)
        assert sent >= len(escalated) and {r["status"] for r in await _outbox(h)} == {"sent"}
        h.clock.advance(hours=1)
        await sweep(h.app.deps, drift=False)
        assert len(channel.sent) == sent and len(await h.events("review.escalated")) == len(escalated)


async def test_a_reminder_whose_items_were_decided_before_it_was_sent_is_dropped(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        n = {u.split("@")[0]: i.number for u, i in items.items()}
        h.clock.at = at(24)  # alice's grant expires (and she is told) before any review timer is due
        await sweep(h.app.deps, drift=False)
        channel = Channel(cut=1)
        h.app.deps.notifier = channel
        h.clock.at = at(26)  # 3 business days: each batch with undecided items is reminded
        await _cut(h.app.deps)
        reminded = {e["data"]["reviewer"] for e in await h.events("review.reminded")}
        assert {MARK, PAT} <= reminded and channel.sent == []
        # pat.lead decides the batch before the reminder went out
        assert (await h.say(PAT, f"keep RV-1 {n['deploy-bot']} {n['sam.sec']}")).ok

        h.clock.advance(seconds=notice_lease(channel).total_seconds() + 1)
        await sweep(h.app.deps, drift=False)
        assert channel.to(PAT, "reminder") == []
        [other] = channel.to(MARK, "reminder")
        assert other.text.startswith("Reminder: RV-1") and other.view is None  # sent as text, as before
        rows = {r["recipient"]: r for r in await _outbox(h) if r["kind"] == "reminder"}
        assert (rows[PAT]["status"], rows[PAT]["last_error"]) == (
            "dropped", f"RV-1: the items of {PAT} it was sent for are decided")
        assert rows[MARK]["status"] == "sent"
        assert len(await h.events("review.reminded")) == len(reminded)  # the record stands as it was


def test_a_review_batchs_stored_view_comes_back_as_it_was() -> None:
    due = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    for view in (ReviewLink("RV-2", "Quarterly", 3, due), ReviewLink("RV-2", "Quarterly", 2, due, MARK, (3, 4)),
                 ReviewReminder("RV-2", "group:security", (1, 2)), ReviewSignoffAsk("RV-2", 1),
                 ReviewUndoAsk("RV-2", 7)):
        assert decode_view(encode_view(view)) == view
    for damaged in ('{"type": "review-undo", "review_id": "RV-2", "item": -1}',
                    '{"type": "review-undo", "review_id": "RV-x", "item": 1}', '{"type": "review-undo"}'):
        assert decode_view(damaged) is None  # sent as its text, never held back by a row edited by hand


async def test_a_closes_signoff_request_cut_off_is_sent_once_by_the_next_sweep(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        n = {u.split("@")[0]: i.number for u, i in items.items()}
        assert (await h.say(MARK, f"remove RV-1 {n['bob']} because no sign-in since January")).ok
        h.clock.at = at(24)
        await sweep(h.app.deps, drift=False)
        channel = Channel(cut=1)
        h.app.deps.notifier = channel
        h.clock.at = at(7, 12)  # the duration is over: closed, its removals wait for the sign-off
        await _cut(h.app.deps)
        (asked,) = await h.events("review.signoff_requested")
        assert channel.sent == []
        h.clock.advance(seconds=notice_lease(channel).total_seconds() + 1)
        await sweep(h.app.deps, drift=False)
        told = [x for x in channel.sent if x.kind == "approval"]
        assert sorted(x.recipient for x in told) == sorted(asked["data"]["approvers"]) and told
        assert all("waiting for your sign-off" in x.text and "approve RV-1" in x.text for x in told)
        h.clock.advance(hours=1)
        await sweep(h.app.deps, drift=False)
        assert len([x for x in channel.sent if x.kind == "approval"]) == len(told)
        assert len(await h.events("review.signoff_requested")) == 1
