"""The invoke answer the bot writes itself is the SDK's, to the byte: for every card type, what
``AccessBot._create_invoke_response`` gives equals what ``ActivityHandler`` gives by dumping the model in
JSON mode, and the answer activity's value is the SDK model's by-alias dump."""

from __future__ import annotations

import datetime
import decimal
import json
import math

import pytest
from microsoft_agents.activity import AdaptiveCardInvokeResponse, InvokeResponse
from microsoft_agents.hosting.core import ActivityHandler
from pydantic import BaseModel, ConfigDict, Field

from bot.teams.bot import AccessBot, invoke_json
from bot.teams.invoke import CARD_TYPE
from tests.teams.test_card_fast_path import CARDS


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_answer_is_the_sdk_answer(name: str) -> None:
    card = CARDS[name]()
    for status in (200, 400):
        body = AdaptiveCardInvokeResponse(status_code=status, type=CARD_TYPE, value=card)
        ours = AccessBot._create_invoke_response(body)
        sdk = ActivityHandler._create_invoke_response(body)
        assert ours.status == sdk.status
        assert json.dumps(ours.body, sort_keys=True) == json.dumps(sdk.body, sort_keys=True)
        assert ours.model_dump(by_alias=True, exclude_none=True) == sdk.model_dump(by_alias=True, exclude_none=True)


def test_other_answers_go_the_sdk_way() -> None:
    for body in (None, InvokeResponse(status=200, body={"a": 1}),
                 AdaptiveCardInvokeResponse(status_code=200, type="application/vnd.microsoft.error", value=None)):
        ours = AccessBot._create_invoke_response(body)
        sdk = ActivityHandler._create_invoke_response(body)
        assert ours.model_dump() == sdk.model_dump()


@pytest.mark.parametrize("name", sorted(CARDS)[:3])
def test_answer_activity_value_is_the_models_dump(name: str) -> None:
    card = CARDS[name]()
    for response in (AccessBot._create_invoke_response(AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE,
                                                                                    value=card)),
                     InvokeResponse(status=501), InvokeResponse(body={"x": None}), InvokeResponse()):
        assert AccessBot._answer_value(response) == response.model_dump(by_alias=True, exclude_none=True)


MALFORMED = {  # what the SDK refuses before the bot sees the click, and what it says
    "value missing": (lambda a: a.pop("value"), "BadRequest"),
    "value null": (lambda a: a.__setitem__("value", None), "BadRequest"),
    "value a string": (lambda a: a.__setitem__("value", "approve"), "BadRequest"),
    "action missing": (lambda a: a["value"].pop("action"), "BadRequest"),
    "action a string": (lambda a: a["value"].__setitem__("action", "approve"), "BadRequest"),
    "action not Action.Execute": (lambda a: a["value"]["action"].__setitem__("type", "Action.Submit"), "NotSupported"),
    "verb a number": (lambda a: a["value"]["action"].__setitem__("verb", 5), "BadRequest"),
    "data a list": (lambda a: a["value"]["action"].__setitem__("data", [1, 2]), "BadRequest"),
    "state an object": (lambda a: a["value"].__setitem__("state", {"x": 1}), "BadRequest"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_card_invoke_gets_the_universal_actions_error(teams, case: str) -> None:
    """Answered 400 with the Universal Actions error object (the SDK's answer carried an ``Exception`` that no
    JSON can, and the route fell into aiohttp's bare 500); nothing is decided or recorded."""
    mutate, code = MALFORMED[case]
    act = teams.activity("invoke_adaptive_card_action", "mark.mgr@example.com")
    mutate(act)
    status, body = await teams.post(act)
    await teams.idle()
    assert status == 400, body
    assert body["statusCode"] == 400 and body["type"] == "application/vnd.microsoft.error", body
    assert body["value"]["code"] == code and body["value"]["message"], body
    assert [e for e in await teams.events() if e["type"].startswith(("approval.", "request."))] == []


def test_the_sdks_error_answers_are_written_as_its_json_mode_dump() -> None:
    error = AccessBot._create_adaptive_card_invoke_error_response(None, 400, "BadRequest", "Missing value")  # type: ignore[arg-type]
    response = InvokeResponse(status=400, body=error)  # as the SDK's refusal keeps it: the model, undumped
    value = AccessBot._answer_value(response)
    assert value == {"status": 400, "body": error.model_dump(mode="json", by_alias=True, exclude_none=True)}
    assert value["body"] == {"statusCode": 400, "type": "application/vnd.microsoft.error",
                             "value": {"code": "BadRequest", "message": "Missing value"}}


@pytest.mark.parametrize("value", [
    {"facts": [{"title": "At", "value": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}]},
    {"minutes": decimal.Decimal("1.5")},
    {"ratio": float("nan"), "other": float("-inf")},
    {"ids": {"a"}},
    {"nested": [{"when": datetime.date(2026, 1, 2)}, (1, 2)]},
    {"text": "Zoë — ✔ 日本 \u2028 \U0001f600", "quote": "\"\\\n"},
    {"text": "a lone \ud83d surrogate", "ratio": float("nan")},
], ids=["datetime", "decimal", "nan-inf", "set", "nested", "unicode", "lone-surrogate"])
def test_a_value_that_is_not_plain_json_is_written_as_the_sdk_writes_it(value: dict) -> None:
    """Cards are plain JSON; should one ever carry a datetime, a Decimal, a set or NaN, the answer is still
    JSON, the SDK's JSON-mode form of it (never NaN or Infinity)."""
    body = AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE, value=value)
    ours = json.loads(invoke_json(AccessBot._create_invoke_response(body).body))
    sdk = ActivityHandler._create_invoke_response(body).body
    assert ours == sdk


class _Constants(BaseModel):
    """A model whose own settings write NaN and Infinity as JSON's missing constants."""
    model_config = ConfigDict(ser_json_inf_nan="constants")
    ratio: float = float("nan")
    other: float = float("inf")


class _Aliased(BaseModel):
    count: int = Field(default=1, alias="Count")
    note: str | None = None
    ratio: float = float("-inf")


def _json_value(value: object) -> object:
    """The SDK's JSON-mode dump as JSON can carry it: NaN and Infinity (left in a model's fields) as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _strict(raw: bytes) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


@pytest.mark.parametrize("value", [
    {"m": _Constants()},
    {"m": _Constants(), "text": "a lone \ud83d surrogate"},
    {"m": _Aliased(), "kept": None},
    {"m": [_Aliased()], "text": "\udfff"},
    {"text": "NaN and Infinity as text", "ratio": float("nan")},
], ids=["constants-model", "constants-model-lone-surrogate", "model-none-alias", "model-lone-surrogate",
        "nan-as-text"])
def test_a_model_inside_the_value_is_written_as_json_the_sdk_dump_gives(value: dict) -> None:
    """A model inside the value is dumped by its own settings: one that writes NaN as JSON's missing constant
    put a bare ``NaN`` in a 200 answer, and one beside a lone surrogate failed the answer (NaN left by the
    fallback). Always JSON, the SDK's JSON-mode value (its fields by alias, a None field left out), NaN as null."""
    body = AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE, value=value)
    ours = _strict(invoke_json(AccessBot._create_invoke_response(body).body))
    assert ours == _json_value(ActivityHandler._create_invoke_response(body).body)
