"""Teams review cards left open while someone else decides (bot/teams/review_invoke.py, handlers/reviews/decide.py
``_against_shown``): every action's data says what its card showed, and a choice left as shown is not a decision.
Real HTTP into the Teams route with a signed token. The campaign of tests/teams/test_reviews.py: group:security
(sam, sasha) reviews 1 (orphan) and 2 (pat.lead), mark 3 (alice) and 4 (bob), pat.lead 5 (deploy-bot) and 6
(sam.sec)."""

from __future__ import annotations

from tests.teams.cardcheck import check_card, texts_of
from tests.teams.conftest import TeamsHarness
from tests.teams.test_review_card_submits import save_data
from tests.teams.test_reviews import MARK, SAM, inputs, started

SASHA = "sasha.sec@example.com"


async def final(h: TeamsHarness) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for e in await h.events("review.decided"):
        out[e["data"]["item"]] = (e["actor"], e["data"]["decision"])
    return out


async def test_an_untouched_preselected_choice_on_an_older_card_does_not_undo_a_later_decision(
        teams_secured: TeamsHarness) -> None:
    """Sam keeps 1 and 2 (orphan, pat.lead). Sasha, his colleague in group:security, opens her card: both show
    'keep, decided by sam' pre-selected. Sam then changes his mind and removes 1 with a reason. Sasha, on the card
    she has open, touches nothing of item 1; she saves (Teams posts every input, so item-1=keep comes back as the
    card showed it). The save records a *new* keep by sasha on item 1, silently reverting sam's later removal that
    her card never showed: the unchanged pre-selected value is compared with the current decision, not with what
    the card showed. What she left as it was should stay as it is now (sam's removal), or the save should be
    refused as out of date."""
    h = teams_secured
    await started(h)
    await h.say(SAM, "keep RV-1 1 2")
    assert await final(h) == {1: (SAM, "keep"), 2: (SAM, "keep")}
    card = check_card(await h.click(SASHA, "refresh", {"review_id": "RV-1", "page": 0}))
    shown = {k: v for k, v in inputs(card).items() if k.startswith("item-")}
    assert shown == {"item-1": "keep", "item-2": "keep"}, texts_of(card)
    await h.say(SAM, "remove RV-1 1 because orphan account, its manager has left")
    assert (await final(h))[1] == (SAM, "remove")
    reply = check_card(await h.click(SASHA, "review", {**save_data(card), **shown, "comment": "looked at both"}))
    assert (await final(h))[1] == (SAM, "remove"), texts_of(reply)


async def test_an_untouched_preselected_removal_on_an_older_card_does_not_demand_a_justification(
        teams_secured: TeamsHarness) -> None:
    """The same root cause, the symptom the last fix meant to end: sam removed 1 (with a reason) and sasha's card
    shows it pre-selected 'remove'. Sam then keeps 1 after all. Sasha keeps 2 on her card (no comment: keeping
    needs none) and saves; item-1=remove comes back untouched. The save is refused with 'Say why' (and recorded
    as command.refused 'no justification') for a removal she never chose."""
    h = teams_secured
    await started(h)
    await h.say(SAM, "remove RV-1 1 because orphan account")
    card = check_card(await h.click(SASHA, "refresh", {"review_id": "RV-1", "page": 0}))
    assert inputs(card)["item-1"] == "remove"
    await h.say(SAM, "keep RV-1 1 because the new manager vouches for it")
    reply = check_card(await h.click(SASHA, "review", {**save_data(card), "item-1": "remove", "item-2": "keep",
                                                       "comment": ""}))
    refused = [e["data"]["reason"] for e in await h.events("command.refused") if e["actor"] == SASHA]
    assert refused == [] and (await final(h)).get(2) == (SASHA, "keep"), (refused, texts_of(reply))


async def test_held_a_bulk_naming_items_of_other_batches_decides_nothing_and_is_recorded(
        teams_secured: TeamsHarness) -> None:
    """Held: mark's 'Keep all' with data.items naming his items plus sam's (1), pat's (5) or an item number
    twice: a foreign item refuses the whole press (recorded); duplicates decide once."""
    h = teams_secured
    await started(h)
    for items in ([3, 4, 1], [5, 3]):
        card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "bulk": "keep",
                                                         "items": items, "comment": "x"}))
        assert "not yours to decide" in texts_of(card)
    assert await h.events("review.decided") == []
    assert len([e for e in await h.events("command.refused") if e["actor"] == MARK]) == 2
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "bulk": "keep",
                                                     "items": [3, 3, 4, 4], "item-4": "remove"}))
    assert await final(h) == {3: (MARK, "keep"), 4: (MARK, "keep")}, texts_of(card)


async def test_remove_all_on_an_escalated_card_does_not_override_a_keep_made_after_it_was_shown(
        teams_secured: TeamsHarness) -> None:
    """Mark's undecided 3 and 4 are escalated to pat, whose card shows them undecided with 'Remove all'. Mark then
    keeps bob (4) with a reason (he still may). Pat presses 'Remove all' on the card he has: data.items lists 3 and
    4 as the card showed them (undecided), and 4 is removed over mark's keep, which pat's card never showed. The
    bulk only knows which items the card showed, not what it showed about them; a decision made since should not
    be overturned unseen (refuse as out of date, or leave it)."""
    from datetime import UTC, datetime

    from tests.teams.test_review_card_submits import bulk_data, pat_cards
    from tests.teams.test_reviews import PAT

    h = teams_secured
    await started(h)
    h.clock.at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    report = await h.app.service.sweep()
    await h.idle()
    assert "RV-1 mark.mgr@example.com → pat.lead@example.com" in report.reviews_escalated
    card = pat_cards(h)[-1]
    # alice's item (3) is not handed over: her 30-minute grant ended, and with it the membership it asked about
    assert "item-4" in inputs(card) and "item-3" not in inputs(card) and inputs(card)["item-4"] is None
    await h.say(MARK, "keep RV-1 4 because bob is on the on-call rota")
    assert (await final(h))[4] == (MARK, "keep")
    reply = check_card(await h.click(PAT, "review", {**bulk_data(card, "remove"), "comment": "not needed"}))
    assert (await final(h))[4] == (MARK, "keep"), texts_of(reply)


async def test_a_bulk_from_an_old_card_after_the_close_is_refused_and_recorded(teams_secured: TeamsHarness) -> None:
    """Mark presses 'Remove all' on a card sent before bulk actions listed their items (every card in users' chats
    at the upgrade) after RV-1 has closed. Before the fix this reached the decision handler, which refused it and
    recorded command.refused 'campaign …', as `remove RV-1 all` in chat still is. Now the missing data.items
    answers 'out of date' before the handler runs: the late attempt is no longer recorded (a refusal skipped)."""
    h = teams_secured
    await started(h)
    await h.say(SAM, "review close RV-1")
    check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "bulk": "remove", "comment": "late"}))
    await h.say(MARK, "remove RV-1 all because late")
    refused = [e["data"]["reason"] for e in await h.events("command.refused") if e["actor"] == MARK]
    assert len(refused) == 2 and all(r.startswith("campaign ") for r in refused), refused
