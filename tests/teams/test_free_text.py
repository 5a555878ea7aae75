"""Teams forms: every free-text field is cleaned and limited before anything is recorded."""

from __future__ import annotations

from tests.support import hidden_characters
from tests.teams.cardcheck import texts_of

BOB, ALICE, MARK = "bob@example.com", "alice@example.com", "mark.mgr@example.com"


async def test_form_fields_are_cleaned_and_limited(teams):
    h = teams
    await h.click(BOB, "request", {"profile": "staging-admin", "duration": "1h",
                                   "justification": "deploy\u202e fix\x07 now", "ticket": "CHG-9\u2066gnp.exe\x00"})
    [submitted] = await h.events("request.submitted")
    assert submitted["data"]["ticket"] == "CHG-9gnp.exe"
    assert submitted["data"]["justification"] == "deploy fix now"
    card = await h.click(ALICE, "request", {"profile": "staging-admin", "duration": "1h", "justification": "x",
                                            "ticket": "CHG-1" + "9" * 300})
    assert "ticket" in texts_of(card).lower()
    assert len(await h.events("request.submitted")) == 1
    await h.click(MARK, "deny", {"request_id": 1, "comment": "no\u202e\x1b way"})
    [denied] = await h.events("approval.denied")
    assert denied["data"]["comment"] == "no way"
    assert hidden_characters(await h.events()) == []
