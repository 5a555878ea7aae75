"""The people clicking a card are identified with a few reads of the embedded directory's overlay, not one each.

A burst of Approve clicks on one card (a channel's approvers, one approver's impatient clicks) identified every
sender outside any look-up scope, so each click read that person's rows of the overlay on a connection of its
own. Each sender is now looked up in a scope of the identification alone (bot/teams/identity.py), where the
overlay is read once for every look-up asking at the same time and kept while its version stays the same
(store/overlay.py). Counted, not timed: the statements SQLAlchemy's listener sees.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.notify import CLOSED
from tests.support import held_table, statements, until
from tests.teams.cardcheck import texts_of
from tests.teams.conftest import TeamsHarness, _serve, _settings
from tests.teams.standins import BotConnector

BOB, MARK, SAM = "bob@example.com", "mark.mgr@example.com", "sam.sec@example.com"


async def test_a_burst_of_approve_clicks_identifies_its_senders_with_a_few_reads(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    bob = await h.app.service.identify(BOB)
    assert bob is not None
    # a grant provisioned first: the overlay has changed once, so it has a version to be kept under
    assert (await h.app.service.handle_text(bob, "request staging-admin for 1h because INC-1 deploy")).ok
    await h.click(MARK, "approve", {"request_id": 1})
    assert (await h.request(1)).state == "active"
    assert (await h.app.service.handle_text(bob, "request prod-db-read for 1h because INC-2 fix")).ok

    with statements(h.app) as seen:
        cards = await asyncio.gather(*(h.click(MARK, "approve", {"request_id": 2}) for _ in range(20)))
    assert [e["data"]["step"] for e in await h.events("approval.granted")] == [1, 1]  # REQ-1's, and one of REQ-2
    assert (await h.request(2)).step == 1
    notes = sorted(texts_of(c).rsplit("\n", 1)[-1] for c in cards)
    assert notes == ["Approved REQ-2 at step 1 (manager)."] + [
        "You already approved REQ-2 at step 1; one person counts once per request."] * 19, notes
    # nobody's rows of the overlay read one by one (the old code: one read a click, 20 here), only its version
    per_person = [s for s in seen if "FROM directory_memberships" in s]
    assert per_person == [], per_person
    assert any("FROM compliance_state" in s for s in seen)


async def test_a_card_refreshing_for_people_whose_step_closed_reads_its_notes_together(
        teams_any_db: TeamsHarness) -> None:
    """Sam (the security team, in no step of staging-admin's chain) sees the request and cannot decide it: his card
    shows what the notice that closed the step said (bot/teams/invoke.py ``_closing_note``). A burst of such
    refreshes reads the request's messages a few times, not once a refresh."""
    h = teams_any_db
    bob = await h.app.service.identify(BOB)
    assert bob is not None
    assert (await h.app.service.handle_text(bob, "request staging-admin for 1h because INC-1 deploy")).ok
    await h.click(SAM, "refresh", {"request_id": 1})
    with statements(h.app) as seen:
        cards = await asyncio.gather(*(h.click(SAM, "refresh", {"request_id": 1}) for _ in range(20)))
    assert len({json.dumps(c, sort_keys=True) for c in cards}) == 1 and "REQ-1" in texts_of(cards[0])
    notes = [s for s in seen if "FROM channel_messages" in s]
    assert notes, seen  # read (the notes are not kept): a note written meanwhile is shown by the next refresh


@pytest.fixture
async def teams_pg(pg_url: str, tmp_path: Path, connector: BotConnector) -> AsyncIterator[TeamsHarness]:
    async for h in _serve(_settings(pg_url, tmp_path, teams_emulator="1"), connector, None):
        yield h


async def test_refreshes_asking_while_the_notes_are_read_share_the_next_read(teams_pg: TeamsHarness,
                                                                              pg_url: str) -> None:
    """The first refresh's read of the notes held (a lock another connection takes on the channel's messages) until
    19 more have asked: they share one read begun after they all asked, two in all (the old code: twenty)."""
    h = teams_pg
    bob = await h.app.service.identify(BOB)
    assert bob is not None
    assert (await h.app.service.handle_text(bob, "request staging-admin for 1h because INC-1 deploy")).ok
    await h.click(SAM, "refresh", {"request_id": 1})
    reads = h.app.deps.shared_reads
    # the reads of the notes (the notifier may read the request's other messages meanwhile, with the same statement)
    def notes(statement: str, params: Any) -> bool:
        return "FROM channel_messages" in statement and CLOSED in (
            list(params.values()) if isinstance(params, dict) else list(params or ()))

    with statements(h.app, notes) as seen:
        async with held_table(pg_url, "channel_messages"):
            first = asyncio.ensure_future(h.click(SAM, "refresh", {"request_id": 1}))
            await until(lambda: any(k[0] == "closing-notes" for k in reads._running))
            shared = reads.shared
            others = [asyncio.ensure_future(h.click(SAM, "refresh", {"request_id": 1})) for _ in range(19)]
            await until(lambda: reads.shared >= shared + 19)
        cards = [await first, *[await o for o in others]]
    assert len({json.dumps(c, sort_keys=True) for c in cards}) == 1
    # 19 refreshes shared one read (the counter above); at most one more read of the notes came from elsewhere (the
    # notifier redraws cards with them), never one a refresh (the old code: 20)
    assert len(seen) <= 3, seen
