"""Access reviews in Slack through the stand-in Web API: the reviewer's DM with its review_open button,
the modal (review.opened with channel slack, the live check), a submission recording the page's choices,
refusals shown in the modal, paging, and App Home listing the open batch."""

from __future__ import annotations

import copy
import json

from tests.reviews.test_start import REVIEW, staff
from tests.slack.blockcheck import check_all
from tests.slack.conftest import SlackHarness, fixture

MARK, PAT, SAM = "mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"


def submission(h: SlackHarness, uid: str, review_id: str, choices: dict[int, str], comment: str | None,
               shown: dict[int, str] | None = None) -> dict:
    """A submit of the review modal; ``shown``: the decisions the modal showed (none by default)."""
    payload = copy.deepcopy(fixture("view_submission_deny"))
    payload["user"] = {"id": uid, "username": uid.lower(), "name": uid.lower(), "team_id": "T0ACCESS"}
    payload["trigger_id"] = h.trigger()
    payload["view"]["callback_id"] = "review_submit"
    payload["view"]["private_metadata"] = json.dumps({"review_id": review_id, "page": 0, "shown": {
        str(n): d for n, d in (shown or {}).items()}})
    values: dict = {f"item-{n}": {"decision": {"type": "radio_buttons", "selected_option": {
        "text": {"type": "plain_text", "text": d}, "value": d}}} for n, d in choices.items()}
    values["comment"] = {"comment": {"type": "plain_text_input", "value": comment}}
    payload["view"]["state"] = {"values": values}
    return payload


async def test_review_batch_in_slack(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    staff(h.files)
    sent = await h.command(SAM, f"review start {REVIEW}")
    assert sent.status == 200
    await h.settle()
    assert "Started RV-1" in h.last_response()["text"]
    [dm] = [m for m in h.api.dm("U0MARK") if "RV-1" in m.text]
    assert dm.action_ids == ["review_open"] and dm.values == ["RV-1"]

    await h.click(MARK, "review_open", "RV-1")
    await h.settle()
    modal = h.api.modals[-1]
    assert modal["callback_id"] == "review_submit"
    assert [b["block_id"] for b in modal["blocks"] if b.get("block_id", "").startswith("item-")] == ["item-3"]
    (opened,) = await h.events("review.opened")
    assert opened["data"]["channel"] == "slack" and opened["actor"] == MARK

    # remove without a reason: the modal says why and nothing is recorded
    sent = await h.interact(submission(h, "U0MARK", "RV-1", {3: "remove"}, None))
    assert sent.json()["response_action"] == "errors" and "comment" in sent.json()["errors"]
    assert await h.events("review.decided") == []
    # an item that is not his: refused in the modal, recorded
    sent = await h.interact(submission(h, "U0MARK", "RV-1", {1: "keep"}, None))
    assert sent.json()["response_action"] == "update"
    assert (await h.events("command.refused"))[-1]["data"]["reason"] == "not the reviewer of the item"
    # a page checked whole: his own item kept alongside one that is not his saves nothing at all
    sent = await h.interact(submission(h, "U0MARK", "RV-1", {3: "keep", 1: "remove"}, "gone"))
    assert sent.json()["response_action"] == "update" and await h.events("review.decided") == []
    sent = await h.interact(submission(h, "U0MARK", "RV-1", {3: "remove"}, "no sign-in since January"))
    assert sent.status == 200 and not sent.text
    await h.settle()
    decided = await h.events("review.decided")
    assert [(e["data"]["item"], e["data"]["decision"], e["actor"]) for e in decided] == [(3, "remove", MARK)]

    # App Home lists pat.lead's open batch with its button
    await h.home(PAT, "Ev0REVIEW1")
    await h.settle()
    home = h.api.homes["U0PAT"][-1]
    buttons = [b.get("accessory", {}) for b in home["blocks"]]
    assert {"action_id": "review_open", "value": "RV-1"}.items() <= next(
        b for b in buttons if b.get("action_id") == "review_open").items()
    assert check_all(h.api) > 0
