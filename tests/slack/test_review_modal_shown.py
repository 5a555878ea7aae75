"""The Slack review modal's `shown` (bot/slack/reviews.py, handlers/reviews/decide.py ``_against_shown``):
signed Slack requests. The campaign: group:security (sam, sasha) reviews 1 (orphan) and 2 (pat.lead)."""

from __future__ import annotations

import json

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import SAM, opened, started, submission, with_metadata
from tests.slack.test_review_modal_stale import SASHA, final, prefilled


async def test_a_modal_opened_before_shown_existed_still_reverts_a_later_decision(slack: SlackHarness) -> None:
    """A modal opened before the upgrade carries private_metadata {review_id, page} (no `shown`). Sam keeps 1 and
    2; sasha's modal pre-selects both 'keep'. Sam then removes 1 with a reason; sasha submits untouched: the save
    is judged against the decisions now, and sasha's untouched 'keep' overturns sam's later removal (the bug the
    `shown` fix was for, still there for every form of before). A form that does not say what it showed should
    not overturn a decision made since (refuse it as out of date, as a Teams bulk without `items` is)."""
    h = slack
    await started(h)
    await h.command(SAM, "keep RV-1 1 2")
    await h.settle()
    modal = await opened(h, SASHA)
    shown = prefilled(modal)
    assert shown == {1: "keep", 2: "keep"}
    await h.command(SAM, "remove RV-1 1 because orphan account, its manager has left")
    await h.settle()
    old = json.dumps({"review_id": "RV-1", "page": 0})  # as review_modal wrote it before `shown`
    await h.interact(with_metadata(submission(h, "U0SASHA", "RV-1", shown, "looked at both"), old))
    await h.settle()
    assert (await final(h))[1] == (SAM, "remove"), await final(h)


async def test_held_a_say_why_refusal_then_a_reasoned_resubmit_leaves_an_untouched_item_alone(
        slack: SlackHarness) -> None:
    """Held: Sasha removed 1; her modal pre-selects it. Sam keeps 1. Sasha removes 2 without a reason: the modal
    answers with an error on its comment and keeps its metadata; she adds a reason and submits again: 2 is
    removed by her, 1 stays sam's keep."""
    h = slack
    await started(h)
    await h.command(SASHA, "remove RV-1 1 because orphan account")
    await h.settle()
    modal = await opened(h, SASHA)
    assert prefilled(modal) == {1: "remove"}
    await h.command(SAM, "keep RV-1 1 because vouched for")
    await h.settle()
    await h.interact(with_metadata(submission(h, "U0SASHA", "RV-1", {1: "remove", 2: "remove"}, None),
                                   modal["private_metadata"]))
    await h.settle()
    assert (await final(h))[1] == (SAM, "keep")
    await h.interact(with_metadata(submission(h, "U0SASHA", "RV-1", {1: "remove", 2: "remove"}, "left the team"),
                                   modal["private_metadata"]))
    await h.settle()
    assert (await final(h))[1] == (SAM, "keep") and (await final(h))[2] == (SASHA, "remove"), await final(h)
