"""Slack modals: every free-text field is cleaned and limited before anything is recorded."""

from __future__ import annotations

from tests.support import hidden_characters

DIRTY = "deploy\u202e fix\x07 now\x1b[31m\u2066"


async def test_modal_fields_are_cleaned_and_limited(slack):
    h = slack
    # staging-admin has no ticket rule: whatever the ticket field holds would be kept as typed
    sub = h.submission("view_submission_request", "bob@example.com",
                       {"profile": "staging-admin", "duration": "1h", "justification": DIRTY,
                        "ticket": "CHG-9\u202egnp.exe\x00"})
    done = await h.interact(sub)
    assert done.status == 200 and done.text == "", done.text
    [submitted] = await h.events("request.submitted")
    assert submitted["data"]["ticket"] == "CHG-9gnp.exe"
    assert submitted["data"]["justification"] == "deploy fix now[31m"
    # a ticket longer than the limit is refused by its field, not cut and not recorded
    long = await h.interact(h.submission("view_submission_request", "alice@example.com",
                                         {"profile": "staging-admin", "duration": "1h", "justification": "x",
                                          "ticket": "CHG-1" + "9" * 300}))
    assert long.json()["response_action"] == "errors" and "ticket" in long.json()["errors"], long.text
    assert len(await h.events("request.submitted")) == 1
    # the deny modal's reason
    deny = h.submission("view_submission_deny", "mark.mgr@example.com", {"reason": "no\u202e\x1b way"},
                        {"request": "REQ-1"})
    await h.interact(deny)
    await h.settle()
    [denied] = await h.events("approval.denied")
    assert denied["data"]["comment"] == "no way"
    assert hidden_characters(await h.events()) == []
