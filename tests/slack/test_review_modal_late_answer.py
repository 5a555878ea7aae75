"""A review modal whose save takes longer than Slack waits (MODAL_BUDGET: the modal is closed and the answer
comes as a DM, bot/slack/app.py ``_answer_modal``): a save that was refused and recorded nothing must not be
told 'Done.'. The store's write lock is held past the budget by another writer (as a sweep or a burst of
clicks holds it), through the signed Slack route, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from bot.slack.app import MODAL_BUDGET
from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import MARK, opened, started, submission, with_metadata


async def test_a_refused_save_answered_late_does_not_say_done(slack_any_db: SlackHarness) -> None:
    """Mark's page names item 1 (not his) beside his item 3: nothing of it is saved and the refusal is recorded.
    Answered in time, the modal says 'Not saved … not yours'; answered late, his DM said 'Done.'."""
    h = slack_any_db
    await started(h)
    modal = await opened(h)
    payload = with_metadata(submission(h, "U0MARK", "RV-1", {1: "keep", 3: "keep"}, "fine"), modal["private_metadata"])
    before = len(h.api.dm("U0MARK"))
    async with h.app.store.write():  # another writer holds the lock past the modal's budget
        sent = asyncio.create_task(h.interact(payload, settle=False))
        await asyncio.sleep(MODAL_BUDGET + 1)
    assert (await sent).text == ""  # the modal was closed; the answer comes as a DM
    await h.settle()
    assert [e for e in await h.events("review.decided") if e["actor"] == MARK] == []
    assert (await h.events("command.refused"))[-1]["data"]["reason"] == "not the reviewer of the item"
    said = [m.text for m in h.api.dm("U0MARK")[before:]]
    assert said and all(t != "Done." for t in said), said
    assert any("Not saved" in t and "not yours" in t for t in said), said
