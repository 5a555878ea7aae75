"""A justification the review requires (``justification: {remove: required}``) is not given by characters that
show nothing: zero-width spaces and joiners, a word joiner, fillers. The certification and review_items.csv
would print an empty comment beside the removal. The modal asks 'Say why' and nothing is recorded, as for an
empty box; a reason with something visible in it is kept as typed. Through the signed Slack route, SQLite
and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, opened, started, submission, with_metadata


@pytest.mark.parametrize("reason", ["\u200b", "\u200b\u200c\u200d \u2060", "\u3164", "\u2800\u2800", "\u115f\u1160"])
async def test_an_invisible_reason_does_not_justify_a_removal(slack_any_db: SlackHarness, reason: str) -> None:
    h = slack_any_db
    await started(h)
    modal = await opened(h)
    sent = await h.interact(with_metadata(submission(h, "U0MARK", "RV-1", {3: "remove"}, reason),
                                          modal["private_metadata"]))
    assert sent.json()["response_action"] == "errors" and "comment" in sent.json()["errors"], sent.json()
    assert [e for e in await h.events("review.decided") if e["actor"] == MARK] == []


async def test_a_visible_reason_with_a_joiner_is_kept(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    await started(h)
    modal = await opened(h)
    reason = "left the team \U0001f468\u200d\U0001f4bb"
    sent = await h.interact(with_metadata(submission(h, "U0MARK", "RV-1", {3: "remove"}, reason),
                                          modal["private_metadata"]))
    assert sent.text == "", sent.text
    [decided] = [e for e in await h.events("review.decided") if e["actor"] == MARK]
    assert decided["data"]["comment"] == reason
