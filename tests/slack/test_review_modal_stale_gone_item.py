"""Saving a review modal page after one of its people left the group (the live check at save time).

SPEC §7: an item no longer in the group is shown as gone and cannot be decided; nobody certifies a stale
snapshot. pat.lead opens RV-1 (items 4 and 5), chooses keep for both; before he saves, item 5's person
leaves the group. A correct product still lets the reviewer certify the rest: either item 4 is saved and
item 5 reported gone (the reply ``decide`` already composes: "n item(s) gone, nothing to decide"), or the
modal stays open with a ``response_action: errors`` on ``item-5`` / an updated batch modal showing it gone,
so the other choices are not lost."""

from __future__ import annotations

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import PAT, opened, started, submission


async def test_a_person_leaving_before_save_does_not_throw_away_the_page(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await opened(h, PAT)  # items 4 (deploy-bot) and 5 (sam.sec in sg-prod-k8s-admin)
    h.files.edit_directory(lambda d: d["groups"].__setitem__("sg-prod-k8s-admin", []))
    sent = await h.interact(submission(h, "U0PAT", "RV-1", {4: "keep", 5: "keep"}, "needed for deploys"))
    await h.settle()
    answer = sent.json() or {}
    saved = [e["data"]["item"] for e in await h.events("review.decided")]
    assert 5 not in saved  # nobody certifies the gone item
    kept_open = (answer.get("response_action") == "errors" and "item-5" in answer.get("errors", {})) or (
        answer.get("response_action") == "update" and answer["view"].get("callback_id") == "review_submit")
    assert saved == [4] or kept_open, answer
