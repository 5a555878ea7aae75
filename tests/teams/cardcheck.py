"""Every card checked against the official Adaptive Cards 1.5 schema and the 28 KB limit."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import adaptive_cards
import jsonschema

from cards.adaptive import MAX_CARD_BYTES, size_of


@cache
def validator() -> jsonschema.Draft6Validator:
    path = Path(adaptive_cards.__file__).parent / "schemas" / "schema-1.5.json"
    return jsonschema.Draft6Validator(json.loads(path.read_text()))


def actions_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    return list(card.get("actions") or [])


def texts_of(card: dict[str, Any]) -> str:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "value", "title"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(card.get("body"))
    return "\n".join(out)


def check_card(card: dict[str, Any]) -> dict[str, Any]:
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    errors = sorted(validator().iter_errors(card), key=lambda e: list(e.path))
    assert not errors, errors[0].message
    assert size_of(card) < MAX_CARD_BYTES
    refresh = card.get("refresh")
    if refresh:
        assert refresh["action"]["type"] == "Action.Execute"
        assert len(refresh["userIds"]) <= 60
    for action in actions_of(card):
        if action["type"] == "Action.Execute" and action["verb"] in ("approve", "deny"):
            assert isinstance(action["data"]["request_id"], int)
    return card
