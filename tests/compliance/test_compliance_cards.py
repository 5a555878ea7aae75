"""The compliance notices as Block Kit and Adaptive Cards: buttons with the verbs of the chat words."""

from __future__ import annotations

from cards.adaptive import MAX_CARD_BYTES, size_of
from cards.compliance_adaptive import drift_card, pause_card
from cards.compliance_slack import drift_blocks, drift_message, pause_blocks
from handlers.compliance.views import DriftView, PauseView

DRIFT = DriftView(id="D-7", provider="directory", group="sg-prod-db-read", user="<@U1>pat*@example.com", member=True,
                  first_seen="2026-11-23T08:00:00.000Z")
PAUSE = PauseView(reason="terminated", count=30, limit=25,
                  sample=tuple(f"u{i}@example.com from x/y" for i in range(40)))


def _actions(card: dict) -> list[dict]:
    return card.get("actions") or []


def test_slack_blocks_carry_the_verbs_and_escape_user_text() -> None:
    blocks = drift_blocks(DRIFT)
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("drift_remove", "D-7"), ("drift_accept", "D-7")]
    assert "<@U1>" not in blocks[0]["text"]["text"] and "&lt;@U1&gt;" in blocks[0]["text"]["text"]
    missing = drift_blocks(DriftView(**{**DRIFT.__dict__, "member": False, "request_id": "REQ-3"}))
    assert all(b["type"] != "actions" for b in missing) and "REQ-3" in missing[0]["text"]["text"]
    pause = pause_blocks(PAUSE)
    (button,) = [e for b in pause if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["value"]) == ("resume_removals", "30:terminated")
    assert pause[1]["text"]["text"].count("•") == 10


def test_adaptive_cards_are_1_5_execute_and_small() -> None:
    card = drift_card(DRIFT)
    assert card["version"] == "1.5" and size_of(card) < MAX_CARD_BYTES
    assert [(a["type"], a["verb"], a["data"]) for a in _actions(card)] == [
        ("Action.Execute", "drift_remove", {"finding_id": "D-7"}),
        ("Action.Execute", "drift_accept", {"finding_id": "D-7"})]
    assert {b.get("id") for b in card["body"]} >= {"reason", "duration"}
    pause = pause_card(PAUSE)
    assert [(a["verb"], a["data"]) for a in _actions(pause)] == [
        ("resume_removals", {"count": 30, "reason": "terminated"})]
    assert size_of(pause) < MAX_CARD_BYTES


def test_an_escalated_finding_says_so_and_keeps_its_buttons() -> None:
    late = DriftView(**{**DRIFT.__dict__, "escalated": True})
    message = drift_message(late, "Drift D-7 still open past the SLA")
    assert "past the SLA" in message["blocks"][0]["text"]["text"] and message["text"].startswith("Drift D-7")
    assert [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "drift_remove", "drift_accept"]
    assert "past the SLA" in drift_card(late)["body"][0]["text"] and "past the SLA" not in str(drift_card(DRIFT))
