"""The conversation reference a turn saves is made again whenever anything it is made of changed."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from microsoft_agents.activity import Activity

from bot.teams.identity import References, conversation_reference


def activity(**changes: Any) -> Activity:
    body: dict[str, Any] = {
        "type": "invoke", "name": "adaptiveCard/action", "id": "a-1", "channelId": "msteams",
        "serviceUrl": "https://smba.trafficmanager.net/emea/", "locale": "en-GB",
        "from": {"id": "29:1abc", "name": "Mark", "aadObjectId": "00000000-0000-0000-0000-00000000000a"},
        "recipient": {"id": "28:bot", "name": "accessbot"},
        "conversation": {"id": "a:personal-1", "conversationType": "personal", "tenantId": "tenant-1"},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return Activity.model_validate(body)


def turn(**changes: Any) -> Any:
    return SimpleNamespace(activity=activity(**changes))


def test_an_unchanged_conversation_gives_the_reference_it_gave_before() -> None:
    refs = References()
    first = refs.of(turn())
    assert first == conversation_reference(turn())
    assert refs.of(turn(id="a-2")) is first  # another activity of the same conversation, nothing else changed


@pytest.mark.parametrize("changes", [
    {"from": {"name": "Mark Manager"}},
    {"from": {"aadObjectId": "00000000-0000-0000-0000-00000000000b"}},
    {"recipient": {"name": "accessbot (new)"}},
    {"conversation": {"tenantId": "tenant-2"}},
    {"serviceUrl": "https://smba.trafficmanager.net/amer/"},
    {"locale": "de-DE"},
    {"channelId": "msteams:COPILOT"},
])
def test_any_change_makes_the_reference_again(changes: dict[str, Any]) -> None:
    refs = References()
    first = refs.of(turn())
    again = refs.of(turn(**changes))
    assert again == conversation_reference(turn(**changes))
    assert again != first


def test_each_conversation_keeps_its_own() -> None:
    refs = References()
    personal = refs.of(turn())
    other = refs.of(turn(conversation={"id": "a:personal-2"}))
    assert other["conversation"]["id"] == "a:personal-2"
    assert refs.of(turn()) is personal


def test_a_full_memo_starts_again() -> None:
    refs = References(size=2)
    for n in range(5):
        ref = refs.of(turn(conversation={"id": f"a:c-{n}"}))
        assert ref["conversation"]["id"] == f"a:c-{n}"
    assert len(refs._made) <= 2


@pytest.mark.parametrize("first,then", [
    ({"from": {"userRole": 1}}, {"from": {"userRole": True}}),
    ({"from": {"x": {"n": 1.0}}}, {"from": {"x": {"n": 1}}}),
    ({"recipient": {"x": 0}}, {"recipient": {"x": False}}),
    ({"conversation": {"properties": {"k": 1.0}}}, {"conversation": {"properties": {"k": 1}}}),
], ids=["extra bool after int", "nested float then int", "bot extra false after 0", "conversation properties"])
def test_values_of_no_declared_type_are_never_taken_for_the_last_ones(first: dict[str, Any], then: dict[str, Any]
                                                                      ) -> None:
    """``1 == 1.0 == True`` in Python: an account's undeclared fields or a conversation's properties that changed
    type only still make the reference again, so what is saved says what the activity said."""
    refs = References()
    refs.of(turn(**first))
    again = refs.of(turn(**then))
    assert again == conversation_reference(turn(**then))
    assert json.dumps(again) == json.dumps(conversation_reference(turn(**then)))
