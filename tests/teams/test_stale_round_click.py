"""A click on an approval card applies to the round and step that card showed, never to a later one."""

from __future__ import annotations

from tests.teams.cardcheck import actions_of, texts_of
from tests.teams.conftest import TeamsHarness, conversation_id

BOB, MARK = "bob@example.com", "mark.mgr@example.com"
DANA, DEV = "dana.dba@example.com", "dev.dba@example.com"


def decide_data(card: dict) -> dict:
    [approve, _deny] = actions_of(card)
    return dict(approve["data"])


async def test_a_click_on_the_card_of_a_withdrawn_extension_does_not_approve_a_later_one(
        teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    for email in (BOB, MARK):
        status, _ = await h.post(h.activity("installation_update_add", email))
        assert status == 200
    await h.say(BOB, "request staging-admin for 4h because deploy test")
    first = decide_data(h.connector.of("send", conversation_id(MARK))[-1].card)
    assert first == {"request_id": 1, "round": 0, "step": 1}
    await h.click(MARK, "approve", first)
    assert (await h.request(1)).state == "active"
    before = (await h.request(1)).expires_at

    await h.say(BOB, "extend REQ-1 by 1h because a little more")
    one_hour = h.connector.of("send", conversation_id(MARK))[-1].card
    assert "1h" in texts_of(one_hour)
    await h.say(BOB, "cancel REQ-1")
    await h.say(BOB, "extend REQ-1 by 2d because much more")

    card = await h.click(MARK, "approve", decide_data(one_hour))  # Mark approved one hour, not two days
    record = await h.request(1)
    assert record.expires_at == before and record.ext_duration is not None
    assert await h.events("grant.extended") == []
    assert "changed since that card was sent" in texts_of(card)
    refused = await h.events("approval.refused")
    assert [(e["actor"], e["data"]["reason"]) for e in refused] == [(MARK, "stale-card")]
    # the card he gets back asks about what waits now; approving from it extends by what it shows
    assert decide_data(card) == {"request_id": 1, "round": 2, "step": 1} and "2d" in texts_of(card)
    await h.click(MARK, "approve", decide_data(card))
    assert [e["data"]["duration"] for e in await h.events("grant.extended")] == ["2d"]


async def test_a_deny_on_a_card_of_an_earlier_round_does_not_deny_the_extension(teams: TeamsHarness) -> None:
    h = teams
    for email in (BOB, MARK):
        await h.post(h.activity("installation_update_add", email))
    await h.say(BOB, "request staging-admin for 4h because deploy test")
    first = decide_data(h.connector.of("send", conversation_id(MARK))[-1].card)
    await h.click(MARK, "approve", first)
    await h.say(BOB, "extend REQ-1 by 1h because a little more")
    card = await h.click(MARK, "deny", {**first, "comment": "no"})  # the first round's card, clicked late
    assert "changed since that card was sent" in texts_of(card)
    assert await h.events("approval.denied") == []
    assert (await h.request(1)).ext_duration is not None
