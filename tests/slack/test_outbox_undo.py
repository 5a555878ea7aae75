"""What an undo of a review removal tells others goes through the outbox (handlers/outbox.py), sent through the
Slack stand-in: the other members of the security team asked to approve it (written with
``review.undo_requested``), and the one who asked told it was approved (written with ``review.undone``). A send cut
off after the command was committed is made by the next delivery, once. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bot.slack.notifier import SlackNotifier
from handlers.outbox import notice_lease
from handlers.sweeps import sweep
from tests.reviews.test_decisions import started
from tests.slack.test_outbox_settled import CutOnce, _cut_then_delivered, _dm, _slack
from tests.standins.slack import SlackWebApi
from tests.support import Harness, harness
from tests.test_notice_outbox import _outbox

SAM, SASHA, ALICE = "sam.sec@example.com", "sasha.sec@example.com", "alice@example.com"


async def _removed(h: Harness) -> int:
    """A closed campaign that removed Alice: her item's number."""
    items = await started(h)
    alice, bob = items[ALICE].number, items["bob@example.com"].number
    assert (await h.say("mark.mgr@example.com", f"remove RV-1 {alice} because not on call any more")).ok
    assert (await h.say(SAM, "keep RV-1 1 2")).ok
    assert (await h.say("pat.lead@example.com", "keep RV-1 all because needed")).ok
    assert (await h.say("mark.mgr@example.com", f"keep RV-1 {bob}")).ok
    assert (await h.say(SAM, "review close RV-1")).ok
    assert (await h.say(SASHA, "approve RV-1")).ok
    assert ALICE not in await h.members("sg-prod-db-read")
    return alice


async def test_an_undo_asks_the_other_security_members_through_the_outbox(database_url, tmp_path, slack_api):
    async with harness(database_url, tmp_path) as h:
        alice = await _removed(h)
        real = _slack(h, slack_api)
        pending = await _cut_then_delivered(
            h, real, lambda: h.say(SAM, f"review undo RV-1 {alice} because she is on call again"), "asks to undo")
        (asked,) = await h.events("review.undo_requested")
        assert asked["actor"] == SAM
        assert [(r["recipient"], r["kind"]) for r in pending] == [(SASHA, "approval")]  # not the one who asked
        [line] = _dm(slack_api, SASHA, "asks to undo")
        assert f"approve RV-1 {alice}" in line and "she is on call again" in line
        assert _dm(slack_api, SAM, "asks to undo") == []
        await sweep(h.app.deps, drift=False)
        assert len(_dm(slack_api, SASHA, "asks to undo")) == 1


async def test_the_one_who_asked_for_an_undo_is_told_it_was_approved(database_url, tmp_path, slack_api):
    async with harness(database_url, tmp_path) as h:
        alice = await _removed(h)
        real = _slack(h, slack_api)
        assert (await h.say(SAM, f"review undo RV-1 {alice} because she is on call again")).ok
        await real.idle()
        pending = await _cut_then_delivered(h, real, lambda: h.say(SASHA, f"approve RV-1 {alice}"),
                                            "approved your undo")
        assert ALICE in await h.members("sg-prod-db-read")
        assert [(r["recipient"], r["kind"]) for r in pending] == [(SAM, "approval")]
        [line] = _dm(slack_api, SAM, "approved your undo")
        assert line.startswith(f"{SASHA} approved your undo of RV-1 item {alice}") and ALICE in line
        await sweep(h.app.deps, drift=False)
        assert len(_dm(slack_api, SAM, "approved your undo")) == 1


async def _asked_then_cut(h: Harness, slack_api: SlackWebApi) -> tuple[int, SlackNotifier]:
    """Sam asks to undo Alice's removal and the send of the ask to Sasha is cut off after the commit: Alice's item
    number, and the real Slack notifier (in place again)."""
    alice = await _removed(h)
    real = _slack(h, slack_api)
    h.app.deps.notifier = CutOnce(real, "asks to undo")
    with pytest.raises(asyncio.CancelledError):
        await h.say(SAM, f"review undo RV-1 {alice} because she is on call again")
    h.app.deps.notifier = real
    return alice, real


async def test_an_undo_ask_unsent_when_another_member_approved_is_dropped(database_url, tmp_path, slack_api):
    """Sasha approves the undo before the ask to her went out (its send cut off): the ask, which tells her to answer
    `approve`, is dropped with why, not sent; Sam is still told it was approved."""
    async with harness(database_url, tmp_path) as h:
        alice, real = await _asked_then_cut(h, slack_api)
        assert (await h.say(SASHA, f"approve RV-1 {alice}")).ok
        h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
        await sweep(h.app.deps, drift=False)
        await real.idle()
        assert ALICE in await h.members("sg-prod-db-read")
        assert _dm(slack_api, SASHA, "asks to undo") == []
        [ask] = [r for r in await _outbox(h) if "asks to undo" in r["text"]]
        assert ask["status"] == "dropped" and ask["recipient"] == SASHA, ask
        assert ask["last_error"] == f"RV-1 item {alice}: no undo waits for approval (approved by {SASHA})"
        assert len(_dm(slack_api, SAM, "approved your undo")) == 1


async def test_an_undo_ask_still_waiting_is_sent_after_a_restart(database_url, tmp_path, slack_api):
    """The ask kept with what it asks for is sent as its text while the undo still waits (a view the channels
    are not given)."""
    async with harness(database_url, tmp_path) as h:
        alice, real = await _asked_then_cut(h, slack_api)
        h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
        await sweep(h.app.deps, drift=False)
        await real.idle()
        [line] = _dm(slack_api, SASHA, "asks to undo")
        assert f"approve RV-1 {alice}" in line
        assert [r["status"] for r in await _outbox(h) if "asks to undo" in r["text"]] == ["sent"]
