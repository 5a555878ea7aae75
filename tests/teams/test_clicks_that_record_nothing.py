"""Activities that have nothing to record take no write lock: writes queue one behind the other (SQLite's
``BEGIN IMMEDIATE``, PostgreSQL's advisory write lock), so a burst of clicks from many people must not each take it
to write what is already there. Counted, not timed: the write transactions SQLAlchemy's listener sees.

- The bot's own address (what it needs to start a chat itself) is the same whoever talks to it: it used to carry
  the conversation it was last seen in, and was written again whenever one person's activity followed another's.
- A reviewer's card refreshed again, its batch already opened and nothing found gone, records nothing: the live
  check ran and took the write lock to find that out.
"""

from __future__ import annotations

from bot.teams.notifier import BOT_ADDRESS
from tests.teams.conftest import AAD, TENANT, TeamsHarness, fixture
from tests.teams.test_reviews import MARK, SAM, started
from tests.test_decided_clicks import write_transactions

ALICE, BOB, DANA = "alice@example.com", "bob@example.com", "dana.dba@example.com"


def conversation_bot(h: TeamsHarness) -> str:
    """The bot's account as the fixture activities name it (their recipient)."""
    return str(fixture("message_personal")["recipient"]["id"])


async def test_people_taking_turns_do_not_write_the_bots_address_again(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    for email in (SAM, MARK, BOB):
        status, _ = await h.say(email, "help")
        assert status == 200
    async with h.app.store.read() as repo:
        address = await repo.address("teams", BOT_ADDRESS)
    # what starting a chat needs (bot/teams/notifier.py _create_conversation), nothing of the chat it came from
    assert set(address) == {"bot", "channelId", "serviceUrl", "tenant"}, address
    assert address["tenant"] == TENANT and address["serviceUrl"] == h.connector.url
    bob = await h.app.service.identify(BOB)
    assert bob is not None
    assert (await h.app.service.handle_text(bob, "request staging-admin for 1h because INC-1 deploy")).ok
    await h.idle()
    # card refreshes (the one click Teams sends without anyone pressing a button) by three people who may see the
    # request, in turn, after a first one each (which saves the person's own reference, as an invoke gives it)
    for email in (SAM, MARK, BOB):
        await h.click(email, "refresh", {"request_id": 1})
    with write_transactions(h.app) as opened:
        for _ in range(3):
            for email in (SAM, MARK, BOB):
                await h.click(email, "refresh", {"request_id": 1})
    assert opened == []  # the old code: one write each time the one clicking changed (9 here)


async def test_a_chat_is_started_from_the_bots_address(teams_any_db: TeamsHarness) -> None:
    """Dana never talked to the bot: her chat is started from the address someone else's activity left."""
    h = teams_any_db
    status, _ = await h.say(ALICE, "help")
    assert status == 200
    bob = await h.app.service.identify(BOB)
    assert bob is not None
    assert (await h.app.service.handle_text(bob, "request prod-db-read for 1h because INC-2 fix")).ok
    await h.click(MARK, "approve", {"request_id": 1})  # step 2 asks dana, who has no chat with the bot yet
    created = [c for c in h.connector.of("create") if c.body["members"][0]["id"] == AAD[DANA]]
    assert len(created) == 1 and created[0].body["tenantId"] == TENANT, [c.body for c in created]
    assert created[0].body["bot"]["id"] == conversation_bot(h)
    assert h.connector.of("send", created[0].conversation)  # her approval card went into it


async def test_a_review_card_refreshed_again_takes_no_write_lock(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    await started(h)
    await h.click(MARK, "refresh", {"review_id": "RV-1", "page": 0})
    await h.click(SAM, "refresh", {"review_id": "RV-1", "page": 0})
    assert sorted(e["actor"] for e in await h.events("review.opened")) == [MARK, SAM]
    with write_transactions(h.app) as opened:
        for _ in range(3):
            for who in (MARK, SAM):
                await h.click(who, "refresh", {"review_id": "RV-1", "page": 0})
    assert opened == []  # the old code: one a refresh
    assert sorted(e["actor"] for e in await h.events("review.opened")) == [MARK, SAM]
