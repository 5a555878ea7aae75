"""What a card said it showed (`shown`: handlers/reviews/decide.py ``_against_shown``, bot/teams/review_invoke.py):
real HTTP into the Teams route with a signed token. The campaign of tests/teams/test_reviews.py: group:security
(sam, sasha) reviews 1 (orphan) and 2 (pat.lead), mark 3 (alice) and 4 (bob), pat.lead 5 (deploy-bot) and 6
(sam.sec); justification {keep: optional, remove: required}."""

from __future__ import annotations

from tests.teams.cardcheck import check_card, texts_of
from tests.teams.conftest import TeamsHarness
from tests.teams.test_review_card_stale import SASHA, final, save_data
from tests.teams.test_review_card_submits import bulk_data
from tests.teams.test_reviews import MARK, SAM, inputs, started


async def test_a_card_shown_again_after_a_say_why_refusal_makes_an_untouched_stale_choice_a_decision(
        teams_secured: TeamsHarness) -> None:
    """Sasha removed 1 (with a reason); her card shows it pre-selected 'remove'. Sam then keeps 1. On the card
    she still has, sasha touches only item 2 (remove) and saves without a comment: refused, 'Say why'. That
    first save rightly treats item-1=remove as untouched. But the card it answers with pre-selects her untouched
    'remove' on 1 (from the typed choices) while its `shown` now says 'keep' (sam's decision): she types a
    reason and saves, and item 1 is removed by sasha over sam's later keep, which she never touched."""
    h = teams_secured
    await started(h)
    await h.say(SASHA, "remove RV-1 1 because orphan account")
    card = check_card(await h.click(SASHA, "refresh", {"review_id": "RV-1", "page": 0}))
    assert inputs(card)["item-1"] == "remove"
    await h.say(SAM, "keep RV-1 1 because the new manager vouches for it")
    assert (await final(h))[1] == (SAM, "keep")
    card = check_card(await h.click(SASHA, "review", {**save_data(card), "item-1": "remove", "item-2": "remove",
                                                      "comment": ""}))
    assert "Say why" in texts_of(card) and (await final(h))[1] == (SAM, "keep")
    again = {k: v for k, v in inputs(card).items() if k.startswith("item-")}  # as Teams posts the card back
    card = check_card(await h.click(SASHA, "review", {**save_data(card), **again,
                                                      "comment": "pat.lead left the platform team"}))
    assert (await final(h)).get(2) == (SASHA, "remove"), texts_of(card)
    assert (await final(h))[1] == (SAM, "keep"), texts_of(card)


async def test_remove_all_refused_for_a_reason_then_saved_overturns_the_decision_the_bulk_left_alone(
        teams_secured: TeamsHarness) -> None:
    """Sasha's card shows 1 and 2 undecided. Sam then keeps 1. Sasha presses 'Remove all' without a comment: the
    bulk would leave 1 alone (decided otherwise since shown) but is refused, 'Say why'. The card it answers with
    pre-selects 'remove' on both 1 and 2 (the bulk's choices), with `shown` now saying 1 is 'keep'. She types a
    reason and saves: 1 is removed over sam's keep, the very decision the bulk promised to leave as it is."""
    h = teams_secured
    await started(h)
    card = check_card(await h.click(SASHA, "refresh", {"review_id": "RV-1", "page": 0}))
    assert inputs(card)["item-1"] is None and inputs(card)["item-2"] is None
    await h.say(SAM, "keep RV-1 1 because the new manager vouches for it")
    card = check_card(await h.click(SASHA, "review", {**bulk_data(card, "remove"), "comment": ""}))
    assert "Say why" in texts_of(card) and (await final(h))[1] == (SAM, "keep")
    again = {k: v for k, v in inputs(card).items() if k.startswith("item-")}
    card = check_card(await h.click(SASHA, "review", {**save_data(card), **again, "comment": "not needed any more"}))
    assert (await final(h)).get(2) == (SASHA, "remove"), texts_of(card)
    assert (await final(h))[1] == (SAM, "keep"), texts_of(card)


async def test_a_tampered_shown_naming_an_undecided_item_as_decided_does_not_break_the_answer(
        teams_secured: TeamsHarness) -> None:
    """Mark's Save data says `shown: {"3": "keep", "4": ""}` though 3 was never decided (a tampered or foreign
    card), with item-3=keep and item-4=keep. Item 4's keep is recorded; item 3 counts as 'decided otherwise
    since shown', and the answer reads final[3], which does not exist: KeyError after the commit. Mark gets an
    error for a save that was recorded (the answer lies), where he should get an answer naming what was
    recorded."""
    h = teams_secured
    await started(h)
    data = {"review_id": "RV-1", "page": 0, "shown": {"3": "keep", "4": ""}, "item-3": "keep", "item-4": "keep",
            "comment": "x"}
    act = h.activity("invoke_adaptive_card_action", MARK, replyToId="1763884850123")
    act["value"]["action"] = {"type": "Action.Execute", "verb": "review", "data": data}
    status, body = await h.post(act)
    await h.idle()
    recorded = await final(h)
    assert recorded.get(4) == (MARK, "keep")  # recorded, whatever the answer
    assert status == 200 and body.get("type") == "application/vnd.microsoft.card.adaptive", body
    assert "keep recorded for 1 item(s) (4)" in texts_of(check_card(body["value"])), body


async def test_a_save_from_a_card_sent_before_shown_existed_still_reverts_a_later_decision(
        teams_secured: TeamsHarness) -> None:
    """Every card in users' chats at the upgrade has Save data {review_id, page}, no `shown` (Teams stops
    refreshing a card after a day). Sam keeps 1 and 2; sasha's card pre-selects both. Sam then removes 1; sasha
    saves the old card untouched: judged against the decisions now, her untouched 'keep' overturns sam's later
    removal. The bulk of such a card is refused as out of date; its Save should not overturn a decision made
    since either."""
    h = teams_secured
    await started(h)
    await h.say(SAM, "keep RV-1 1 2")
    card = check_card(await h.click(SASHA, "refresh", {"review_id": "RV-1", "page": 0}))
    shown = {k: v for k, v in inputs(card).items() if k.startswith("item-")}
    assert shown == {"item-1": "keep", "item-2": "keep"}
    await h.say(SAM, "remove RV-1 1 because orphan account, its manager has left")
    old = {k: v for k, v in save_data(card).items() if k != "shown"}  # as the card was written before `shown`
    reply = check_card(await h.click(SASHA, "review", {**old, **shown, "comment": "looked at both"}))
    assert (await final(h))[1] == (SAM, "remove"), texts_of(reply)
