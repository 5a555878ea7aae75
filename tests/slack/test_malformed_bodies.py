"""Bodies of a shape Slack never sends: refused with a 4xx, never a 500, and nothing recorded.

The body is read into Bolt's request before its signature is checked; a JSON array, a string, or an object whose
``user`` or ``channel`` is a number made that step raise, so anyone who can reach the route got a 500.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.slack.conftest import SlackHarness

FORM = "application/x-www-form-urlencoded"
ODD = ['[1, 2]', '"x"', '{"user": 5}', '{"type": "block_actions", "channel": 3}', '{"enterprise": "x", "user": 5}']


@pytest.mark.parametrize("body", ODD)
async def test_an_unsigned_odd_body_is_401_not_500(slack: SlackHarness, body: str) -> None:
    h = slack
    for sent in (await h.post_raw(body, "application/json", signature="v0=00"),
                 await h.post_raw(urlencode({"payload": body}), FORM, signature="v0=00")):
        assert sent.status == 401, (body, sent.status, sent.text)
        assert sent.json() == {"error": "invalid request"}
    assert [e["type"] for e in await h.events()] == ["policy.loaded"]


@pytest.mark.parametrize("body", ODD)
async def test_a_signed_odd_body_is_400_not_500(slack: SlackHarness, body: str) -> None:
    h = slack
    for sent in (await h.post_raw(body, "application/json"), await h.post_raw(urlencode({"payload": body}), FORM)):
        assert sent.status == 400, (body, sent.status, sent.text)
    assert [e["type"] for e in await h.events()] == ["policy.loaded"]


async def test_a_signed_click_with_an_odd_channel_is_400_and_records_nothing(slack: SlackHarness) -> None:
    h = slack
    await h.command("bob@example.com", "request staging-admin for 4h because deploy test")
    payload = h.action_payload("mark.mgr@example.com", "approve", "REQ-1")
    payload["channel"] = 3
    sent = await h.interact(payload)
    assert sent.status == 400, sent.text
    assert (await h.request(1)).state == "pending"
    assert await h.events("approval.granted") == [] and await h.events("approval.refused") == []
