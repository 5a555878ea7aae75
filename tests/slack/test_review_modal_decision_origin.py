"""Review decisions and openings made in Slack carry the Slack door in the audit record.

``handlers/origin.py``: every channel adapter wraps its call into the service in ``acting_via`` so that
each event records ``data.channel`` and ``data.channel_user_id`` (the signed sender's Slack user id), as
``approval.granted`` from a Slack button does (tests/slack/test_origin.py). A correct product records
``review.decided`` (and ``review.opened``, ``command.refused``) from the review modal with channel
``slack`` and the submitter's user id."""

from __future__ import annotations

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, opened, started, submission


async def test_review_decided_from_slack_names_the_slack_user(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await opened(h, MARK)
    await h.interact(submission(h, "U0MARK", "RV-1", {3: "keep"}, "still on call"))
    await h.settle()
    [decided] = await h.events("review.decided")
    assert (decided["data"].get("channel"), decided["data"].get("channel_user_id")) == ("slack", "U0MARK")


async def test_review_opened_from_slack_names_the_slack_user(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await opened(h, MARK)
    [event] = await h.events("review.opened")
    assert event["data"].get("channel_user_id") == "U0MARK"


async def test_refused_review_choice_from_slack_names_the_slack_user(slack: SlackHarness) -> None:
    h = slack
    await started(h)
    await h.interact(submission(h, "U0MARK", "RV-1", {1: "keep"}, "x"))  # item 1 is not his
    await h.settle()
    refused = (await h.events("command.refused"))[-1]
    assert (refused["data"].get("channel"), refused["data"].get("channel_user_id")) == ("slack", "U0MARK")
