"""Slack events record the channel and the acting person's Slack user id."""

from __future__ import annotations


async def test_slack_events_carry_the_channel_and_the_slack_user(slack):
    h = slack
    await h.command("bob@example.com", "request staging-admin for 1h")
    await h.settle()
    [mark_msg] = h.api.dm("U0MARK")
    await h.click("alice@example.com", "approve", "REQ-1")  # refused: she is not in its chain
    await h.click("mark.mgr@example.com", "approve", "REQ-1", message=mark_msg)
    await h.settle()
    events = {e["type"]: e for e in await h.events()}
    assert (events["request.submitted"]["data"]["channel"],
            events["request.submitted"]["data"]["channel_user_id"]) == ("slack", "U0BOB")
    assert events["approval.requested"]["data"]["channel_user_id"] == "U0BOB"  # the system step bob caused
    assert (events["approval.granted"]["data"]["channel"],
            events["approval.granted"]["data"]["channel_user_id"]) == ("slack", "U0MARK")
    assert events["grant.provisioned"]["data"]["channel_user_id"] == "U0MARK"
    assert (events["approval.refused"]["actor"], events["approval.refused"]["data"]["channel_user_id"]) == (
        "alice@example.com", "U0ALICE")
