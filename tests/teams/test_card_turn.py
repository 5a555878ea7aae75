"""A card click's turn without the adapter's pipeline (bot/teams/card_turn.py) answers as the pipeline does,
and the pipeline is taken whenever it would add something: middleware, another kind of activity."""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import ChannelServiceAdapter, ClaimsIdentity, TurnContext

from bot.teams.bot import AccessBot
from bot.teams.card_turn import direct, telemetry_off
from tests.teams.conftest import TeamsHarness
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
