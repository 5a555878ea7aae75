"""A click on an approval card applies to the round and step that card showed, never to a later one."""

from __future__ import annotations

import json

from tests.slack.conftest import SlackHarness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_a_click_on_the_card_of_a_withdrawn_extension_does_not_approve_a_later_one(
        slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    await h.command(BOB, "request staging-admin for 4h because deploy test")
    [first] = h.api.dm("U0MARK")
    await h.click(MARK, "approve", "REQ-1", message=first)
    assert (await h.request(1)).state == "active"
    before = (await h.request(1)).expires_at

    await h.command(BOB, "extend REQ-1 by 1h because a little more")
    card = next(m for m in h.api.dm("U0MARK") if m is not first and m.action_ids)
    assert "1h" in card.all_text
    stale = h.action_payload(MARK, "approve", card.values[0], message=card)  # what Mark's click sends
    await h.command(BOB, "cancel REQ-1")
    await h.command(BOB, "extend REQ-1 by 2d because much more")
    assert (await h.request(1)).ext_duration is not None

    await h.interact(stale)  # Mark approved one hour: the two-day extension waiting now is not that
    record = await h.request(1)
    assert record.expires_at == before
    assert record.ext_duration is not None  # still waiting on Mark
    assert await h.events("grant.extended") == []
    refused = await h.events("approval.refused")
    assert [(e["actor"], e["data"]["reason"]) for e in refused] == [(MARK, "stale-card")]
    # his message now shows what waits and says why nothing was recorded; its buttons name the new round
    assert "changed since that card was sent" in card.all_text and "2d" in card.all_text
    assert card.values == ["REQ-1:r2:s1", "REQ-1:r2:s1"]
    await h.click(MARK, "approve", card.values[0], message=card)  # now deciding on what he sees
    assert (await h.request(1)).ext_duration is None
    assert [e["data"]["duration"] for e in await h.events("grant.extended")] == ["2d"]


async def test_a_deny_form_opened_in_an_earlier_round_does_not_deny_the_extension(slack: SlackHarness) -> None:
    h = slack
    await h.command(BOB, "request staging-admin for 4h because deploy test")
    [first] = h.api.dm("U0MARK")
    value = first.values[1]
    assert value == "REQ-1:r0:s1"
    await h.click(MARK, "deny", value, message=first)  # opens the deny form; he leaves it open
    metadata = h.api.modals[-1]["private_metadata"]
    await h.click(MARK, "approve", value, message=first)
    await h.command(BOB, "extend REQ-1 by 1h because a little more")
    sent = await h.interact(h.submission("view_submission_deny", MARK, {"reason": "no"},
                                         json.loads(metadata)))
    assert sent.json()["response_action"] == "update"
    assert "changed since that card was sent" in json.dumps(sent.json())
    assert await h.events("approval.denied") == []
    assert (await h.request(1)).ext_duration is not None

