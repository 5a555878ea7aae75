"""What is posted to the Bot Connector is within the bound the project keeps (SPEC §4.2: 28,672 bytes, so that a
card also fits a connector or webhook post), measured on the whole activity as sent, not on the card alone: the
attachment around the card, the summary and the addressing count too. The stand-in refuses an activity over its
limit as Teams does (413 ``MessageSizeTooBig``)."""

from __future__ import annotations

from cards.adaptive import MAX_ACTIVITY_BYTES, MAX_CARD_BYTES, size_of
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
    assert MAX_CARD_BYTES - 3_000 < size_of(card) < MAX_CARD_BYTES < sent[0].size <= MAX_ACTIVITY_BYTES, sent[0].size
    blocks = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert blocks[-1].startswith("… and ") and "**report drift**" in blocks[-1], blocks[-1]


async def test_the_stand_in_refuses_an_activity_over_its_limit_as_teams_does(teams: TeamsHarness) -> None:
    h = teams
    status, _ = await h.say(SAM, "help")
    assert status == 200
    before = len(h.connector.of("send", conversation_id(SAM)))
    h.connector.max_activity_bytes = 1_000
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(SAM, "drift", f"Drift: D-{i}: x{i}@example.com", None) for i in (1, 2)],
                                 h.clock.now())
    await deliver_pending(h.app.deps)
    await h.idle()
    assert h.connector.of("send", conversation_id(SAM))[before:] == []
