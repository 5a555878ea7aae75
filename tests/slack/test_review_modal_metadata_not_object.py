"""A review modal submission whose ``private_metadata`` is valid JSON but not an object.

A correct product answers Slack 200 with a modal answer (``response_action`` errors or update saying the
form names no review) and records nothing; it never answers 500 (Slack then shows "We had some trouble
connecting" and retries)."""

from __future__ import annotations

import pytest

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, opened, started, submission, with_metadata


@pytest.mark.parametrize("raw", ['["RV-1"]', '"RV-1"', "1", "null"])
async def test_review_modal_metadata_that_is_not_an_object_gets_a_modal_answer(slack: SlackHarness, raw: str) -> None:
    h = slack
    await started(h)
    await opened(h, MARK)
    sent = await h.interact(with_metadata(submission(h, "U0MARK", "RV-1", {3: "keep"}, "on call"), raw))
    assert sent.status == 200, f"private_metadata {raw!r} answered {sent.status}"
    assert sent.json() and sent.json().get("response_action") in ("errors", "update")
    assert await h.events("review.decided") == []
