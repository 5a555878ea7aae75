"""Input Teams can send but no store can hold, and activities malformed in their fields: a clear answer,
never a 500 (both modes)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from bot.teams.notifier import BOT_ADDRESS
from tests.teams.conftest import APP_ID, TENANT, TeamsHarness

MARK = "mark.mgr@example.com"


async def _post_raw(h: TeamsHarness, act: dict, secured: bool) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if secured:
        assert h.issuer is not None
        headers["Authorization"] = "Bearer " + h.issuer.token(audience=APP_ID,
                                                              service_url=act["serviceUrl"])
    async with h.http.post(f"{h.url}/api/messages", data=json.dumps(act).encode(), headers=headers,
                           timeout=aiohttp.ClientTimeout(total=30)) as r:
        return r.status, await r.read()


async def _surrogate_comment(h: TeamsHarness, secured: bool) -> None:
    status, _ = await h.say("bob@example.com", "request staging-admin for 4h")
    assert status == 200
    act = h.activity("invoke_adaptive_card_action", MARK, replyToId="1763884850123")
    # a lone surrogate: what JSON.stringify writes for a comment holding half an emoji ("\ud83d")
    act["value"]["action"] = {"type": "Action.Execute", "verb": "approve",
                              "data": {"request_id": 1, "comment": "looks good \ud83d"}}
    status, body = await _post_raw(h, act, secured)
    await h.idle()
    assert status == 200, body
    decisions = [e for e in await h.events("approval.granted")]
    assert len(decisions) == 1 and "\ufffd" in json.dumps(decisions[0], ensure_ascii=False), decisions


async def test_a_comment_with_a_lone_surrogate_is_not_a_500(teams: TeamsHarness) -> None:
    await _surrogate_comment(teams, False)


async def test_a_comment_with_a_lone_surrogate_is_not_a_500_secured(teams_secured: TeamsHarness) -> None:
    await _surrogate_comment(teams_secured, True)


async def _malformed(h: TeamsHarness, secured: bool) -> None:
    # channelData.tenant that is not an object: secured, the activity names its tenant once (refused, 403);
    # on the emulator the turn goes on, the tenant taken from conversation.tenantId
    act = h.activity("message_personal", MARK, text="help")
    act["channelData"]["tenant"] = "x"
    status, body = await _post_raw(h, act, secured)
    await h.idle()
    assert status == (403 if secured else 200), body
    if not secured:
        async with h.app.store.read() as repo:
            assert (await repo.address("teams", BOT_ADDRESS))["tenant"] == TENANT
    # an activity naming no bot: not an activity, nothing remembered or recorded
    events = len(await h.events())
    act = h.activity("invoke_adaptive_card_action", MARK)
    act["recipient"] = None
    status, body = await _post_raw(h, act, secured)
    assert status == 400 and json.loads(body) == {"error": "not an activity"}, body
    assert len(await h.events()) == events


async def test_malformed_activity_fields(teams: TeamsHarness) -> None:
    await _malformed(teams, False)


async def test_malformed_activity_fields_secured(teams_secured: TeamsHarness) -> None:
    await _malformed(teams_secured, True)


def _surrogate_channel(h: TeamsHarness, kind: str) -> dict:
    if kind == "message":
        act = h.activity("message_personal", "bob@example.com", text="help")
    else:
        act = h.activity("invoke_adaptive_card_action", "bob@example.com", replyToId="1763884850123")
        act["value"]["action"] = {"type": "Action.Execute", "verb": "refresh", "data": {"request_id": 1}}
    act["channelId"] = "msteams\ud83d"  # the SDK's ChannelId type takes it; its conversation reference does not
    return act


@pytest.mark.parametrize("kind", ["message", "invoke"])
async def test_a_channel_id_with_half_an_emoji_is_not_an_activity(teams: TeamsHarness, kind: str) -> None:
    status, body = await _post_raw(teams, _surrogate_channel(teams, kind), False)
    await teams.idle()
    assert status == 400 and json.loads(body) == {"error": "not an activity"}, body


@pytest.mark.parametrize("kind", ["message", "invoke"])
async def test_a_channel_id_with_half_an_emoji_is_not_an_activity_secured(teams_secured: TeamsHarness,
                                                                         kind: str) -> None:
    status, body = await _post_raw(teams_secured, _surrogate_channel(teams_secured, kind), True)
    await teams_secured.idle()
    assert status == 400, body


async def test_a_card_input_that_is_no_text_is_taken_as_left_empty(teams_secured: TeamsHarness) -> None:
    # Input.Text always sends text: an object, a list or a boolean in its place is a tampered payload, and is never
    # recorded as a reason or a comment in Python's spelling of it ("{'x': [1, 2]}", "True")
    h = teams_secured
    status, _ = await h.say("bob@example.com", "request staging-admin for 4h because x")
    assert status == 200
    for reason in ({"x": [1, 2]}, ["a"] * 1000, True):
        card = await h.click(MARK, "deny", {"request_id": 1, "comment": reason})
        assert "say why" in json.dumps(card), card
    assert await h.events("approval.denied") == []
    assert (await h.request(1)).state == "pending"
    await h.click(MARK, "approve", {"request_id": 1, "comment": {"looks": "good"}})
    granted = await h.events("approval.granted")
    assert len(granted) == 1 and granted[0]["data"]["comment"] is None, granted
