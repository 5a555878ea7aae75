"""A deny whose reason is over its limit is told so in the form, not asked to say why (it did)."""

from __future__ import annotations

from tests.slack.conftest import SlackHarness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_a_reason_over_the_limit_is_refused_for_its_length(slack: SlackHarness) -> None:
    h = slack
    await h.command(BOB, "request staging-admin for 4h because deploy test")
    sent = await h.interact(h.submission("view_submission_deny", MARK, {"reason": "not now " * 300},
                                         {"request": "REQ-1"}))
    answer = sent.json()
    assert answer["response_action"] == "errors"
    assert "longer than 2000 characters" in answer["errors"]["reason"], answer
    assert await h.events("approval.denied") == []
    assert (await h.request(1)).state == "pending"
