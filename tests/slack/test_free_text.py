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


async def test_half_an_emoji_is_recorded_as_the_replacement_character(slack):
    """A lone surrogate (JSON carries ``\\ud83d`` alone) in a modal field or a slash command: U+FFFD, recorded,
    never a failed insert."""
    h = slack
    sub = h.submission("view_submission_request", "bob@example.com",
                       {"profile": "staging-admin", "duration": "1h", "justification": "deploy \ud83d now"})
    done = await h.interact(sub)
    assert done.status == 200 and done.text == "", done.text
    deny = h.submission("view_submission_deny", "mark.mgr@example.com", {"reason": "no \udc00"},
                        {"request": "REQ-1"})
    done = await h.interact(deny)
    assert done.status == 200, done.text
    await h.settle()
    [submitted] = await h.events("request.submitted")
    [denied] = await h.events("approval.denied")
    assert submitted["data"]["justification"] == "deploy \ufffd now"
    assert denied["data"]["comment"] == "no \ufffd"
    # a slash command is form-encoded UTF-8: half an emoji arrives as bytes no UTF-8 decoder takes
    from urllib.parse import urlencode

    from tests.slack.conftest import UID, fixture

    form = fixture("slash_command")
    form.update(user_id=UID["bob@example.com"], user_name="bob", response_url=h.response_url(), trigger_id=h.trigger(),
                text="request analytics-read for 1d because \ud83d")
    sent = await h.post_raw(urlencode(form, encoding="utf-8", errors="surrogatepass"),
                            "application/x-www-form-urlencoded")
    assert sent.status == 200, sent.text
    await h.settle()
    assert "\ufffd" in [e["data"]["justification"] for e in await h.events("request.submitted")][-1]
