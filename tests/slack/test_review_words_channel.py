"""``review RV-n`` typed in Slack (``/access``) opens the batch like the modal does: review.opened {reviewer,
channel} (SPEC §7) must say ``slack``, the door it came through, not a generic ``chat`` (the console's words
say ``console``, Teams' ``teams``). Through the signed Slack route, SQLite and PostgreSQL."""

from __future__ import annotations

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, started


async def test_review_opened_by_slack_words_says_slack(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    await started(h)
    await h.command(MARK, "review RV-1")
    assert "RV-1" in h.last_response()["text"]
    [event] = await h.events("review.opened")
    assert event["actor"] == MARK
    assert (event["data"]["channel"], event["data"].get("channel_user_id")) == ("slack", "U0MARK"), event["data"]
