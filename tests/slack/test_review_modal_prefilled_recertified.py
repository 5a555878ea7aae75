"""A review modal pre-selects each item's current decision (``initial_option``), and Slack sends every
pre-selected option back in ``view.state`` on submit, touched or not.

sam.sec decides item 1 keep "on the on-call rota". sasha.sec (same reviewer group) opens the batch and
only decides item 2: remove "left the company". A correct product records what sasha chose (item 2) and
leaves item 1's decision as sam made it: an untouched pre-filled choice is not a new decision (compare the
submission with the decisions the modal showed)."""

from __future__ import annotations

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import SAM, opened, started, submission

SASHA = "sasha.sec@example.com"


async def test_untouched_prefilled_choice_is_not_recorded_again(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await opened(h, SAM)
    await h.interact(submission(h, "U0SAM", "RV-1", {1: "keep"}, "on the on-call rota"))
    await h.settle()
    modal = await opened(h, SASHA)
    [item1] = [b for b in modal["blocks"] if b.get("block_id") == "item-1"]
    prefilled = (item1["element"].get("initial_option") or {}).get("value")
    assert prefilled == "keep"  # what Slack will send back untouched
    # Slack's view.state: the pre-selected option of item 1 plus sasha's own choice for item 2
    await h.interact(submission(h, "U0SASHA", "RV-1", {1: prefilled, 2: "remove"}, "left the company"))
    await h.settle()
    last = {}
    for e in await h.events("review.decided"):
        last[e["data"]["item"]] = (e["actor"], e["data"]["decision"], e["data"]["comment"])
    assert last[2] == (SASHA, "remove", "left the company")
    assert last[1] == (SAM, "keep", "on the on-call rota"), last[1]
