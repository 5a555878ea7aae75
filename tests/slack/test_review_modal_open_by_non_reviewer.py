"""A ``review_open`` button (a forwarded DM, or a forged value) clicked by someone who reviews nothing in
the campaign, or by the person reviewed.

Clicking ``review_open`` is Slack's ``review RV-n`` (SPEC §7: "its reviewers, security"); the console and
``/access review RV-1`` refuse a non-reviewer and record ``command.refused`` {command: review, reason}.
A correct product records the same refusal when the Slack button is clicked by someone who may not see
the batch."""

from __future__ import annotations

import pytest

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import started


@pytest.mark.parametrize("email", ["alice@example.com", "bob@example.com"])  # bob is reviewed in RV-1
async def test_review_open_by_someone_else_is_a_recorded_refusal(slack: SlackHarness, email: str) -> None:
    h = slack
    await started(h)
    await h.command(email, "review RV-1")
    await h.settle()
    by_command = [e for e in await h.events("command.refused") if e["actor"] == email]
    assert by_command, "the console/slash-command path records the refusal (sanity)"
    await h.click(email, "review_open", "RV-1")
    await h.settle()
    after = [e for e in await h.events("command.refused") if e["actor"] == email]
    assert len(after) == len(by_command) + 1, "the review_open click by a non-reviewer is not recorded"
    assert await h.events("review.opened") == []
