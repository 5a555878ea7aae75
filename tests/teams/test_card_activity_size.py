"""What is posted to the Bot Connector is within the bound the project keeps (SPEC §4.2: 28,672 bytes, so that a
card also fits a connector or webhook post), measured on the whole activity as sent, not on the card alone: the
attachment around the card, the summary and the addressing count too. Bodies are sent as compact JSON in UTF-8
(``wire_json``): text past ASCII counts its UTF-8 bytes; control characters stay six-byte ``\\u`` escapes. The
stand-in measures the raw body and refuses an activity over its limit as Teams does (413 ``MessageSizeTooBig``)."""

from __future__ import annotations

import json
from typing import Any

from bot.teams.connector import cut_wire, wire_json
from bot.teams.identity import CHANNEL
from cards.adaptive import MAX_ACTIVITY_BYTES, MAX_CARD_BYTES, size_of
from handlers.compliance.views import PauseView
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from tests.teams.cardcheck import check_card
from tests.teams.conftest import TeamsHarness, conversation_id

SAM = "sam.sec@example.com"


async def test_a_drift_lines_card_at_the_limit_is_posted_within_it_whole(teams: TeamsHarness) -> None:
    h = teams
    status, _ = await h.say(SAM, "help")
    assert status == 200
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES  # what the project promises, not Teams' own 100 KB
    # each line grows about sixfold as JSON (a control character is written \u0001): more than a card holds
    texts = [f"Drift: D-{i}: " + "\x01" * 220 + f" n{i}@example.com" for i in range(1, 26)]
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(SAM, "drift", t, None) for t in texts], h.clock.now())
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await deliver_pending(h.app.deps) == 25
    await h.idle()
    sent = h.connector.of("send", conversation_id(SAM))[before:]
    assert len(sent) == 1, [p.body for p in sent]
    card = check_card(sent[0].card or {})
    assert MAX_CARD_BYTES - 3_000 < size_of(card) < MAX_CARD_BYTES, size_of(card)
    assert size_of(card) < sent[0].size == len(wire_json(sent[0].body)) <= MAX_ACTIVITY_BYTES, sent[0].size
    blocks = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert blocks[-1].startswith("… and ") and "**report drift**" in blocks[-1], blocks[-1]


async def test_the_stand_in_refuses_an_activity_over_its_limit_as_teams_does(teams: TeamsHarness) -> None:
    h = teams
    status, _ = await h.say(SAM, "help")
    assert status == 200
    before = len(h.connector.of("send", conversation_id(SAM)))
    h.connector.max_activity_bytes = 500
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(SAM, "drift", f"Drift: D-{i}: x{i}@example.com", None) for i in (1, 2)],
                                 h.clock.now())
    await deliver_pending(h.app.deps)
    await h.idle()
    assert h.connector.of("send", conversation_id(SAM))[before:] == []


# -- the bound held on the activity as sent, whatever it carries ----------------------------------------------
async def _stored_address(h: TeamsHarness, email: str) -> dict[str, Any]:
    async with h.app.store.read() as repo:
        ref = await repo.address(CHANNEL, email)
    assert ref is not None
    return ref


async def _save_address(h: TeamsHarness, email: str, ref: dict[str, Any]) -> None:
    async with h.app.store.write() as repo:
        await repo.save_address(CHANNEL, email, ref, h.clock.now())


def _blocks(card: dict[str, Any]) -> list[str]:
    return [b["text"] for b in card["body"] if b["type"] == "TextBlock"]


async def test_drift_lines_of_cjk_text_go_out_whole_in_their_utf8_bytes(teams: TeamsHarness) -> None:
    """Text past ASCII is sent in UTF-8, not as six-byte ``\\u`` escapes: 20 lines of CJK text, a card over the
    bound were each character escaped (and so once shrunk to fewer lines), go out whole, and the body the connector
    reads is as many bytes as the activity was measured."""
    h = teams
    assert (await h.say(SAM, "help"))[0] == 200
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    texts = [f"Drift: D-{i}: " + "漢字" * 115 + f" n{i}@example.com" for i in range(1, 21)]
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(SAM, "drift", t, None) for t in texts], h.clock.now())
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await deliver_pending(h.app.deps) == 20
    await h.idle()
    sent = h.connector.of("send", conversation_id(SAM))[before:]
    assert len(sent) == 1, "not delivered"
    assert sent[0].size == len(wire_json(sent[0].body)) <= MAX_ACTIVITY_BYTES, sent[0].size
    assert sent[0].content_type == "application/json"
    assert len(json.dumps(sent[0].body).encode()) > MAX_ACTIVITY_BYTES  # escaped, the same card was over the bound
    blocks = _blocks(check_card(sent[0].card or {}))
    assert not any(b.startswith("… and ") for b in blocks), blocks[-1]
    assert all(any(t.split(": ", 1)[1] in b for b in blocks) for t in texts)  # every line, whole


async def test_drift_lines_of_emoji_over_the_bound_are_posted_within_it(teams: TeamsHarness) -> None:
    """An emoji is four bytes in UTF-8 (twelve as escapes): lines of them, sent to an address with a long name, past
    what the bound holds are left out until the activity fits, no more than that, and the lines shown are whole."""
    h = teams
    assert (await h.say(SAM, "help"))[0] == 200
    ref = await _stored_address(h, SAM)
    ref["user"]["name"] = "n" * 8_000
    await _save_address(h, SAM, ref)
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    texts = [f"Drift: D-{i}: " + "🔥🚨" * 115 + f" n{i}@example.com" for i in range(1, 26)]
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(SAM, "drift", t, None) for t in texts], h.clock.now())
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await deliver_pending(h.app.deps) == 25
    await h.idle()
    sent = h.connector.of("send", conversation_id(SAM))[before:]
    assert len(sent) == 1, "not delivered"
    assert MAX_ACTIVITY_BYTES - 3_000 < sent[0].size == len(wire_json(sent[0].body)) <= MAX_ACTIVITY_BYTES, sent[0].size
    card = check_card(sent[0].card or {})
    blocks = _blocks(card)
    assert blocks[-1].startswith("… and ") and "**report drift**" in blocks[-1], blocks[-1]
    assert "🔥🚨" * 115 in blocks[1]  # the lines shown are whole


async def test_long_names_in_the_address_leave_fewer_lines_not_a_refused_post(teams: TeamsHarness) -> None:
    """The addressing counts too: the person's and the bot's names, the ids. A card at its own bound, sent to an
    address with long names, is rebuilt with fewer lines."""
    h = teams
    assert (await h.say(SAM, "help"))[0] == 200
    ref = await _stored_address(h, SAM)
    ref["user"]["name"] = "Ünïcödé Sàm " * 40
    ref["bot"]["name"] = "accessbot — the access bot " * 20
    await _save_address(h, SAM, ref)
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    texts = [f"Drift: D-{i}: " + "\x01" * 220 + f" n{i}@example.com" for i in range(1, 26)]
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(SAM, "drift", t, None) for t in texts], h.clock.now())
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await deliver_pending(h.app.deps) == 25
    await h.idle()
    sent = h.connector.of("send", conversation_id(SAM))[before:]
    assert len(sent) == 1, "not delivered"
    assert sent[0].size <= MAX_ACTIVITY_BYTES, sent[0].size
    assert sent[0].body["recipient"]["name"] == ref["user"]["name"]  # the address is sent as it is
    card = check_card(sent[0].card or {})
    assert size_of(card) < MAX_CARD_BYTES - 1_500 and _blocks(card)[-1].startswith("… and "), size_of(card)


def _pause(count: int) -> PauseView:
    return PauseView("terminated", count, 10, tuple(f"user{i}@example.com" for i in range(3)), "p1")


async def test_a_long_summary_past_ascii_is_cut_on_a_character_before_the_card_is(teams: TeamsHarness) -> None:
    h = teams
    assert h.channel is not None
    assert (await h.say(SAM, "help"))[0] == 200
    notifier = h.channel.notifier
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await notifier.send([Notice(SAM, "pause", "x", None, _pause(12))]) == [None]
    short = h.connector.of("send", conversation_id(SAM))[before:][0]
    # names that leave the activity 600 bytes under the bound with a one-letter summary: a summary of 200 characters,
    # most of them four-byte emoji in UTF-8 (725 bytes), takes it past the bound
    ref = await _stored_address(h, SAM)
    ref["user"]["name"] = "n" * (MAX_ACTIVITY_BYTES - short.size - 600)
    await _save_address(h, SAM, ref)
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    summary = "Entfernungen angehalten: " + "🛑" * 300
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await notifier.send([Notice(SAM, "pause", summary, None, _pause(12))]) == [None]
    sent = h.connector.of("send", conversation_id(SAM))[before:]
    assert len(sent) == 1 and MAX_ACTIVITY_BYTES - 100 < sent[0].size <= MAX_ACTIVITY_BYTES, sent[0].size
    cut = sent[0].body["summary"]
    assert cut.endswith("…") and summary.startswith(cut[:-1]) and 40 < len(cut) < 200, cut
    assert sent[0].card == short.card  # the card is whole


async def test_a_lone_surrogate_and_control_characters_are_sent_escaped_in_a_utf8_body(teams: TeamsHarness) -> None:
    """A lone surrogate (half of a UTF-16 pair: no UTF-8 can carry it) does not fail the send: it is written as its
    ``\\u`` escape, as control characters are, and the rest of the body stays UTF-8, measured as sent."""
    h = teams
    assert h.channel is not None
    assert (await h.say(SAM, "help"))[0] == 200
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    text = "Zugriff läuft ab: \ud800 \x07 漢字 🔥 \udfff"
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await h.channel.notifier.send([Notice(SAM, "info", text, None)]) == [None]
    sent = h.connector.of("send", conversation_id(SAM))[before:]
    assert len(sent) == 1 and sent[0].text == text, sent
    assert sent[0].size == len(wire_json(sent[0].body)) and sent[0].content_type == "application/json"
    assert wire_json(text) == '"Zugriff läuft ab: \\ud800 \\u0007 漢字 🔥 \\udfff"'.encode()


def test_the_body_is_compact_utf8_json_and_texts_are_cut_in_its_bytes() -> None:
    body = {"a": ["漢字 🔥", "\x01\n\"\\", 1.5, None, True], "ü": {"k": "\u2028"}}
    assert wire_json(body) == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert json.loads(wire_json({"t": "a\ud800b"})) == {"t": "a\ud800b"}  # nothing lost
    cut = cut_wire("漢" * 10, 3)  # 30 bytes, cut by 3 or more: "…" takes 3 of its own
    assert cut == "漢" * 8 + "…" and len(wire_json(cut)) - 2 <= 27


async def test_an_activity_that_cannot_fit_is_not_sent_and_the_send_says_which_rule(teams: TeamsHarness) -> None:
    """Addressing alone past the bound: nothing the connector would refuse is sent; the notice fails as an
    undeliverable one does (the outbox tries again, then records it), naming the rule."""
    h = teams
    assert h.channel is not None
    assert (await h.say(SAM, "help"))[0] == 200
    ref = await _stored_address(h, SAM)
    ref["user"]["name"] = "n" * MAX_ACTIVITY_BYTES
    await _save_address(h, SAM, ref)
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    before = len(h.connector.posted)
    outcome = await h.channel.notifier.send([Notice(SAM, "pause", "Removals paused", None, _pause(12)),
                                             Notice(SAM, "info", "A plain notice", None)])
    assert all(o is not None and o.startswith("TooLarge: activity-size: ") for o in outcome), outcome
    assert h.connector.posted[before:] == []


async def test_a_reply_is_measured_as_the_turn_sends_it(teams: TeamsHarness) -> None:
    """A card answering a command is addressed to the one who wrote, with the name their activity carried: a reply
    just over the bound has its summary cut, and is sent."""
    h = teams
    first = h.activity("message_personal", SAM, text="xyzzy")
    status, _ = await h.post(first)
    await h.idle()
    assert status == 200
    short = h.connector.of("reply", conversation_id(SAM))[-1]
    assert short.body.get("summary") == "I did not understand that." and short.card is not None
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    again = h.activity("message_personal", SAM, text="xyzzy")
    name = "n" * (len(first["from"]["name"]) + MAX_ACTIVITY_BYTES - short.size + 12)  # 12 bytes over the bound
    again["from"]["name"] = name
    before = len(h.connector.of("reply", conversation_id(SAM)))
    status, _ = await h.post(again)
    await h.idle()
    assert status == 200
    sent = h.connector.of("reply", conversation_id(SAM))[before:]
    assert len(sent) == 1 and sent[0].size == len(wire_json(sent[0].body)) <= MAX_ACTIVITY_BYTES, [p.size for p in sent]
    assert sent[0].content_type == "application/json"  # a turn's reply is written by the same session
    assert sent[0].body["recipient"]["name"] == name and sent[0].card == short.card
    assert sent[0].body["summary"].endswith("…") and len(sent[0].body["summary"]) < len(short.body["summary"])


# -- every card that can grow is rebuilt smaller, not refused -------------------------------------------------
ALICE = "alice@example.com"
MARK = "mark.mgr@example.com"


async def test_a_list_reply_over_the_bound_shows_fewer_rows_and_says_how_many_more(teams: TeamsHarness) -> None:
    """`mine` answered in a conversation whose addressing leaves little room: rows are left out until the reply
    fits, and the card says how many and which command shows each."""
    h = teams
    for text in ("request prod-db-read for 2h because INC-4411 " + "調査のため" * 300,
                 "request staging-admin for 4h because " + "検証のため" * 300):
        assert (await h.say(ALICE, text))[0] == 200
    assert (await h.say(ALICE, "mine"))[0] == 200
    whole = h.connector.of("reply", conversation_id(ALICE))[-1]
    rows = [t for t in _blocks(whole.card or {}) if t.startswith("**REQ-")]
    assert len(rows) == 2 and not _blocks(whole.card or {})[-1].startswith("… and "), _blocks(whole.card or {})
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    again = h.activity("message_personal", ALICE, text="mine")
    again["from"]["name"] = "n" * (len(ALICE) + MAX_ACTIVITY_BYTES - whole.size + 40)  # 40 bytes over the bound
    before = len(h.connector.of("reply", conversation_id(ALICE)))
    assert (await h.post(again))[0] == 200
    await h.idle()
    sent = h.connector.of("reply", conversation_id(ALICE))[before:]
    assert len(sent) == 1 and sent[0].size == len(wire_json(sent[0].body)) <= MAX_ACTIVITY_BYTES, [p.size for p in sent]
    card = check_card(sent[0].card or {})
    blocks = _blocks(card)
    assert [t for t in blocks if t.startswith("**REQ-")] == rows[:1], blocks
    assert blocks[-1] == "… and 1 more: **status REQ-n** shows one, the CLI lists them all.", blocks[-1]


async def test_a_status_card_update_over_the_bound_is_sent_with_shorter_text(teams: TeamsHarness) -> None:
    """The requester's status card, edited as the request moves, carries the justification: its update to an
    address with long names is over the bound as it was sent, and goes out with the texts cut shorter (on a whole
    character) rather than not at all."""
    h = teams
    asked = h.activity("message_personal", ALICE, text="request prod-db-read for 2h because INC-4411 "
                       + "本番障害の調査のため" * 190)
    asked["from"]["name"] = "n" * 25_400  # kept with the status card's address
    assert (await h.post(asked))[0] == 200
    await h.idle()
    h.connector.max_activity_bytes = MAX_ACTIVITY_BYTES
    first = h.connector.of("reply", conversation_id(ALICE))[-1]
    assert first.size <= MAX_ACTIVITY_BYTES and "Your request REQ-1" in " ".join(_blocks(first.card or {}))
    await h.click(MARK, "approve", {"request_id": 1, "comment": "ok"})
    updates = h.connector.of("update", conversation_id(ALICE))
    assert updates, "the status card was left stale"
    assert updates[-1].size == len(wire_json(updates[-1].body)) <= MAX_ACTIVITY_BYTES
    card = check_card(updates[-1].card or {})
    facts = {f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]}
    shown = facts["Justification"]
    typed = "INC-4411 " + "本番障害の調査のため" * 190
    whole = updates[-1].size - len(wire_json(shown)) + len(wire_json(typed))
    assert whole > MAX_ACTIVITY_BYTES, whole  # with the justification whole, the update was over the bound
    assert shown.endswith("…") and typed.startswith(shown[:-1]) and len(shown) < 400, shown
