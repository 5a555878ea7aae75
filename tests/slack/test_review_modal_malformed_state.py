"""A review modal submission whose state is not shaped as Slack shapes it (an item's block or its element
not an object, a reason that is not text): the page is not saved and the modal says so, instead of the
route answering 500. Through the signed Slack route (the metadata's counterpart:
test_review_modal_metadata_not_object.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, opened, started, submission, with_metadata

KEEP = {"decision": {"type": "radio_buttons", "selected_option": {"value": "keep"}}}


@pytest.mark.parametrize("values", [
    {"item-3": "keep"},
    {"item-3": ["keep"]},
    {"item-3": {"decision": "keep"}},
    {"item-3": {"decision": {"selected_option": "keep"}}},
    {"item-3": KEEP, "comment": "still needed"},
    {"item-3": KEEP, "comment": {"comment": "still needed"}},
    {"item-3": KEEP, "comment": {"comment": {"value": 5}}},
], ids=["block-text", "block-list", "element-text", "option-text", "comment-block-text", "comment-element-text",
        "comment-value-number"])
async def test_a_malformed_state_is_answered_not_saved(slack: SlackHarness, values: dict[str, Any]) -> None:
    h = slack
    await started(h)
    modal = await opened(h)
    payload = with_metadata(submission(h, "U0MARK", "RV-1", {}, None), modal["private_metadata"])
    payload["view"]["state"] = {"values": values}
    sent = await h.interact(payload)
    assert sent.status == 200, sent.text
    assert sent.json()["response_action"] == "update" and "Not saved" in str(sent.json()["view"]), sent.json()
    assert [e for e in await h.events("review.decided") if e["actor"] == MARK] == []
