"""The security team's compliance cards in Teams through the stand-in Bot Connector: drift findings and a
paused brake arrive as Adaptive Cards, and their Universal Actions (drift_remove, drift_accept,
resume_removals) run the chat words as the sender in the pinned tenant. Attacks: someone outside the
security team, tampered ids, a double click, a stale count, another tenant."""

from __future__ import annotations

from pathlib import Path

import yaml

from handlers.policy import load_policy
from tests.teams.conftest import AAD, TeamsHarness, conversation_id
from tests.teams.test_hardening import FOREIGN, _tenanted

PAT, BOB, SAM, SASHA = "pat.lead@example.com", "bob@example.com", "sam.sec@example.com", "sasha.sec@example.com"
WAVE = [f"w{i}@example.com" for i in range(5)]


def _edit(h: TeamsHarness, fn) -> None:  # type: ignore[no-untyped-def]
    path = Path(h.app.settings.directory)
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _add(group: str, email: str):  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        data["groups"][group] = [*(data["groups"].get(group) or []), email]
    return change


def _limit(policy: Path, n: int):  # type: ignore[no-untyped-def]
    policy.write_text(policy.read_text() + f"\nsafety: {{max_removals: {n}}}\n")
    return load_policy(policy)


def _verbs(card: dict) -> list[tuple[str, dict]]:
    return [(a["verb"], a["data"]) for a in card.get("actions") or [] if a.get("type") == "Action.Execute"]


def _text(card: dict) -> str:
    return " ".join(b.get("text", "") for b in card["body"] if b.get("type") == "TextBlock")


async def _drift(h: TeamsHarness) -> dict[str, str]:
    for who in (SAM, SASHA, BOB):
        assert (await h.say(who, "help"))[0] == 200  # the conversations the notices go to
    _edit(h, _add("sg-prod-db-read", PAT))
    _edit(h, _add("sg-staging-admin", "alice@example.com"))
    await h.app.service.sweep()
    await h.idle()
    return {e["data"]["user"]: e["data"]["id"] for e in await h.events("drift.detected")}


async def test_drift_cards_and_their_actions(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    found = await _drift(h)
    pat_id, alice_id = found[PAT], found["alice@example.com"]
    cards = [c for c in h.connector.cards() if ("drift_remove", {"finding_id": pat_id}) in _verbs(c)]
    assert len(cards) == 2 and cards[0]["version"] == "1.5"  # sam and sasha, nobody else
    assert PAT in _text(cards[0]) and {b.get("id") for b in cards[0]["body"]} >= {"reason", "duration"}

    # bob is not in the security team: refused and recorded as his (teams, his object id)
    card = await h.click(BOB, "drift_remove", {"finding_id": pat_id, "reason": "mine now"})
    assert "security team only" in _text(card) and not card.get("actions")
    refusal = (await h.events("command.refused"))[-1]
    assert (refusal["actor"], refusal["data"]["command"], refusal["data"]["channel"],
            refusal["data"]["channel_user_id"]) == (BOB, "drift remove", "teams", AAD[BOB])
    # no reason: the card again, with its buttons and a note; tampered ids: no such finding
    card = await h.click(SAM, "drift_remove", {"finding_id": pat_id, "reason": "  "})
    assert "say why" in _text(card) and ("drift_remove", {"finding_id": pat_id}) in _verbs(card)
    card = await h.click(SAM, "drift_remove", {"finding_id": "D-99", "reason": "x"})
    assert "no open drift finding D-99" in _text(card)
    for bad in ({"finding_id": "REQ-1"}, {"finding_id": ["D-1"]}, {}):
        assert "does not name a drift finding" in _text(await h.click(SAM, "drift_remove", {**bad, "reason": "x"}))
    assert PAT in await h.app.deps.providers["directory"].list_members("sg-prod-db-read")

    card = await h.click(SAM, "drift_remove", {"finding_id": pat_id, "reason": "no approval on record"})
    assert f"{pat_id} resolved" in _text(card) and not card.get("actions")
    assert PAT not in await h.app.deps.providers["directory"].list_members("sg-prod-db-read")
    (resolved,) = await h.events("drift.resolved")
    assert (resolved["data"]["id"], resolved["data"]["resolution"], resolved["data"]["by"]) == (pat_id, "removed", SAM)
    (asked,) = await h.events("drift.remove_requested")
    assert (asked["actor"], asked["data"]["channel_user_id"]) == (SAM, AAD[SAM])
    # every member's card of it is edited in place: who removed whom, and no inputs or buttons
    posted = {p.activity_id for p in h.connector.of("send")
              if p.card is not None and ("drift_remove", {"finding_id": pat_id}) in _verbs(p.card)}
    edited = [p for p in h.connector.of("update") if p.activity_id in posted]
    assert len(edited) == 2 and {p.conversation for p in edited} == {conversation_id(SAM), conversation_id(SASHA)}
    for p in edited:
        assert f"{pat_id} resolved: {SAM} removed {PAT}" in _text(p.card) and not p.card.get("actions")
        assert not {b.get("id") for b in p.card["body"]} & {"reason", "duration"}
    # a double click (sasha's card, clicked before it was edited): refused, removed once
    card = await h.click(SASHA, "drift_remove", {"finding_id": pat_id, "reason": "me too"})
    assert "is already resolved" in _text(card)
    assert len(await h.events("membership.removed")) == 1

    # accept runs the same handler as the typed words, and is refused as they are
    typed = await h.app.service.handle_text(await h.app.deps.person(BOB), f"drift accept {alice_id} for 7d because x")
    card = await h.click(BOB, "drift_accept", {"finding_id": alice_id, "duration": "7d",
                                                "reason": "on call this week"})
    shown = _text(card).replace("\\", "")  # the card escapes Markdown: compare the words as read
    assert not typed.ok and typed.text.splitlines()[0] in shown
    # what the boxes hold is judged whole, never read as more words: nothing is filed
    card = await h.click(SAM, "drift_accept", {"finding_id": alice_id, "duration": "1d because all", "reason": "x"})
    assert _text(card).startswith("Refused")
    assert not await h.events("request.submitted")
    assert "alice@example.com" in await h.app.deps.providers["directory"].list_members("sg-staging-admin")
    assert (await h.app.store.verify_audit()).ok


async def test_resume_card_with_the_count_seen(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    for who in (SAM, SASHA):
        assert (await h.say(who, "help"))[0] == 200
    h.app.deps.policy = _limit(Path(h.app.settings.policy), 3)

    def hire(data: dict) -> None:
        for email in WAVE:
            data["users"].append({"email": email, "name": email[:2], "department": "Sales", "active": False})
        data["groups"]["sg-analytics-read"] = list(WAVE)

    _edit(h, hire)
    assert (await h.app.service.sweep(drift=False)).paused == 5
    await h.idle()
    pause = [c for c in h.connector.cards() if any(v == "resume_removals" and {**d, "pause": ""} == {
        "count": 5, "reason": "terminated", "pause": ""} for v, d in _verbs(c))]
    assert len(pause) == 2 and "w0@example.com" in _text(pause[0])
    (shown,) = [d for v, d in _verbs(pause[0]) if v == "resume_removals"]
    assert len(shown["pause"]) == 12  # which removals the card showed

    card = await h.click(BOB, "resume_removals", {"count": 5, "reason": "terminated"})
    assert "security team only" in _text(card)
    for bad in ({"count": "five", "reason": "terminated"}, {"count": 5}, {"count": True, "reason": "terminated"},
                {"count": 5, "reason": "terminated; drop"}, {"count": 5, "reason": "terminated", "pause": "XYZ"},
                {"count": 5, "reason": "terminated", "pause": ["0" * 12]}):
        assert "does not name a pause" in _text(await h.click(SAM, "resume_removals", bad))
    card = await h.click(SAM, "resume_removals", {"count": 4, "reason": "terminated"})  # not the count now
    assert "count changed" in _text(card) and "5" in _text(card)
    card = await h.click(SAM, "resume_removals", {"count": 5, "reason": "ineligible"})  # a pause that is not
    assert "has ended" in _text(card)
    assert await h.events("automation.resumed") == []

    card = await h.click(SAM, "resume_removals", {**shown, "pause": "0" * 12})  # another set of removals
    assert "has ended" in _text(card) and "nothing is resumed" in _text(card)
    assert await h.events("automation.resumed") == []
    card = await h.click(SAM, "resume_removals", shown)
    assert "Resumed" in _text(card) and not card.get("actions")
    card = await h.click(SASHA, "resume_removals", {"count": 5, "reason": "terminated"})  # a second click
    assert "Already resumed" in _text(card)
    (resumed,) = await h.events("automation.resumed")
    assert (resumed["actor"], resumed["data"]["count"], resumed["data"]["channel_user_id"]) == (SAM, 5, AAD[SAM])
    report = await h.app.service.sweep(drift=False)
    assert sorted(report.terminated) == WAVE
    assert await h.app.deps.providers["directory"].list_members("sg-analytics-read") == []


async def test_another_tenant_clicking_is_refused_before_anything(teams_secured: TeamsHarness) -> None:
    h = teams_secured
    found = await _drift(h)
    before = await h.events()
    for verb, data in (("drift_remove", {"finding_id": found[PAT], "reason": "x"}),
                       ("drift_accept", {"finding_id": found[PAT], "duration": "1d", "reason": "x"}),
                       ("resume_removals", {"count": 0, "reason": "terminated"})):
        act = _tenanted(h.activity("invoke_adaptive_card_action", SAM, replyToId="1"), FOREIGN, FOREIGN)
        act["value"]["action"] = {"type": "Action.Execute", "verb": verb, "data": data}
        status, _ = await h.post(act)
        assert status == 403
    assert await h.events() == before
    assert PAT in await h.app.deps.providers["directory"].list_members("sg-prod-db-read")
