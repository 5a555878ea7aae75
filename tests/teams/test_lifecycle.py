"""The whole life of requests through Teams alone: real HTTP, real-shaped activities, stand-in connector."""

from __future__ import annotations

from datetime import timedelta

from bot.bootstrap import build_app
from bot.teams import build_channel
from handlers.ports import Notice
from tests.teams.cardcheck import actions_of, check_card, texts_of
from tests.teams.conftest import AAD, TeamsHarness, conversation_id, teams_id

ALICE, BOB, MARK = "alice@example.com", "bob@example.com", "mark.mgr@example.com"
DANA, DEV, SAM, SASHA = "dana.dba@example.com", "dev.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com"


def verbs(card: dict) -> list[str]:
    return [a.get("verb") for a in actions_of(card)]


def all_cards_valid(h: TeamsHarness) -> int:
    cards = h.connector.cards()
    for card in cards:
        check_card(card)
    return len(cards)


async def install(h: TeamsHarness, email: str) -> None:
    status, _ = await h.post(h.activity("installation_update_add", email))
    assert status == 200


async def test_multi_step_chain_deny_with_reason_second_click_and_forgeries(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    await install(h, ALICE)
    assert "I handle privileged access" in h.connector.of("reply", conversation_id(ALICE))[-1].text
    await install(h, SAM)
    h.connector.roster[teams_id(DEV)] = {"id": teams_id(DEV), "name": "Dev DBA", "email": DEV,
                                         "userPrincipalName": DEV, "objectId": "9d0d0000-0000-4000-8000-0000000d0d01"}

    status, _ = await h.say(ALICE, "request prod-db-read for 2h because fix INC-4411")
    assert status == 200
    reply = h.connector.of("reply", conversation_id(ALICE))[-1]
    assert "Your request REQ-1" in texts_of(reply.card) and verbs(reply.card) == []
    # mark never talked to the bot: a personal conversation is created from his directory aad_object_id
    created = h.connector.of("create")
    assert [c.body["members"][0]["id"] for c in created] == [AAD[MARK]]
    mark_card = h.connector.of("send", created[0].conversation)[-1].card
    assert verbs(mark_card) == ["approve", "deny"]
    assert mark_card["actions"][0]["data"] == {"request_id": 1, "round": 0, "step": 1}
    assert any(i.get("id") == "comment" for i in mark_card["body"] if i["type"] == "Input.Text")

    # bob (not in the chain) forges a click on REQ-1: he acts as bob and is refused
    card = await h.click(BOB, "approve", {"request_id": 1, "comment": "sure"})
    assert "There is no request REQ-1 that you can see" in texts_of(card)  # as for one that does not exist
    # sam puts mark's name into the card data: he still acts as sam, who is not on step 1
    card = await h.click(SAM, "approve", {"request_id": "REQ-1", "approver": MARK, "actor": MARK})
    assert verbs(card) == []
    assert await h.events("approval.granted") == []
    refused = await h.events("approval.refused")
    assert [(e["actor"], e["data"]["reason"]) for e in refused] == [(BOB, "not-an-approver"),
                                                                     (SAM, "not-an-approver")]

    # step 1: mark approves from his card; the invoke answer is his updated card, without buttons
    card = await h.click(MARK, "approve", {"request_id": 1, "comment": "ok from mark"})
    assert verbs(card) == [] and "Approved REQ-1" in texts_of(card)
    # a second click by mark: the current state, not a second decision
    card = await h.click(MARK, "approve", {"request_id": 1})
    assert verbs(card) == []
    granted = await h.events("approval.granted")
    assert [(e["actor"], e["data"]["step"], e["data"]["comment"]) for e in granted] == [(MARK, 1, "ok from mark")]

    # step 2 opened: dana gets a card (conversation created); dev is found through the roster when he clicks
    dana_conv = next(c.conversation for c in h.connector.of("create") if c.body["members"][0]["id"] == AAD[DANA])
    assert verbs(h.connector.of("send", dana_conv)[-1].card) == ["approve", "deny"]
    card = await h.click(DEV, "approve", {"request_id": 1})
    assert "Approved REQ-1" in texts_of(card)
    # dana's card was rewritten: step 2 is decided, no buttons for her any more
    assert verbs(h.connector.of("update", dana_conv)[-1].card) == []

    # step 3 (2 of security): sam already talked to the bot, so his stored conversation is used
    sam_card = h.connector.of("send", conversation_id(SAM))[-1].card
    assert verbs(sam_card) == ["approve", "deny"]
    assert sam_card["refresh"]["action"]["verb"] == "refresh" and teams_id(SAM) in sam_card["refresh"]["userIds"]
    card = await h.click(SAM, "approve", {"request_id": 1, "comment": "1 of 2"})
    assert "1 of 2" in texts_of(card) and verbs(card) == []
    card = await h.click(SAM, "approve", {"request_id": 1})
    assert "already" in texts_of(card)

    # deny without a reason re-shows the card asking for one, and decides nothing
    card = await h.click(SASHA, "deny", {"request_id": 1, "comment": "  "})
    assert verbs(card) == ["approve", "deny"]
    box = next(i for i in card["body"] if i.get("id") == "comment")
    assert box["isRequired"] is True and "say why" in texts_of(card).lower()
    assert await h.events("approval.denied") == []
    card = await h.click(SASHA, "deny", {"request_id": 1, "comment": "no prod access this week"})
    assert verbs(card) == [] and "DENIED" in texts_of(card)
    assert (await h.request(1)).state == "denied"
    denied = await h.events("approval.denied")
    assert [(e["actor"], e["data"]["step"], e["data"]["comment"]) for e in denied] == [
        (SASHA, 3, "no prod access this week")]
    # after the decision every approver's card shows the outcome and no buttons
    async with h.app.store.read() as repo:
        sent = await repo.messages("teams", 1, "approval")
    assert {r for r, _, _ in sent} >= {MARK, DANA, SAM, SASHA}
    for recipient, _, address in sent:
        updates = [p for p in h.connector.of("update") if p.activity_id == address["activity_id"]]
        assert updates, recipient
        assert verbs(updates[-1].card) == [] and "DENIED" in texts_of(updates[-1].card), recipient
    # the requester's status card was updated too, and she was told
    status_updates = [p for p in h.connector.of("update", conversation_id(ALICE))]
    assert status_updates and "DENIED" in texts_of(status_updates[-1].card)
    assert any("denied" in p.text for p in h.connector.of("send", conversation_id(ALICE)))
    # a click on the stale card afterwards: the current state
    card = await h.click(DANA, "approve", {"request_id": 1})
    assert verbs(card) == [] and "DENIED" in texts_of(card)
    assert len(await h.events("approval.granted")) == 3
    assert all_cards_valid(h) > 10


async def test_approval_to_active_text_commands_and_security_views(teams: TeamsHarness) -> None:
    h = teams
    await install(h, BOB)
    await h.say(BOB, "request staging-admin for 4h")
    mark_conv = h.connector.of("create")[0].conversation
    assert verbs(h.connector.of("send", mark_conv)[-1].card) == ["approve", "deny"]
    # mark answers in text this time: the same grammar as the console
    await h.post(h.activity("message_personal", MARK, text="approve REQ-1 fine"))
    await h.channel.notifier.idle()
    assert (await h.request(1)).state == "active"
    assert verbs(h.connector.of("update", mark_conv)[-1].card) == []
    assert "ACTIVE" in texts_of(h.connector.of("update", conversation_id(BOB))[-1].card)
    # a refresh by the approver renders the current state for him
    card = await h.click(MARK, "refresh", {"request_id": 1})
    assert verbs(card) == [] and "ACTIVE" in texts_of(card)
    # security views are cards; others are refused
    await h.say(SAM, "pending")
    await h.say(SAM, "who has staging-admin")
    card = h.connector.of("reply", conversation_id(SAM))[-1].card
    assert "REQ-1" in texts_of(card) and BOB in texts_of(card)
    await h.say(SAM, "history bob@example.com")
    await h.say(BOB, "pending")
    assert "security team only" in h.connector.of("reply", conversation_id(BOB))[-1].text
    assert [e["actor"] for e in await h.events("command.refused")] == [BOB]
    await h.say(BOB, "mine")
    await h.say(BOB, "release REQ-1")
    assert (await h.request(1)).state == "released"
    all_cards_valid(h)


async def test_missing_fields_open_a_form_whose_submission_is_validated(teams: TeamsHarness) -> None:
    h = teams
    await h.say(ALICE, "request prod-db-read")
    form = h.connector.of("reply", conversation_id(ALICE))[-1].card
    check_card(form)
    assert verbs(form) == ["request"]
    ids = {i.get("id") for i in form["body"]}
    assert {"profile", "duration", "justification", "ticket"} <= ids
    profile = next(i for i in form["body"] if i.get("id") == "profile")
    assert "prod-db-read" in [c["value"] for c in profile["choices"]]
    # a bad ticket comes back on the form, with the error shown
    card = check_card(await h.click(ALICE, "request", {"profile": "prod-db-read", "duration": "2h",
                                                       "justification": "debugging", "ticket": "JIRA-1"}))
    assert verbs(card) == ["request"] and "does not match" in texts_of(card)
    assert (await h.request(1)) is None
    card = check_card(await h.click(ALICE, "request", {"profile": "prod-db-read", "duration": "2h",
                                                       "justification": "debugging", "ticket": "INC-7"},
                                    reply_to="form-msg-1"))
    assert "REQ-1" in texts_of(card)
    record = await h.request(1)
    assert (record.state, record.ticket, record.requester) == ("pending", "INC-7", ALICE)
    async with h.app.store.read() as repo:
        tracked = await repo.messages("teams", 1, "status")
    assert tracked[0][2]["activity_id"] == "form-msg-1"


async def test_unknown_people_get_a_clear_answer_and_nothing_is_recorded(teams: TeamsHarness) -> None:
    h = teams
    before = len(await h.events())
    act = h.activity("message_personal", "stranger@example.com", text="request staging-admin because x")
    status, _ = await h.post(act)
    assert status == 200
    assert "could not find you" in h.connector.of("reply")[-1].text
    # text naming someone else does not make you them
    act = h.activity("invoke_adaptive_card_action", "stranger@example.com")
    act["value"]["action"]["data"] = {"request_id": 1, "email": ALICE}
    status, body = await h.post(act)
    assert status == 200 and "could not find you" in texts_of(body["value"])
    assert len(await h.events()) == before
    async with h.app.store.read() as repo:
        assert await repo.address("teams", "stranger@example.com") is None


async def test_connector_throttling_is_retried(teams: TeamsHarness) -> None:
    h = teams
    h.connector.fail_next(2, status=429, retry_after=0)
    h.connector.fail_next(1, status=502, retry_after=None)
    await h.say(ALICE, "help")
    replies = h.connector.of("reply", conversation_id(ALICE))
    assert len(replies) == 1
    assert [r.status for r in h.connector.received("POST", "/activities")] == [429, 429, 502, 201]


async def test_conversation_update_greets_and_references_survive_a_restart(teams: TeamsHarness) -> None:
    h = teams
    status, _ = await h.post(h.activity("conversation_update_members_added", DANA))
    assert status == 200
    assert "I handle privileged access" in h.connector.of("send", conversation_id(DANA))[-1].text
    async with h.app.store.read() as repo:
        ref = await repo.address("teams", DANA)
    assert ref["conversation"]["id"] == conversation_id(DANA) and ref["user"]["id"] == teams_id(DANA)
    assert ref["serviceUrl"] == h.connector.url
    # a second process on the same database (a restart) reaches dana through the stored reference
    async with build_app(h.app.settings, clock=h.clock) as app2:
        channel = build_channel(app2)
        await channel.notifier.notify([Notice(DANA, "info", "hello again")])
        await channel.notifier.idle()
    assert h.connector.of("send", conversation_id(DANA))[-1].text == "hello again"
    assert h.connector.of("create") == []


async def test_expiring_card_extends_through_the_chain_and_reminders_escalate(teams: TeamsHarness) -> None:
    h = teams
    for email in (ALICE, BOB, DANA, MARK, SAM):
        await install(h, email)
    await h.say(ALICE, "request analytics-read for 4h")  # auto-approved for an engineer
    assert (await h.request(1)).state == "active"
    h.clock.advance(hours=3, minutes=55)
    await h.app.service.sweep(drift=False)
    await h.channel.notifier.idle()
    [expiring] = [p.card for p in h.connector.of("send", conversation_id(ALICE))
                  if p.card is not None and verbs(p.card) == ["extend"]]
    check_card(expiring)
    assert {"extend_duration", "comment"} <= {i.get("id") for i in expiring["body"]}
    # bob sends alice's request id from a card of his own: he acts as bob, who does not hold it
    before = len(await h.events())
    card = await h.click(BOB, "extend", {"request_id": 1, "extend_duration": "2h", "comment": "mine now"})
    assert "There is no request REQ-1 that you can see." in texts_of(card) and ALICE not in texts_of(card)
    # the attempt is on record as refused; the grant is untouched
    assert [(e['type'], e['actor']) for e in (await h.events())[before:]] == [('command.refused', BOB)]
    card = check_card(await h.click(ALICE, "extend", {"request_id": 1, "extend_duration": "2h",
                                                      "comment": "migration still running"}))
    assert "REQ-1" in texts_of(card)
    requested = [e for e in await h.events("approval.requested") if e["data"].get("extension")]
    assert len(requested) == 1
    # analytics-read's chain is one DBA: dana's approval card asks about the extension
    dana_card = h.connector.of("send", conversation_id(DANA))[-1].card
    assert verbs(dana_card) == ["approve", "deny"]
    card = check_card(await h.click(DANA, "approve", {"request_id": 1}))
    assert verbs(card) == []
    assert len(await h.events("grant.extended")) == 1
    record = await h.request(1)
    assert record.expires_at - record.started_at == timedelta(hours=6)
    # a request nobody answers: mark is reminded after 4 h, the security team is told after 24 h
    await h.say(BOB, "request staging-admin for 1h")
    h.clock.advance(hours=4, minutes=1)
    await h.app.service.sweep(drift=False)
    await h.channel.notifier.idle()
    reminder = h.connector.of("send", conversation_id(MARK))[-1].card
    assert verbs(reminder) == ["approve", "deny"] and "REQ-2" in texts_of(reminder)
    h.clock.advance(hours=20)
    await h.app.service.sweep(drift=False)
    await h.channel.notifier.idle()
    escalation = h.connector.of("send", conversation_id(SAM))[-1]
    assert "REQ-2" in (escalation.text + texts_of(escalation.card or {}))
    assert await h.events("approval.escalated")
    all_cards_valid(h)


async def test_whoever_starts_talking_to_the_bot_is_in_the_next_cards_refresh(teams: TeamsHarness) -> None:
    """A card refreshes for the chain members whose Teams ids the bot knows; ids are kept in memory
    between cards, and someone who has none yet is known from their first message on."""
    h = teams
    await install(h, BOB)
    await h.say(BOB, "request prod-db-read for 1h because INC-9 page")
    card = await h.click(MARK, "refresh", {"request_id": 1})
    assert teams_id(MARK) in card["refresh"]["userIds"] and teams_id(DEV) not in card["refresh"]["userIds"]
    h.connector.roster[teams_id(DEV)] = {"id": teams_id(DEV), "name": "Dev DBA", "email": DEV,
                                         "userPrincipalName": DEV, "objectId": "9d0d0000-0000-4000-8000-0000000d0d01"}
    await h.say(DEV, "help")
    card = await h.click(MARK, "refresh", {"request_id": 1})
    assert teams_id(DEV) in card["refresh"]["userIds"], card["refresh"]
