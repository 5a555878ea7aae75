"""A reviewer's batch names people, their access, their last sign-in and the advice to remove it: `review RV-n`
and `reviews` asked in a Teams channel or group chat are answered in the asker's personal chat alone (as Slack
answers them to the asker alone), and the conversation they were asked in hears only where the answer went. The
cards sent there decide as the ones asked for in the personal chat do. SQLite and PostgreSQL."""

from __future__ import annotations

from bot.teams.bot import ASK_PRIVATELY, SENT_PRIVATELY
from tests.teams.conftest import TeamsHarness, conversation_id
from tests.teams.test_dashboard_link import (
    CHANNEL_CONVERSATION,
    GROUP_CONVERSATION,
    ask,
    everything,
    in_channel,
    in_group_chat,
    text_of,
)
from tests.teams.test_reviews import MARK, started


async def test_a_batch_asked_for_in_a_channel_goes_to_the_reviewer_alone(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    await started(h)  # mark has a personal chat (installed) and a batch: alice and bob's items
    before = len(h.connector.of())
    await ask(h, in_channel(h, MARK, "review RV-1"))
    new = h.connector.of()[before:]
    in_the_channel = [p for p in new if p.conversation == CHANNEL_CONVERSATION]
    assert len(in_the_channel) == 1 and SENT_PRIVATELY in text_of(in_the_channel[0]), [text_of(p) for p in new]
    assert "alice" not in everything(in_the_channel[0]).lower()
    cards = [p for p in new if p.card and p.conversation == conversation_id(MARK)]
    assert cards and all("alice" in everything(p).lower() or "bob" in everything(p).lower() for p in cards)
    assert all(p.conversation in (CHANNEL_CONVERSATION, conversation_id(MARK)) for p in new)

    before = len(h.connector.of())
    await ask(h, in_group_chat(h, MARK, "reviews"))
    new = h.connector.of()[before:]
    in_the_group = [p for p in new if p.conversation == GROUP_CONVERSATION]
    assert len(in_the_group) == 1 and SENT_PRIVATELY in text_of(in_the_group[0])
    assert any("RV-1" in text_of(p) for p in new if p.conversation == conversation_id(MARK))


async def test_without_a_personal_chat_the_batch_is_never_shown_in_the_group(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    await started(h)
    async with h.app.store.write() as repo:  # mark's personal chat is forgotten, and none can be started
        await repo.conn.exec_driver_sql(
            "DELETE FROM channel_addresses WHERE channel = 'teams' AND email = 'mark.mgr@example.com'")
    h.connector.refuse_create = 403
    before = len(h.connector.of())
    await ask(h, in_group_chat(h, MARK, "review RV-1"))
    new = h.connector.of()[before:]
    assert [p.conversation for p in new] == [GROUP_CONVERSATION]
    assert ASK_PRIVATELY in text_of(new[0]) and "alice" not in everything(new[0]).lower()
