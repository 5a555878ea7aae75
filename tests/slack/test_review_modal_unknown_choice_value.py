"""A review modal submission with a choice that is neither keep nor remove.

The Teams card (``bot/teams/review_invoke.py::_save``) answers "Not saved: item k: 'x' is neither keep nor
remove" and decides nothing from such a form. A correct Slack product does the same: a
``response_action: errors`` (or update) naming the item, nothing recorded, and never saves the other items
of a form that says something else."""

from __future__ import annotations

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, PAT, opened, started, submission


async def test_a_choice_other_than_keep_or_remove_is_answered_not_dropped(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await opened(h, MARK)
    sent = await h.interact(submission(h, "U0MARK", "RV-1", {3: "maybe"}, "x"))
    assert sent.status == 200
    assert sent.json() and sent.json().get("response_action") in ("errors", "update"), repr(sent.text)


async def test_a_form_with_an_unknown_choice_saves_nothing(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await opened(h, PAT)  # pat.lead reviews items 4 and 5
    await h.interact(submission(h, "U0PAT", "RV-1", {4: "keep", 5: "delete"}, "needed"))
    await h.settle()
    assert await h.events("review.decided") == []
