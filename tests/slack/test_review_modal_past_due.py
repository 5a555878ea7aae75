"""A review decision arriving after its campaign's due time (the close waits for the next sweep, which may be
minutes or, after downtime, days away): the campaign closes at its due time (SPEC §7 Close), so a modal saved
or a card pressed past it records nothing, is refused and recorded, and the close gives the undecided item
the review's default. Through the signed Slack route (the Teams route: tests/teams/test_review_card_past_due.py),
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, opened, started, submission, with_metadata


async def due_at(h: SlackHarness):  # type: ignore[no-untyped-def]
    async with h.app.store.read() as repo:
        campaign = await repo.get_campaign(1)  # type: ignore[attr-defined]
    return campaign.due_at


async def test_a_modal_saved_after_the_due_time_records_nothing(slack_any_db: SlackHarness) -> None:
    """Mark opens his batch (item 3, bob: no sign-in for months) and leaves it. The due time passes with no
    sweep yet; he then keeps item 3 from the modal. The keep was recorded after the campaign's close time
    and overturned the review's default (remove) at the late close."""
    h = slack_any_db
    await started(h)
    modal = await opened(h)
    h.clock.at = await due_at(h) + timedelta(hours=5)
    sent = await h.interact(with_metadata(submission(h, "U0MARK", "RV-1", {3: "keep"}, "still needs it"),
                                          modal["private_metadata"]))
    assert sent.status == 200
    assert [e for e in await h.events("review.decided") if e["actor"] == MARK] == []
    refused = [e["data"] for e in await h.events("command.refused") if e["actor"] == MARK]
    assert refused and refused[-1]["review_id"] == "RV-1" and "due" in refused[-1]["reason"], refused
    assert sent.json()["response_action"] == "update" and "due" in str(sent.json()["view"]), sent.json()
    # the modal opened again past the due time offers no Save
    assert "submit" not in await opened(h)
    await h.app.service.sweep()  # the close the due time called for: item 3 gets the review's default
    await h.settle()
    assert [(e["actor"], e["data"]["decision"]) for e in await h.events("review.decided")
            if e["data"]["item"] == 3] == [("system", "remove")]


async def test_words_after_the_due_time_record_nothing(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    await started(h)
    h.clock.at = await due_at(h)
    await h.command(MARK, "keep RV-1 3 because still needs it")
    assert [e for e in await h.events("review.decided") if e["actor"] == MARK] == []
    assert "due" in h.last_response()["text"], h.last_response()


async def test_nothing_is_listed_as_waiting_past_the_due_time(slack_any_db: SlackHarness) -> None:
    """`reviews` and the App Home no longer offer a batch to decide once its campaign's due time has come."""
    h = slack_any_db
    await started(h)
    await h.command(MARK, "reviews")
    assert "RV-1" in h.last_response()["text"]
    assert await h.channel.listeners.reviews.home_blocks(MARK) != []
    h.clock.at = await due_at(h)
    await h.command(MARK, "reviews")
    assert "RV-1" not in h.last_response()["text"], h.last_response()
    assert await h.channel.listeners.reviews.home_blocks(MARK) == []
