"""Access reviews in Teams (SPEC §7): the reviewer's batch as Adaptive Cards 1.5 (verb ``review``, inputs
``item-<k>``, keep all / remove all, comment), its refresh showing the live state, and decisions through
the same handler as chat, attacked: strangers, tampered item keys, own items, a closed campaign, double
submits, another tenant. Real HTTP into the Teams route, the Bot Connector stand-in; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cards import reviews_adaptive
from tests.reviews.test_start import REVIEW, staff
from tests.support import Files
from tests.teams.cardcheck import actions_of, check_card, texts_of
from tests.teams.conftest import AAD, TeamsHarness, conversation_id, teams_id
from tests.teams.test_hardening import FOREIGN, _tenanted

ALICE, BOB, CAROL, MARK = "alice@example.com", "bob@example.com", "carol@example.com", "mark.mgr@example.com"
PAT, SAM = "pat.lead@example.com", "sam.sec@example.com"


def inputs(card: dict[str, Any]) -> dict[str, Any]:
    """Input id → its value (None when empty)."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if str(node.get("type", "")).startswith("Input.") and "id" in node:
                found[node["id"]] = node.get("value")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(card.get("body"))
    return found


def verbs(card: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(a["verb"], a["data"].get("bulk")) for a in actions_of(card)]


async def started(h: TeamsHarness) -> None:
    files = Files(Path(h.app.settings.policy), Path(h.app.settings.directory))
    staff(files)
    status, _ = await h.post(h.activity("installation_update_add", MARK))
    assert status == 200
    await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # on call: active at once, REQ-1
    assert (await h.request(1)).state == "active"
    await h.say(SAM, f"review start {REVIEW}")
    assert len(await h.events("review.started")) == 1


async def test_reviewer_card_refresh_decisions_and_attacks(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    await started(h)
    # mark (alice 3, bob 4) gets his batch as a card, in the conversation he installed the bot in
    (sent,) = [p for p in h.connector.of("send", conversation_id(MARK)) if p.card]
    card = check_card(sent.card)
    assert set(inputs(card)) == {"item-3", "item-4", "comment"}
    assert verbs(card) == [("review", None), ("review", "keep"), ("review", "remove")]
    assert all(a["data"]["review_id"] == "RV-1" for a in actions_of(card))
    assert card["refresh"]["userIds"] == [teams_id(MARK)]
    assert card["refresh"]["action"]["data"] == {"review_id": "RV-1", "page": 0}
    assert "bob@example.com" in texts_of(card) and "recommend remove" in texts_of(card)
    assert await h.events("review.opened") == []  # sent is not seen
    # pat.lead never talked to the bot: a conversation is created from his directory object id
    assert any(c.body["members"][0]["id"] == AAD[PAT] for c in h.connector.of("create"))

    # mark's client refreshes the card when he looks at it: the live check runs, review.opened once
    card = check_card(await h.click(MARK, "refresh", {"review_id": "RV-1", "page": 0}))
    assert set(inputs(card)) == {"item-3", "item-4", "comment"}
    card = check_card(await h.click(MARK, "refresh", {"review_id": "RV-1", "page": 0}))
    (opened,) = await h.events("review.opened")
    assert (opened["actor"], opened["data"]["channel"], opened["data"]["review_id"]) == (MARK, "teams", "RV-1")
    assert opened["data"]["channel_user_id"] == AAD[MARK]

    # remove without a reason: refused and recorded as in chat; the card keeps his choices and asks why
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-3": "keep",
                                                     "item-4": "remove", "comment": ""}))
    assert "Say why" in texts_of(card)
    assert inputs(card)["item-4"] == "remove" and inputs(card)["item-3"] == "keep"
    assert await h.events("review.decided") == []
    # a tampered key for an item of the security team's batch (1) spoils the whole submit: nothing is saved
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-3": "keep",
                                                     "item-1": "remove", "comment": "x"}))
    assert "Item 1 of RV-1 is not yours to decide." in texts_of(card)
    assert await h.events("review.decided") == []
    # a value that is neither keep nor remove: nothing decided, a clear answer
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-3": "delete"}))
    assert "neither keep nor remove" in texts_of(card)

    # the real save: both decisions, one transaction, by the authenticated sender whatever the data says
    data = {"review_id": "RV-1", "page": 0, "shown": {}, "item-3": "keep", "item-4": "remove",
            "comment": "no sign-in since January", "actor": PAT}
    card = check_card(await h.click(MARK, "review", data))
    assert "keep recorded for 1 item(s) (3); remove recorded for 1 item(s) (4)" in texts_of(card)
    assert inputs(card)["item-4"] == "remove"  # the card shows what is recorded now
    decided = await h.events("review.decided")
    assert [(e["actor"], e["data"]["item"], e["data"]["decision"], e["data"]["channel"]) for e in decided] == [
        (MARK, 3, "keep", "teams"), (MARK, 4, "remove", "teams")]
    # a double submit (or Teams retrying the invoke) records nothing more
    card = check_card(await h.click(MARK, "review", data))
    assert "2 item(s) unchanged" in texts_of(card)
    assert len(await h.events("review.decided")) == 2

    # sam (security, reviewer of 1-2) puts his own item (6, reviewed by pat.lead) into the card
    card = check_card(await h.click(SAM, "review", {"review_id": "RV-1", "shown": {}, "item-1": "keep",
                                                    "item-6": "keep"}))
    assert "your own access" in texts_of(card)
    # carol reviews nothing: refresh shows nothing, a forged save or bulk is refused and recorded
    card = check_card(await h.click(CAROL, "refresh", {"review_id": "RV-1"}))
    assert "nothing to review in RV-1" in texts_of(card) and "item-3" not in inputs(card)
    card = check_card(await h.click(CAROL, "review", {"review_id": "RV-1", "item-3": "remove", "comment": "x"}))
    assert "You may not decide anything in RV-1." in texts_of(card)
    card = check_card(await h.click(CAROL, "review", {"review_id": 1, "bulk": "remove", "comment": "x"}))
    assert "You may not decide anything in RV-1." in texts_of(card)
    refused = [(e["actor"], e["data"]["command"], e["data"]["reason"]) for e in await h.events("command.refused")]
    assert refused == [(MARK, "keep/remove RV-1", "no justification"),
                       (MARK, "keep/remove RV-1", "not the reviewer of the item"),
                       (SAM, "keep RV-1", "own item"),
                       (CAROL, "remove RV-1", "not a reviewer of it"), (CAROL, "remove RV-1", "not a reviewer of it")]
    assert len(await h.events("review.decided")) == 2

    # pat.lead keeps all of his card (deploy-bot 5, sam.sec 6) at once
    card = check_card(await h.click(PAT, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "bulk": "keep",
                                                    "items": [5, 6], "item-5": ""}))
    assert "keep recorded for 2 item(s) (5, 6)" in texts_of(card), texts_of(card)

    # closed: a late save is refused and recorded, the card shows the state without inputs or buttons
    await h.say(SAM, "review close RV-1")
    card = check_card(await h.click(MARK, "review", {**data, "item-3": "remove"}))
    assert "RV-1 is signoff: decisions can no longer be changed." in texts_of(card)
    assert actions_of(card) == [] and set(inputs(card)) == set() and "refresh" not in card
    assert (await h.events("command.refused"))[-1]["data"]["reason"] == "campaign signoff"
    assert [e["data"]["item"] for e in await h.events("review.decided") if e["actor"] == MARK] == [3, 4]


async def test_twenty_one_items_make_two_cards_each_under_the_limit(teams: TeamsHarness) -> None:
    h = teams
    files = Files(Path(h.app.settings.policy), Path(h.app.settings.directory))

    def many(data: dict) -> None:
        data["users"] += [{"email": f"u{k:02d}@example.com", "name": f"User {k} " + "x" * 150,
                           "title": "t" * 150, "department": "d" * 150, "manager": MARK} for k in range(21)]
        data["groups"]["sg-prod-db-read"] = [f"u{k:02d}@example.com" for k in range(21)]
        data["groups"]["sg-prod-k8s-admin"] = []
    files.edit_directory(many)
    await h.post(h.activity("installation_update_add", MARK))
    await h.say(SAM, f"review start {REVIEW}")
    cards = [check_card(p.card) for p in h.connector.of("send", conversation_id(MARK)) if p.card]
    assert len(cards) == 2
    assert len([k for k in inputs(cards[0]) if k.startswith("item-")]) == reviews_adaptive.PAGE_SIZE
    assert [k for k in inputs(cards[1]) if k.startswith("item-")] == ["item-21"]
    assert cards[1]["refresh"]["action"]["data"]["page"] == 1
    # keep all on the second card decides its item only
    (keep,) = [a["data"] for a in actions_of(cards[1]) if a["data"].get("bulk") == "keep"]
    assert keep["items"] == [21]
    card = check_card(await h.click(MARK, "review", keep))
    assert "keep recorded for 1 item(s) (21)" in texts_of(card)


async def test_another_tenant_gets_403_and_nothing_is_recorded(teams_secured: TeamsHarness) -> None:
    h = teams_secured
    await started(h)
    before = await h.events()
    act = h.activity("invoke_adaptive_card_action", MARK, replyToId="1")
    act["value"]["action"] = {"type": "Action.Execute", "verb": "review",
                              "data": {"review_id": "RV-1", "shown": {}, "item-3": "keep", "item-4": "keep"}}
    status, _ = await h.post(_tenanted(act, FOREIGN, FOREIGN))
    assert status == 403
    assert await h.events() == before


async def test_review_words_answer_with_the_cards_and_escalation_sends_them_to_the_manager(
        teams: TeamsHarness) -> None:
    h = teams
    await started(h)
    status, _ = await h.say(MARK, "review RV-1")  # typed: his batch comes back as cards to decide on
    assert status == 200
    reply = h.connector.of("reply", conversation_id(MARK))[-1]
    assert set(inputs(check_card(reply.card))) == {"item-3", "item-4", "comment"}
    (opened,) = await h.events("review.opened")
    assert opened["data"]["channel"] == "teams"
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "shown": {}, "item-3": "keep"}))
    assert "keep recorded for 1 item(s) (3)" in texts_of(card)

    h.clock.at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # 5 business days: mark's open item goes to pat.lead
    report = await h.app.service.sweep()
    await h.idle()
    assert "RV-1 mark.mgr@example.com → pat.lead@example.com" in report.reviews_escalated
    pat_conv = next(c.conversation for c in h.connector.of("create") if c.body["members"][0]["id"] == AAD[PAT])
    escalated = check_card([p for p in h.connector.of("send", pat_conv) if p.card][-1].card)
    assert "item-4" in set(inputs(escalated))
    assert "item-3" not in set(inputs(escalated))  # decided by mark before the escalation: his, not pat's
    card = check_card(await h.click(PAT, "review", {"review_id": "RV-1", "shown": {}, "item-4": "remove",
                                                    "comment": "no sign-in since January"}))
    assert "remove recorded for 1 item(s) (4)" in texts_of(card)
    assert [(e["actor"], e["data"]["item"]) for e in await h.events("review.decided")] == [(MARK, 3), (PAT, 4)]
