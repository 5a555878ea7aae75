"""A card click's turn without the adapter's pipeline (bot/teams/card_turn.py) answers as the pipeline does,
and the pipeline is taken whenever it would add something: middleware, another kind of activity."""

from __future__ import annotations

import copy
import itertools
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import ChannelServiceAdapter, ClaimsIdentity, TurnContext

from bot.teams.bot import AccessBot
from bot.teams.card_turn import direct, telemetry_off
from tests.teams.conftest import AAD, APP_ID, TeamsHarness
from tests.teams.test_invoke_wire import MALFORMED

ALICE, MARK, BOB = "alice@example.com", "mark.mgr@example.com", "bob@example.com"


class Recording:
    """Middleware that only notes the activities the adapter's pipeline ran."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_turn(self, context: TurnContext, logic: Callable[[TurnContext], Awaitable[Any]]) -> None:
        self.seen.append(str(context.activity.id))
        await logic(context)


async def both_ways(h: TeamsHarness, activity: dict[str, Any]) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """The answer without the pipeline, then the answer to the same click (another activity id) through it."""
    assert h.channel is not None
    middleware = Recording()
    direct_answer = await h.post(copy.deepcopy(activity))
    again = copy.deepcopy(activity)
    again["id"] = f"{activity['id']}-again"
    h.channel.adapter.use(middleware)
    try:
        piped = await h.post(again)
    finally:
        h.channel.adapter.middleware_set._middleware.remove(middleware)
    assert middleware.seen == [again["id"]]  # the second went through the pipeline, the first did not
    return direct_answer, piped


def click(h: TeamsHarness, email: str, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    act = h.activity("invoke_adaptive_card_action", email, replyToId="1763884850123")
    act["value"]["action"] = {"type": "Action.Execute", "verb": verb, "data": data}
    return act


async def test_a_card_click_answers_as_the_pipeline_answers(teams: TeamsHarness) -> None:
    h = teams
    status, _ = await h.say(ALICE, "request prod-db-read for 2h because fix INC-4411")
    assert status == 200
    for email, verb, data in ((MARK, "refresh", {"request_id": 1}), (ALICE, "refresh", {"request_id": 1}),
                              (BOB, "refresh", {"request_id": 1}), (BOB, "approve", {"request_id": 1}),
                              (MARK, "refresh", {"request_id": 99}), (MARK, "frobnicate", {"request_id": 1}),
                              (MARK, "refresh", {"request_id": "REQ-1", "round": "x"})):
        direct_answer, piped = await both_ways(h, click(h, email, verb, data))
        await h.idle()
        assert direct_answer == piped, (email, verb, data)
        assert direct_answer[0] == 200
    # a decision taken without the pipeline is the decision: the next card, through the pipeline, shows it
    direct_answer = await h.post(click(h, MARK, "approve", {"request_id": 1, "comment": "ok"}))
    await h.idle()
    assert direct_answer[0] == 200 and "Approved REQ-1" in str(direct_answer[1])
    assert [e["actor"] for e in await h.events("approval.granted")] == [MARK]
    direct_answer, piped = await both_ways(h, click(h, MARK, "refresh", {"request_id": 1}))
    assert direct_answer == piped
    refused = await h.events("approval.refused")
    assert [(e["actor"], e["data"]["reason"]) for e in refused] == [(BOB, "not-an-approver")] * 2


async def test_a_malformed_click_gets_the_pipelines_error(teams: TeamsHarness) -> None:
    for case, (mutate, _) in sorted(MALFORMED.items()):
        act = teams.activity("invoke_adaptive_card_action", MARK)
        mutate(act)
        direct_answer, piped = await both_ways(teams, act)
        assert direct_answer == piped, case
        assert direct_answer[0] == 400, case


def test_only_a_card_click_without_middleware_or_telemetry_skips_the_pipeline(teams: TeamsHarness) -> None:
    assert teams.channel is not None
    adapter, bot = teams.channel.adapter, teams.channel.bot
    anonymous = ClaimsIdentity({})
    card = Activity(type="invoke", name="adaptiveCard/action", value={})
    assert telemetry_off()
    # failing here after an SDK upgrade or a change to AccessBot.on_invoke_activity: review card_turn against the
    # new code (card_turn.PIPELINE), then record its digest in card_turn.REVIEWED
    assert direct(adapter, bot, anonymous, card)
    assert not direct(adapter, bot, anonymous, Activity(type="message", text="hi"))
    assert not direct(adapter, bot, anonymous, Activity(type="invoke", name="signin/verifyState"))
    agent = ClaimsIdentity({"aud": "app-1", "azp": "app-2", "ver": "1.0", "appid": "app-2"})
    assert agent.is_agent_claim()  # a call from another agent: the adapter marks its caller
    assert not direct(adapter, bot, agent, card)
    replies = Activity(type="invoke", name="adaptiveCard/action", value={}, delivery_mode="expectReplies")
    assert not direct(adapter, bot, anonymous, replies)  # the pipeline answers with every reply buffered
    middleware = Recording()
    adapter.use(middleware)
    try:
        assert not direct(adapter, bot, anonymous, card)
    finally:
        adapter.middleware_set._middleware.remove(middleware)


async def test_a_turn_error_handler_takes_the_pipeline(teams: TeamsHarness) -> None:
    """An adapter with ``on_turn_error`` hands a failed turn to it (the pipeline's ``run_pipeline``); a card
    click's turn without the pipeline would raise past it. Here the store refuses the decision's write."""
    h = teams
    assert h.channel is not None
    status, _ = await h.say(ALICE, "request prod-db-read for 2h because fix INC-4411")
    assert status == 200
    handled: list[str] = []

    async def on_turn_error(context: TurnContext, error: Exception) -> None:
        handled.append(type(error).__name__)

    h.channel.adapter.on_turn_error = on_turn_error
    assert not direct(h.channel.adapter, h.channel.bot, ClaimsIdentity({}),
                      Activity(type="invoke", name="adaptiveCard/action", value={}))
    path = h.app.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON decisions BEGIN SELECT RAISE(ABORT, 'refused'); END")
    try:
        status, _ = await h.post(click(h, MARK, "approve", {"request_id": 1}))
    finally:
        h.channel.adapter.on_turn_error = None
        with sqlite3.connect(path) as db:
            db.execute("DROP TRIGGER refuse")
    assert handled == ["IntegrityError"]
    assert status == 501  # the handler wrote no answer: the adapter's own
    assert await h.events("approval.granted") == []


class OwnTurn(CloudAdapter):
    """An adapter whose turn is not the SDK's."""

    async def process_activity(self, claims_identity: ClaimsIdentity, activity: Activity,
                               callback: Callable[[TurnContext], Awaitable[Any]]) -> Any:
        return await super().process_activity(claims_identity, activity, callback)


def test_code_the_fast_path_was_not_reviewed_against_takes_the_pipeline(teams: TeamsHarness,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another SDK release (its pipeline's code changed), an adapter or a bot overriding part of the turn: the
    fast path is equivalent to the code it was reviewed against only, so everything else takes the pipeline."""
    assert teams.channel is not None
    adapter, bot = teams.channel.adapter, teams.channel.bot
    anonymous = ClaimsIdentity({})
    card = Activity(type="invoke", name="adaptiveCard/action", value={})
    assert direct(adapter, bot, anonymous, card)
    assert not direct(OwnTurn(channel_service_client_factory=teams.channel.clients), bot, anonymous, card)

    class OwnBot(AccessBot):
        async def on_turn(self, turn_context: TurnContext) -> None:
            await super().on_turn(turn_context)

    assert not direct(adapter, OwnBot(teams.app, teams.channel.notifier), anonymous, card)
    original = ChannelServiceAdapter._process_turn_results

    def changed(self: ChannelServiceAdapter, context: TurnContext) -> Any:  # a release that answers otherwise
        return original(self, context)

    monkeypatch.setattr(ChannelServiceAdapter, "_process_turn_results", changed)
    assert not direct(adapter, bot, anonymous, card)
    monkeypatch.undo()
    assert direct(adapter, bot, anonymous, card)


def test_a_telemetry_provider_sends_card_clicks_through_the_pipeline() -> None:
    """Once a tracer provider is set (an operator's OpenTelemetry), the SDK's spans are recorded: every turn
    takes the pipeline. In a process of its own: a provider cannot be unset."""
    import subprocess
    import sys

    code = ("from opentelemetry import trace\n"
            "from opentelemetry.sdk.trace import TracerProvider\n"
            "from bot.teams.card_turn import telemetry_off\n"
            "assert telemetry_off()\n"
            "trace.set_tracer_provider(TracerProvider())\n"
            "assert not telemetry_off()\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(activity: dict[str, Any]) -> None:
        node = activity
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


HOSTILE: dict[str, Callable[[dict[str, Any]], None]] = {
    "another user's aadObjectId": _set(("from", "aadObjectId"), AAD[ALICE]),
    "no aadObjectId": lambda a: a["from"].pop("aadObjectId"),
    "no from": lambda a: a.pop("from"),
    "from empty": _set(("from",), {}),
    "from name huge": _set(("from", "name"), "x" * 100_000),
    "from name lone surrogate": _set(("from", "name"), "\ud800"),
    "no conversationType": lambda a: a["conversation"].pop("conversationType"),
    "a group": _set(("conversation", "isGroup"), True),
    "conversation id odd": _set(("conversation", "id"), "a:\u202e\u0000\ufeff" + "é" * 20_000),
    "verb null": _set(("value", "action", "verb"), None),
    "verb a list": _set(("value", "action", "verb"), ["approve"]),
    "verb lone surrogate": _set(("value", "action", "verb"), "\udc00"),
    "data nested deep": _set(("value", "action", "data"), {"request_id": 1, "x": _nested(300)}),
    "data text": _set(("value", "action", "data"), "x"),
    "request id true": _set(("value", "action", "data", "request_id"), True),
    "request id huge": _set(("value", "action", "data", "request_id"), 10**400),
    "request id arabic digit": _set(("value", "action", "data", "request_id"), "١"),
    "delivery stream": _set(("deliveryMode",), "stream"),
    "delivery notification": _set(("deliveryMode",), "notification"),
    "callerId of an agent": _set(("callerId",), "urn:botframework:aadappid:another-app"),
    "relatesTo elsewhere": _set(("relatesTo",), {"conversation": {"id": "x"}, "serviceUrl": "https://elsewhere/"}),
    "another bot": _set(("recipient", "id"), "28:another-bot"),
}


def _signed(h: TeamsHarness, activity: dict[str, Any], **claims: Any) -> str:
    assert h.issuer is not None
    now = int(time.time())
    return jwt.encode({"iss": h.issuer.ISSUER, "aud": APP_ID, "serviceurl": activity["serviceUrl"], "nbf": now - 60,
                       "iat": now - 60, "exp": now + 3600, **claims},
                      h.issuer.key, algorithm="RS256", headers={"kid": h.issuer.kid})


async def test_hostile_clicks_in_secured_mode_answer_as_the_pipeline_answers(teams_secured: TeamsHarness) -> None:
    """Secured mode (Bot Framework tokens, one tenant): malformed and hostile clicks, and tokens of other shapes
    (an agent's call, whose turn the adapter marks, takes the pipeline both times), get the same status and body
    without the pipeline as through it."""
    h = teams_secured
    assert h.channel is not None
    status, _ = await h.say(ALICE, "request prod-db-read for 2h because fix INC-4411")
    assert status == 200
    for (email, verb), (case, mutate) in itertools.product(((MARK, "refresh"), (BOB, "approve")), HOSTILE.items()):
        act = click(h, email, verb, {"request_id": 1})
        mutate(act)
        direct_answer, piped = await both_ways(h, act)
        await h.idle()
        assert direct_answer == piped, (verb, case)
    for case, claims in {"agent, v1": {"ver": "1.0", "appid": "another-app"},
                         "agent, v2": {"ver": "2.0", "azp": "another-app"},
                         "version not text": {"ver": 1, "appid": "another-app"},
                         "own app, v1": {"ver": "1.0", "appid": APP_ID}}.items():
        act = click(h, MARK, "refresh", {"request_id": 1})
        again = {**copy.deepcopy(act), "id": act["id"] + "-again"}
        direct_answer = await h.post(act, token=_signed(h, act, **claims))
        middleware = Recording()
        h.channel.adapter.use(middleware)
        try:
            piped = await h.post(again, token=_signed(h, again, **claims))
        finally:
            h.channel.adapter.middleware_set._middleware.remove(middleware)
        assert direct_answer == piped and direct_answer[0] == 200, case
    assert await h.events("approval.granted") == []
    # Bob, and Alice (the activity naming her object id is her: she may not approve her own request)
    refused = await h.events("approval.refused")
    assert {(e["actor"], e["data"]["reason"]) for e in refused} == {(BOB, "not-an-approver"), (ALICE, "self-approval")}
