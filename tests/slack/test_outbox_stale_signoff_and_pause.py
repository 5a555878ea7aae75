"""A sign-off request and the brake's pause notice waiting in the outbox (handlers/outbox.py) are not sent once
what they ask for no longer holds, through the Slack stand-in: a request for a sign-off step signed (or a
campaign closed) before it went out, and a pause resumed or ended before it went out, are marked ``dropped``
with why; the records stand as they were. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from handlers.outbox import LONGEST_RETRY, deliver_pending, notice_lease
from handlers.sweeps import sweep
from tests.compliance.test_brake import WAVE, _add_people
from tests.reviews.test_close import sign_off_harness
from tests.slack.test_outbox_settled import CutOnce, _dm, _slack
from tests.support import Harness, harness
from tests.test_notice_outbox import _outbox

SAM, SASHA, DANA = "sam.sec@example.com", "sasha.sec@example.com", "dana.dba@example.com"
ASK = "waiting for your sign-off"


async def _cut(h: Harness, real, run, words: str) -> None:  # type: ignore[no-untyped-def]
    """``run`` with its first send of a notice saying ``words`` cut off (a process stopped while Slack held it);
    the notices it left stay pending."""
    h.app.deps.notifier = CutOnce(real, words)
    with pytest.raises(asyncio.CancelledError):
        await run()
    h.app.deps.notifier = real


async def test_a_signoff_request_for_a_step_signed_before_it_went_out_is_dropped(database_url, tmp_path, slack_api):
    async with sign_off_harness(database_url, tmp_path, f"[{{any_of: security}}, {{user: {DANA}}}]") as h:
        real = _slack(h, slack_api)
        await _cut(h, real, lambda: h.say(SAM, "review close RV-1"), ASK)  # asks sam and sasha: neither sent
        assert sorted(r["recipient"] for r in await _outbox(h) if r["status"] == "pending") == [SAM, SASHA]
        assert (await h.say(SASHA, "approve RV-1")).ok  # step 1 signed: dana is asked, and told
        h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
        await deliver_pending(h.app.deps)
        await real.idle()
        rows = {r["recipient"]: r for r in await _outbox(h) if r["kind"] == "approval"}
        assert (rows[SAM]["status"], rows[SAM]["last_error"]) == ("dropped", "RV-1: step 1 of its sign-off is signed")
        assert (rows[SASHA]["status"], rows[SASHA]["last_error"]) == (
            "dropped", "RV-1: step 1 of its sign-off is signed")
        assert rows[DANA]["status"] == "sent" and len(_dm(slack_api, DANA, ASK)) == 1
        assert _dm(slack_api, SAM, ASK) == [] and _dm(slack_api, SASHA, ASK) == []
        asked = [e["data"] for e in await h.events("review.signoff_requested")]
        assert [(a["step"], a["approvers"]) for a in asked] == [(1, [SAM, SASHA]), (2, [DANA])]  # as recorded


async def test_a_signoff_request_for_a_campaign_closed_before_it_went_out_is_dropped(database_url, tmp_path,
                                                                                     slack_api):
    async with sign_off_harness(database_url, tmp_path, "[{any_of: security}]") as h:
        real = _slack(h, slack_api)
        await _cut(h, real, lambda: h.say(SAM, "review close RV-1"), ASK)
        assert (await h.say(SASHA, "deny RV-1 because bob still needs it")).ok  # closed: nothing removed
        h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
        await sweep(h.app.deps, drift=False)
        await real.idle()
        rows = [r for r in await _outbox(h) if r["kind"] == "approval"]
        assert {(r["status"], r["last_error"]) for r in rows} == {
            ("dropped", "RV-1 no longer waits for a sign-off (closed, sign-off denied)")}, rows
        assert _dm(slack_api, SAM, ASK) == [] and _dm(slack_api, SASHA, ASK) == []
        (closed,) = await h.events("review.closed")
        assert closed["data"]["signoff"] == "denied"


PAUSED = "Removals paused"


def _wave_leaves(h: Harness, active: bool = False) -> None:
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in WAVE:
                u["active"] = active

    h.files.edit_directory(change)


async def _paused_unsent(h: Harness, api) -> object:  # type: ignore[no-untyped-def]
    """30 leavers at once: the sweep pauses them (above safety.max_removals), its notices cut off unsent."""
    real = _slack(h, api)
    h.files.edit_directory(lambda d: _add_people(d, WAVE, "sg-analytics-read"))
    _wave_leaves(h)
    await _cut(h, real, lambda: sweep(h.app.deps, drift=False), PAUSED)
    (paused,) = await h.events("automation.paused")
    assert paused["data"]["count"] == 30
    rows = [r for r in await _outbox(h) if r["kind"] == "brake"]
    assert sorted(r["recipient"] for r in rows) == sorted(h.app.deps.policy.security_members())
    assert {r["status"] for r in rows} == {"pending"}
    return real


async def test_a_pause_notice_resumed_before_it_went_out_is_dropped(database_url, tmp_path, slack_api):
    async with harness(database_url, tmp_path) as h:
        real = await _paused_unsent(h, slack_api)
        assert (await h.say(SAM, "resume removals")).ok
        h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
        await deliver_pending(h.app.deps)
        await real.idle()
        rows = [r for r in await _outbox(h) if r["kind"] == "brake"]
        assert {(r["status"], r["last_error"]) for r in rows} == {
            ("dropped", f"the pause of 30 terminated removals was resumed by {SAM}")}, rows
        assert _dm(slack_api, SAM, PAUSED) == [] and _dm(slack_api, SASHA, PAUSED) == []
        assert len(await h.events("automation.paused")) == 1 and len(await h.events("automation.resumed")) == 1


async def test_a_pause_notice_whose_pause_ended_before_it_went_out_is_dropped(database_url, tmp_path, slack_api):
    async with harness(database_url, tmp_path) as h:
        real = await _paused_unsent(h, slack_api)
        _wave_leaves(h, active=True)  # the identity provider is fixed first: the removals vanish
        h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
        slack_api.fail_path("chat.postMessage", status=400)  # Slack refuses the sends this sweep tries first
        try:
            await sweep(h.app.deps, drift=False)  # ends the pause
        finally:
            slack_api.clear_path_faults()
        h.clock.advance(seconds=LONGEST_RETRY.total_seconds() + 1)
        await deliver_pending(h.app.deps)
        await real.idle()
        (ended,) = await h.events("automation.resumed")
        assert ended["data"] == {**ended["data"], "count": 0, "reason": "terminated"}
        rows = [r for r in await _outbox(h) if r["kind"] == "brake"]
        assert {(r["status"], r["last_error"]) for r in rows} == {
            ("dropped", "the pause of 30 terminated removals has ended")}, rows
        assert _dm(slack_api, SAM, PAUSED) == [] and _dm(slack_api, SASHA, PAUSED) == []
