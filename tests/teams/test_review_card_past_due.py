"""A Teams review card pressed after its campaign's due time, before a sweep has closed it: the campaign
closes at its due time (SPEC §7 Close), so nothing is recorded, the press is refused and recorded, and the card
answered offers no Save. Real HTTP into the Teams route; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from tests.teams.cardcheck import actions_of, check_card, texts_of
from tests.teams.conftest import TeamsHarness
from tests.teams.test_reviews import MARK, started


async def test_a_card_saved_after_the_due_time_records_nothing(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    await started(h)
    async with h.app.store.read() as repo:
        campaign = await repo.get_campaign(1)  # type: ignore[attr-defined]
    h.clock.at = campaign.due_at + timedelta(minutes=30)
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {"3": "", "4": ""},
                                                     "item-3": "keep", "item-4": "keep"}))
    assert [e for e in await h.events("review.decided") if e["actor"] == MARK] == [], texts_of(card)
    refused = [e["data"] for e in await h.events("command.refused") if e["actor"] == MARK]
    assert refused and "due" in refused[-1]["reason"], refused
    assert not actions_of(card) and "past its due time" in texts_of(card), texts_of(card)
    refreshed = check_card(await h.click(MARK, "refresh", {"review_id": "RV-1", "page": 0}))
    assert not actions_of(refreshed), texts_of(refreshed)
