"""The invoke answer the bot writes itself is the SDK's, to the byte: for every card type, what
``AccessBot._create_invoke_response`` gives equals what ``ActivityHandler`` gives by dumping the model in
JSON mode, and the answer activity's value is the SDK model's by-alias dump."""

from __future__ import annotations

import json

import pytest
from microsoft_agents.activity import AdaptiveCardInvokeResponse, InvokeResponse
from microsoft_agents.hosting.core import ActivityHandler

from bot.teams.bot import AccessBot
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
