"""What a sign-off signature tells others goes through the outbox (handlers/outbox.py), sent through the Slack
stand-in: the next step's approvers asked (written with ``review.signoff_requested``), and the security team told
of a sign-off failed closed at a signature (written with ``review.closed``). A send cut off after the signature
was committed is made by the next delivery, once. On SQLite and PostgreSQL."""

from __future__ import annotations

from handlers.sweeps import sweep
from tests.reviews.test_close import sign_off_harness
from tests.slack.test_outbox_settled import _cut_then_delivered, _dm, _slack

SAM, SASHA, DANA = "sam.sec@example.com", "sasha.sec@example.com", "dana.dba@example.com"


async def test_the_next_signoff_step_is_asked_through_the_outbox(database_url, tmp_path, slack_api):
    async with sign_off_harness(database_url, tmp_path, f"[{{any_of: security}}, {{user: {DANA}}}]") as h:
        assert (await h.say(SAM, "review close RV-1")).ok
        real = _slack(h, slack_api)
        pending = await _cut_then_delivered(h, real, lambda: h.say(SASHA, "approve RV-1"), "waiting for your sign-off")
        asked = [e["data"] for e in await h.events("review.signoff_requested")]
        assert [(a["step"], a["approvers"]) for a in asked] == [(1, [SAM, SASHA]), (2, [DANA])]
        assert [(r["recipient"], r["kind"]) for r in pending] == [(DANA, "approval")]
        [ask] = _dm(slack_api, DANA, "waiting for your sign-off")
        assert "approve RV-1" in ask and "bob@example.com" in ask
        await sweep(h.app.deps, drift=False)
        assert len(_dm(slack_api, DANA, "waiting for your sign-off")) == 1


async def test_a_signoff_failed_closed_at_a_signature_is_told_through_the_outbox(database_url, tmp_path, slack_api):
    async with sign_off_harness(database_url, tmp_path, "[{all_of: security}]") as h:
        assert (await h.say(SAM, "review close RV-1")).ok
        h.files.set_active(SASHA, False)  # all of security can no longer sign
        real = _slack(h, slack_api)
        pending = await _cut_then_delivered(h, real, lambda: h.say(SAM, "approve RV-1"), "sign-off failed")
        (closed,) = await h.events("review.closed")
        assert closed["data"]["signoff"] == "failed"
        assert {r["kind"] for r in pending} == {"failure"} and SAM in {r["recipient"] for r in pending}
        assert len(_dm(slack_api, SAM, "RV-1 (Quarterly privileged access review) closed: sign-off failed")) == 1
