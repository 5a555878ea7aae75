"""A sign-off request waiting in the outbox (handlers/outbox.py) is not sent once what it asks for no longer
holds, through the Slack stand-in: a request for a sign-off step signed (or a campaign closed) before it went out
is marked ``dropped`` with why; the records stand as they were. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from handlers.outbox import deliver_pending, notice_lease
from handlers.sweeps import sweep
from tests.reviews.test_close import sign_off_harness
from tests.slack.test_outbox_settled import CutOnce, _dm, _slack
from tests.support import Harness
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
