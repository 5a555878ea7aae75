"""A deny whose reason is over its limit is told so, not asked to say why (it did)."""

from __future__ import annotations

from tests.teams.cardcheck import texts_of
from tests.teams.conftest import TeamsHarness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_a_reason_over_the_limit_is_refused_for_its_length(teams: TeamsHarness) -> None:
    h = teams
    await h.say(BOB, "request staging-admin for 4h because deploy test")
    card = await h.click(MARK, "deny", {"request_id": 1, "comment": "not now " * 300})
    text = texts_of(card)
    assert "longer than 2000 characters" in text, text
    assert "say why" not in text.lower(), text
    assert await h.events("approval.denied") == []
    assert (await h.request(1)).state == "pending"
