"""Submits of the Teams access-review cards (SPEC §7, §4.2): stale cards, tampered submits, and what a card
shows against what gets recorded. Real HTTP into the Teams route with a signed Bot Framework token
(``teams_secured``), the Bot Connector stand-in; the campaign of tests/teams/test_reviews.py:
group:security reviews 1-2, mark 3 (alice) and 4 (bob), pat.lead 5 (deploy-bot) and 6 (sam.sec)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.teams.cardcheck import actions_of, check_card, texts_of
from tests.teams.conftest import AAD, TeamsHarness, conversation_id
from tests.teams.test_reviews import MARK, PAT, inputs, started


def save_data(card: dict[str, Any]) -> dict[str, Any]:
    """The data of the card's Save action (Teams adds the inputs' values to it)."""
    (data,) = [a["data"] for a in actions_of(card) if a["title"] == "Save"]
    return dict(data)


def pat_cards(h: TeamsHarness) -> list[dict[str, Any]]:
    conv = next(c.conversation for c in h.connector.of("create") if c.body["members"][0]["id"] == AAD[PAT])
    return [check_card(p.card) for p in h.connector.of("send", conv) if p.card]


def bulk_data(card: dict[str, Any], bulk: str) -> dict[str, Any]:
    (action,) = [a for a in actions_of(card) if a["data"].get("bulk") == bulk]
    return dict(action["data"])


async def decided(h: TeamsHarness) -> list[tuple[str, int, str]]:
    return [(e["actor"], e["data"]["item"], e["data"]["decision"]) for e in await h.events("review.decided")]


async def test_keep_all_on_a_stale_card_decides_only_the_items_that_card_showed(teams_secured: TeamsHarness) -> None:
    """pat.lead's card from the start shows his items 5 and 6 with 'Keep all'. Days later mark's batch is
    escalated to pat (Teams no longer auto-refreshes a card that old). Pressing 'Keep all' on the old card
    must not certify bob's item 4, which that card never showed to pat."""
    h = teams_secured
    await started(h)
    (card,) = pat_cards(h)
    assert {k for k in inputs(card) if k.startswith("item-")} == {"item-5", "item-6"}
    h.clock.at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # 5 business days: mark's items go to pat
    report = await h.app.service.sweep()
    await h.idle()
    assert "RV-1 mark.mgr@example.com → pat.lead@example.com" in report.reviews_escalated
    reply = check_card(await h.click(PAT, "review", {**bulk_data(card, "keep"), "comment": "all fine"}))
    assert [(who, item) for who, item, _ in await decided(h)] == [(PAT, 5), (PAT, 6)], texts_of(reply)


async def test_a_non_string_choice_spoils_the_submit_not_silently_dropped(teams_secured: TeamsHarness) -> None:
    """A tampered choice that is not a string (a list, a number, an object) is neither keep nor remove: as
    with 'delete', nothing of that submit may be saved (the Slack modal was fixed the same way)."""
    h = teams_secured
    await started(h)
    for odd in (["remove"], 1, {"value": "remove"}, True):
        card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-3": "keep",
                                                         "item-4": odd, "comment": "x"}))
        assert await h.events("review.decided") == [], (odd, texts_of(card))


async def test_one_item_named_twice_with_two_answers_is_refused(teams_secured: TeamsHarness) -> None:
    """``item-4`` and ``item-04`` both name item 4; one says keep, the other remove. Which one counts depends on
    the order of the JSON keys; the submit should be refused and nothing recorded (as on Slack)."""
    h = teams_secured
    await started(h)
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-4": "keep",
                                                     "item-04": "remove", "comment": "x"}))
    assert await h.events("review.decided") == [], texts_of(card)


async def test_an_unchanged_preselected_removal_does_not_demand_a_justification(teams_secured: TeamsHarness) -> None:
    """justification: {keep: optional, remove: required}. Mark removed bob (4) with a reason. His refreshed card
    shows 4 pre-selected 'remove'; he now picks keep for alice (3), no comment, and saves. Teams posts every
    input, so item-4=remove comes back unchanged: nothing is removed by this save, and a keep needs no reason,
    yet the save is refused with 'Say why' (and the reason he then types is recorded on the keep)."""
    h = teams_secured
    await started(h)
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-4": "remove",
                                                     "comment": "no sign-in since January"}))
    assert "remove recorded for 1 item(s) (4)" in texts_of(card)
    card = check_card(await h.click(MARK, "refresh", {"review_id": "RV-1", "page": 0}))
    assert inputs(card)["item-4"] == "remove"
    card = check_card(await h.click(MARK, "review", {**save_data(card), "item-3": "keep",
                                                     "item-4": "remove", "comment": ""}))
    assert (MARK, 3, "keep") in await decided(h), texts_of(card)


async def test_unchanged_item_decided_by_someone_else_is_not_called_yours(teams_secured: TeamsHarness) -> None:
    """After the escalation pat removes bob (4). Mark's refreshed card shows 4 pre-selected 'remove, decided by
    pat'; mark saves a keep for 3. The answer must not tell mark item 4 was 'already decided so by you'."""
    h = teams_secured
    await started(h)
    h.clock.at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    await h.app.service.sweep()
    await h.idle()
    check_card(await h.click(PAT, "review", {"review_id": "RV-1", "shown": {}, "item-4": "remove",
                                             "comment": "gone quiet"}))
    card = check_card(await h.click(MARK, "refresh", {"review_id": "RV-1", "page": 0}))
    assert inputs(card)["item-4"] == "remove"
    card = check_card(await h.click(MARK, "review", {**save_data(card), "item-4": "remove",
                                                     "comment": "agreed, no sign-in"}))
    assert await decided(h) == [(PAT, 4, "remove")]
    assert "already decided so by you" not in texts_of(card), texts_of(card)


async def test_an_oversized_justification_is_not_silently_cut(teams_secured: TeamsHarness) -> None:
    """The card's comment box allows 2,000 characters; a tampered submit of 10,000 is recorded cut to 4,000
    without a word: the recorded justification is not what the reviewer sent. Either refuse, or record it
    whole; never record a different text silently."""
    h = teams_secured
    await started(h)
    text = "because " + "x" * 9992
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-4": "remove",
                                                     "comment": text}))
    comments = [e["data"]["comment"] for e in await h.events("review.decided")]
    assert comments in ([], [text]), (len(comments[0]), texts_of(card))


@pytest.mark.parametrize("page", [-1, "-1", "٣", "1e3", 10**40, "999999", None, 1.5, "", [1], {"p": 1}])
async def test_hostile_page_numbers_answer_a_card(teams_secured: TeamsHarness, page: Any) -> None:
    """Held: any page value gives mark a card of his batch (page clamped), never a 500."""
    h = teams_secured
    await started(h)
    data: dict[str, Any] = {"review_id": "RV-1"} if page is None else {"review_id": "RV-1", "page": page}
    card = check_card(await h.click(MARK, "refresh", data))
    assert {k for k in inputs(card) if k.startswith("item-")} == {"item-3", "item-4"}
    card = check_card(await h.click(MARK, "review", {**bulk_data(card, "keep"), **data}))
    assert "keep recorded for 2 item(s) (3, 4)" in texts_of(card), texts_of(card)


async def test_held_tampered_ids_other_campaign_and_closed(teams_secured: TeamsHarness) -> None:
    """Held: another campaign's id, an item out of range, a closed campaign: refused and recorded."""
    h = teams_secured
    await started(h)
    for rid in ("RV-2", "RV-0", "RV-999999999", "RV-1x", "rv-1 ; drop"):
        card = check_card(await h.click(MARK, "review", {"review_id": rid, "item-3": "keep"}))
        assert "item-3" not in inputs(card), (rid, texts_of(card))
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "shown": {}, "item-999999999": "keep"}))
    assert "not yours to decide" in texts_of(card)
    assert await h.events("review.decided") == []
    await h.say("sam.sec@example.com", "review close RV-1")
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "bulk": "remove", "comment": "late"}))
    assert "decisions can no longer be changed" in texts_of(card)
    assert [e for e in await h.events("review.decided") if e["actor"] == MARK] == []


async def test_held_a_batch_of_thousands_pages_and_saves_in_bounded_time(teams_secured: TeamsHarness) -> None:
    """2,000 items for mark: one card a page; the last card's refresh shows a page, and its 'Remove all on this
    card' decides only that card's items (how fast is bench/bench_review_10k.py's business)."""
    from pathlib import Path

    from cards import reviews_adaptive
    from tests.reviews.test_start import REVIEW
    from tests.support import Files
    from tests.teams.test_reviews import SAM

    h = teams_secured
    n = 2000
    files = Files(Path(h.app.settings.policy), Path(h.app.settings.directory))

    def many(data: dict) -> None:
        data["users"] += [{"email": f"u{k:04d}@example.com", "name": f"User {k}", "manager": MARK}
                          for k in range(n)]
        data["groups"]["sg-prod-db-read"] = [f"u{k:04d}@example.com" for k in range(n)]
        data["groups"]["sg-prod-k8s-admin"] = []
    files.edit_directory(many)
    await h.post(h.activity("installation_update_add", MARK))
    await h.say(SAM, f"review start {REVIEW}")
    last = n // reviews_adaptive.PAGE_SIZE - 1
    card = check_card(await h.click(MARK, "refresh", {"review_id": "RV-1", "page": last}))
    assert len([k for k in inputs(card) if k.startswith("item-")]) == reviews_adaptive.PAGE_SIZE
    card = check_card(await h.click(MARK, "review", {**bulk_data(card, "remove"), "comment": "unused"}))
    assert f"remove recorded for {reviews_adaptive.PAGE_SIZE} item(s)" in texts_of(card), texts_of(card)[:400]
    sent = [p for p in h.connector.of("send", conversation_id(MARK)) if p.card]
    assert len(sent) == n // reviews_adaptive.PAGE_SIZE  # one card a page, each bounded (checked above)


async def test_the_person_reviewed_trying_keep_all_is_refused_and_recorded(teams_secured: TeamsHarness) -> None:
    """bob (item 4, reviewed by mark; bob reviews nothing) forges a 'Keep all' card action on RV-1, and types
    `keep RV-1 all`. SPEC §7: the person reviewed never decides their own item; anyone else trying gets a
    refusal recorded as command.refused. A stranger (carol) doing the same is recorded; bob is not."""
    from tests.teams.test_reviews import BOB

    h = teams_secured
    await started(h)
    card = check_card(await h.click(BOB, "review", {"review_id": "RV-1", "bulk": "keep", "comment": "mine"}))
    await h.say(BOB, "keep RV-1 all because I need it")
    assert await h.events("review.decided") == []
    refused = [e["data"]["reason"] for e in await h.events("command.refused") if e["actor"] == BOB]
    assert len(refused) == 2, (refused, texts_of(card))


@pytest.mark.parametrize("items", [None, "3,4", [3, "4"], [True], [0], list(range(1, 30))])
async def test_a_bulk_that_does_not_say_which_items_its_card_showed_decides_nothing(teams_secured: TeamsHarness,
                                                                                   items: Any) -> None:
    """A 'Keep all' whose data does not list the items its card showed (a card sent before it did, or forged):
    nothing is decided, and the reviewer gets the batch as it is now to press again."""
    h = teams_secured
    await started(h)
    data: dict[str, Any] = {"review_id": "RV-1", "page": 0, "bulk": "keep", "comment": "fine"}
    if items is not None:
        data["items"] = items
    card = check_card(await h.click(MARK, "review", data))
    assert await h.events("review.decided") == []
    assert "out of date" in texts_of(card) and {k for k in inputs(card) if k.startswith("item-")} == {"item-3",
                                                                                                   "item-4"}
    again = check_card(await h.click(MARK, "review", {**bulk_data(card, "keep"), "comment": "fine"}))
    assert await decided(h) == [(MARK, 3, "keep"), (MARK, 4, "keep")], texts_of(again)
