"""An extension whose approval chain cannot be satisfied is refused with the rule that failed (SPEC §3.1)."""

from __future__ import annotations

from tests.slack.conftest import SlackHarness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_an_extension_nobody_can_approve_is_refused_naming_the_step(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    await h.command(BOB, "request staging-admin for 4h because deploy test")
    [card] = h.api.dm("U0MARK")
    await h.click(MARK, "approve", card.values[0], message=card)
    assert (await h.request(1)).state == "active"
    h.files.set_active(MARK, False)  # bob's manager left: staging-admin's one step has nobody to ask

    await h.command(BOB, "extend REQ-1 by 1h because a little more")
    answer = h.last_response()["text"]
    assert "step 1: manager" in answer, answer
    refused = await h.events("request.refused")
    assert [(e["data"]["rule"], e["request_id"]) for e in refused] == [("step 1: manager", "REQ-1")]
    # refused, not asked: no extension round was opened, and the grant is as it was
    assert await h.events("request.extension_requested") == [] and await h.events("request.failed") == []
    record = await h.request(1)
    assert record.state == "active" and not record.extension_pending and record.round == 0
