"""Teams re-sends an activity (same ``id``) when the bot's first answer was slow: it is handled once.

Teams re-sends a message or invoke activity, byte for byte and with the same activity id, when the bot
has not answered it within about 15 seconds (MicrosoftDocs/msteams-docs#6084, botbuilder-dotnet#5005).
A `review start` reads every member of the groups in scope at the identity provider (attributes,
manager, last sign-in): on a real tenant that easily takes longer than Teams waits. The route remembers
every activity id it handled (``seen_events``, as the Slack route does) and carries a repeat out no more.

Real HTTP into ``/api/messages`` as ``accessbot serve`` mounts it (secured mode: Bot Framework tokens,
pinned tenant), the Bot Connector stand-in, the real store.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from microsoft_agents.activity import Activity

from bot.teams import ALREADY_DONE, seen_key
from tests.reviews.test_start import REVIEW, staff
from tests.support import Files
from tests.teams.cardcheck import texts_of
from tests.teams.conftest import TeamsHarness, conversation_id

ALICE, SAM = "alice@example.com", "sam.sec@example.com"


async def _deliver_twice(h: TeamsHarness, activity: dict) -> None:
    """The activity, then Teams' redelivery of it: the same bytes, the same activity id, a valid token."""
    first = copy.deepcopy(activity)
    status, _ = await h.post(first)
    assert status == 200
    await h.idle()
    status, _ = await h.post(copy.deepcopy(activity))
    assert status == 200
    await h.idle()


async def test_a_redelivered_review_start_starts_one_campaign(teams_secured: TeamsHarness) -> None:
    """One `review start` message delivered twice (same activity id, valid token) starts one campaign, RV-1."""
    h = teams_secured
    staff(Files(Path(h.app.settings.policy), Path(h.app.settings.directory)))
    status, _ = await h.post(h.activity("message_personal", ALICE, id="act-req-1",
                                        text="request prod-db-read for 30m because INC-7 page"))
    assert status == 200
    await h.idle()
    cards_before = len(h.connector.cards())

    start = h.activity("message_personal", SAM, id="act-review-start-1", text=f"review start {REVIEW}")
    await _deliver_twice(h, start)

    started = await h.events("review.started")
    # one message from the security team starts one campaign; the redelivery must not start RV-2
    assert [e["data"]["review_id"] for e in started] == ["RV-1"], (
        f"one `review start` activity (id act-review-start-1) delivered twice started {len(started)} campaigns "
        f"({[e['data']['review_id'] for e in started]}); {len(h.connector.cards()) - cards_before} cards were sent "
        "since (every reviewer got the batch twice)")


async def test_a_redelivered_request_is_not_refused_and_recorded_as_a_refusal(teams_secured: TeamsHarness) -> None:
    """The requester's one message, delivered twice: REQ-1 submitted once, and the redelivery is neither answered
    'Refused (already-pending)' nor recorded as a `request.refused` the person never asked for."""
    h = teams_secured
    ask = h.activity("message_personal", ALICE, id="act-req-42",
                     text="request prod-db-read for 2h because INC-42 investigating")
    await _deliver_twice(h, ask)
    submitted = await h.events("request.submitted")
    assert len(submitted) == 1
    refused = await h.events("request.refused")
    assert refused == [], f"the redelivered activity was handled again and recorded: {refused}"


def _click(h: TeamsHarness, email: str, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    act = h.activity("invoke_adaptive_card_action", email, replyToId="1763884850123")
    act["value"]["action"] = {"type": "Action.Execute", "verb": verb, "data": data}
    return act


async def _post_card(h: TeamsHarness, act: dict[str, Any]) -> dict[str, Any]:
    status, body = await h.post(copy.deepcopy(act))
    await h.idle()
    assert status == 200, body
    assert body["statusCode"] == 200, body
    return body


async def test_a_redelivered_card_click_is_answered_with_the_current_card(teams_secured: TeamsHarness) -> None:
    """A re-sent Approve click decides nothing again and records nothing again (not even a refusal): its answer
    is the card as it stands now, as a refresh of that card would show it."""
    h = teams_secured
    status, _ = await h.say(ALICE, "request prod-db-read for 2h because INC-42 investigating")
    assert status == 200
    forged = _click(h, SAM, "approve", {"request_id": 1})  # sam is not on step 1: refused, and recorded once
    await _post_card(h, forged)
    await _post_card(h, forged)
    assert [e["actor"] for e in await h.events("approval.refused")] == [SAM]

    click = _click(h, "mark.mgr@example.com", "approve", {"request_id": 1, "comment": "ok"})
    first = await _post_card(h, click)
    again = await _post_card(h, click)
    assert [e["actor"] for e in await h.events("approval.granted")] == ["mark.mgr@example.com"]
    assert again["type"] == first["type"] == "application/vnd.microsoft.card.adaptive"
    assert "REQ-1" in texts_of(again["value"]) and not any(
        a.get("verb") in ("approve", "deny") for a in again["value"].get("actions", []))
    assert [e["actor"] for e in await h.events("approval.refused")] == [SAM]


async def test_a_redelivered_form_submit_submits_one_request(teams_secured: TeamsHarness) -> None:
    """A re-sent request form submit (it names no request yet) submits nothing again: the answer is a Universal
    Actions message saying so, which leaves the card as it is."""
    h = teams_secured
    submit = _click(h, ALICE, "request", {"profile": "prod-db-read", "duration": "2h",
                                          "justification": "INC-42 investigating"})
    first = await _post_card(h, submit)
    assert first["type"] == "application/vnd.microsoft.card.adaptive"
    again = await _post_card(h, submit)
    assert again == {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": ALREADY_DONE}
    assert len(await h.events("request.submitted")) == 1
    assert await h.events("request.refused") == []


async def test_refreshes_and_activities_without_an_id_are_handled_every_time(teams: TeamsHarness) -> None:
    """A card refresh only reads: the same one twice gets the card twice. An activity without an id cannot be
    told from another: each is handled, as before activity ids were remembered."""
    h = teams
    status, _ = await h.say(ALICE, "request prod-db-read for 2h because INC-42 investigating")
    assert status == 200
    refresh = _click(h, "mark.mgr@example.com", "refresh", {"request_id": 1})
    for _ in range(2):
        body = await _post_card(h, refresh)
        assert body["type"] == "application/vnd.microsoft.card.adaptive" and "REQ-1" in texts_of(body["value"])
    said = len(h.connector.of(None, conversation_id(ALICE)))
    anonymous = h.activity("message_personal", ALICE, text="help")
    anonymous.pop("id")
    for _ in range(2):
        status, _ = await h.post(copy.deepcopy(anonymous))
        assert status == 200
        await h.idle()
    assert len(h.connector.of(None, conversation_id(ALICE))) == said + 2


def test_the_key_of_a_long_conversation_is_its_digest_never_a_cut() -> None:
    """Keys fit the store's 200-character column; two activities of one very long conversation id keep two keys."""
    long_conversation = {"id": "19:" + "x" * 300 + "@thread.tacv2", "tenantId": "t"}
    keys = {seen_key(Activity.model_validate({"type": "message", "id": str(n), "conversation": long_conversation}))
            for n in (1, 2)}
    assert len(keys) == 2 and all(k is not None and len(k) <= 200 for k in keys)
    assert seen_key(Activity.model_validate({"type": "message", "conversation": {"id": "a:1"}})) is None
    short = seen_key(Activity.model_validate({"type": "message", "id": "7", "conversation": {"id": "a:1"}}))
    assert short == "teams:act:a:1:7"


async def test_a_message_whose_first_turn_failed_before_recording_anything_is_handled_on_its_resend(
        teams_secured: TeamsHarness) -> None:
    """The Bot Connector answered the bot's reply with errors, so the turn failed (500) having recorded nothing:
    Teams re-sends the activity, and the re-send is answered as the first delivery should have been (it is not
    taken for a repeat and dropped, which left the person with no answer at all)."""
    h = teams_secured
    status, _ = await h.say(ALICE, "request prod-db-read for 2h because INC-42 investigating")
    assert status == 200
    h.connector.fail_path("/activities", status=500)
    mine = h.activity("message_personal", ALICE, id="act-mine-1", text="mine")
    status, _ = await h.post(copy.deepcopy(mine))
    assert status == 500
    await h.idle()
    h.connector.clear_path_faults()
    said = len(h.connector.of(None, conversation_id(ALICE)))
    status, _ = await h.post(copy.deepcopy(mine))
    assert status == 200
    await h.idle()
    answers = h.connector.of(None, conversation_id(ALICE))[said:]
    assert answers and any("REQ-1" in (a.text + str(a.card)) for a in answers), (
        "the re-send of a message whose first turn failed was dropped as a repeat: "
        f"{[a.text for a in answers]}")
    status, _ = await h.post(copy.deepcopy(mine))  # handled now: a further re-send is a repeat
    await h.idle()
    assert len(h.connector.of(None, conversation_id(ALICE))) == said + len(answers)


async def test_a_message_whose_failed_turn_recorded_something_stays_handled(teams_secured: TeamsHarness) -> None:
    """A request submitted (and recorded) before the reply failed: the re-send is a repeat, so REQ-1 is not
    submitted again nor refused as already pending."""
    h = teams_secured
    h.connector.fail_path("/activities", status=500)
    ask = h.activity("message_personal", ALICE, id="act-req-9",
                     text="request prod-db-read for 2h because INC-42 investigating")
    status, _ = await h.post(copy.deepcopy(ask))
    await h.idle()
    h.connector.clear_path_faults()
    assert len(await h.events("request.submitted")) == 1, status
    status, _ = await h.post(copy.deepcopy(ask))
    assert status == 200
    await h.idle()
    assert len(await h.events("request.submitted")) == 1
    assert await h.events("request.refused") == []
