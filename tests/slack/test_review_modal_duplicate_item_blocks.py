"""One review modal submission naming the same item twice (``item-3`` and ``item-03``).

A correct product records at most one decision per item per submission (nothing recorded twice), and a
submission that says keep and remove for the same item is refused (``response_action: errors``), nothing
recorded."""

from __future__ import annotations

import copy

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, opened, started, submission


async def test_same_item_twice_in_one_submission_is_recorded_once(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await opened(h, MARK)
    payload = submission(h, "U0MARK", "RV-1", {3: "keep"}, "still on call")
    values = payload["view"]["state"]["values"]
    values["item-03"] = copy.deepcopy(values["item-3"])
    await h.interact(payload)
    await h.settle()
    decided = await h.events("review.decided")
    assert len([e for e in decided if e["data"]["item"] == 3]) <= 1, decided


async def test_keep_and_remove_of_one_item_in_one_submission_is_refused(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await opened(h, MARK)
    payload = submission(h, "U0MARK", "RV-1", {3: "keep"}, "left the team")
    values = payload["view"]["state"]["values"]
    values["item-003"] = copy.deepcopy(values["item-3"])
    values["item-003"]["decision"]["selected_option"] = {"text": {"type": "plain_text", "text": "remove"},
                                                        "value": "remove"}
    sent = await h.interact(payload)
    await h.settle()
    assert await h.events("review.decided") == []
    assert sent.json() and sent.json().get("response_action") in ("errors", "update")
