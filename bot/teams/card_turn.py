"""A card click's turn without the adapter's pipeline, when the pipeline would add nothing to it.

``CloudAdapter.process_activity`` builds the turn context, runs the adapter's middleware, opens telemetry
spans around each stage and validates the invoke answer into a model again; all but the turn context was a
seventh of a card click's cost on the Teams route, for an activity whose whole answer is the HTTP response.
When there is no middleware to run and no telemetry provider to record the spans (the SDK's spans then go to
OpenTelemetry's no-op provider), :func:`card_turn` builds the turn context as the adapter does and runs the
SDK's own invoke dispatch (``ActivityHandler.on_invoke_activity``: the value's checks,
:meth:`AccessBot.on_adaptive_card_invoke`, the answer) on it, and the
answer is the one the pipeline would have given (``tests/teams/test_card_turn.py`` compares the two). Anything
else (a message, another invoke, an agent-to-agent call, an ``expectReplies`` delivery, middleware added, a
turn-error handler set, a tracer or meter provider set) takes the adapter's turn.

The equivalence is that of the SDK's code the fast path stands in for, as reviewed (:data:`REVIEWED`, a
digest of its source): an adapter or bot that overrides any of it, or another SDK release that changed it,
takes the adapter's turn until the fast path is reviewed against it again.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from microsoft_agents.activity import Activity, DeliveryModes
from microsoft_agents.activity import InvokeResponse as SdkInvokeResponse
from microsoft_agents.hosting.core import (
    ActivityHandler,
    AuthenticationConstants,
    ChannelServiceAdapter,
    ClaimsIdentity,
    ConnectorClientBase,
    UserTokenClientBase,
)
from opentelemetry import metrics, trace

from bot.teams.bot import AccessBot

CARD_ACTION = "adaptiveCard/action"
_NO_OP_TRACING = ("ProxyTracerProvider", "NoOpTracerProvider")
_NO_OP_METRICS = ("_ProxyMeterProvider", "NoOpMeterProvider")


def telemetry_off() -> bool:
    """No OpenTelemetry tracer or meter provider was set: the SDK's spans and measurements go nowhere."""
    return (type(trace.get_tracer_provider()).__name__ in _NO_OP_TRACING
            and type(metrics.get_meter_provider()).__name__ in _NO_OP_METRICS)


# The SDK's code a card click's fast turn stands in for (microsoft-agents-hosting-core 1.9.0): the adapter's turn,
# its pipeline, how the bot's answer reaches the turn's result, and the bot's dispatch of the turn (with
# ``AccessBot.on_invoke_activity``, which hands the answer to the adapter).
PIPELINE = (("adapter", "process_activity"), ("adapter", "_create_turn_context"), ("adapter", "run_pipeline"),
            ("adapter", "send_activities"), ("adapter", "_process_turn_results"),
            ("middleware", "receive_activity_with_status"), ("middleware", "_receive_activity_internal"),
            ("bot", "on_turn"), ("bot", "on_invoke_activity"))
# :func:`_digest` of :data:`PIPELINE` as reviewed
REVIEWED = "c8305be2ad23735ccd236e92e24c2847a4523058566029d4c7da29f354d3b7c1"


@functools.lru_cache(maxsize=8)
def _digest(functions: tuple[Callable[..., Any], ...]) -> str | None:
    """SHA-256 of the functions' qualified names and source; None when a source cannot be read."""
    digest = hashlib.sha256()
    try:
        for function in functions:
            digest.update(f"{function.__qualname__}\n{inspect.getsource(function)}\n".encode())
    except (OSError, TypeError):
        return None
    return digest.hexdigest()


def reviewed(adapter: ChannelServiceAdapter, bot: ActivityHandler) -> bool:
    """The adapter's and the bot's turn run the SDK code the fast path was reviewed against (see the module)."""
    owners = {"adapter": type(adapter), "middleware": type(adapter.middleware_set), "bot": type(bot)}
    try:
        functions = tuple(getattr(owners[owner], name) for owner, name in PIPELINE)
    except AttributeError:
        return False
    found = _digest(functions)
    return found == REVIEWED


def direct(adapter: ChannelServiceAdapter, bot: ActivityHandler, identity: ClaimsIdentity,
           activity: Activity) -> bool:
    """Whether this activity's turn may skip the adapter's pipeline (see the module)."""
    return (activity.type == "invoke" and activity.name == CARD_ACTION and not identity.is_agent_claim()
            and activity.delivery_mode != DeliveryModes.expect_replies
            and not adapter.middleware_set._middleware and adapter.on_turn_error is None and telemetry_off()
            and reviewed(adapter, bot))


async def card_turn(adapter: ChannelServiceAdapter, bot: AccessBot, identity: ClaimsIdentity,
                    activity: Activity) -> SdkInvokeResponse:
    """The invoke answer of a card click, as the adapter's turn gives it (status, and the body in its JSON form).

    The turn context carries what ``process_activity`` puts in it (the OAuth scope, the identity, the user-token
    and connector clients, closed at the end of the turn): the bot looks clickers up in the conversation's
    roster through the connector client."""
    factory = adapter._channel_service_client_factory
    audience = AuthenticationConstants.AGENTS_SDK_SCOPE  # not an agent's call (``direct``)
    anonymous = identity.allow_anonymous
    context = adapter._create_turn_context(identity, audience, activity=activity)
    tokens = await factory.create_user_token_client(context, identity, anonymous)
    context.services.set(UserTokenClientBase, tokens)
    context.turn_state[adapter.USER_TOKEN_CLIENT_KEY] = tokens
    connector: ConnectorClientBase | None = None
    if adapter._resolve_if_connector_client_is_needed(activity):
        connector = await factory.create_connector_client(context, identity, activity.service_url, audience,
                                                          identity.get_token_scope(), anonymous)
        context.services.set(ConnectorClientBase, connector)
        context.turn_state[adapter._AGENT_CONNECTOR_CLIENT_KEY] = connector
    async with AsyncExitStack() as cleanup:
        cleanup.push_async_callback(context._aclose)
        cleanup.push_async_callback(tokens.close)
        if connector is not None:
            cleanup.push_async_callback(connector.close)
        response = await ActivityHandler.on_invoke_activity(bot, context)
    if response is None:  # not reached: the SDK answers every adaptiveCard/action
        return SdkInvokeResponse(status=501)
    value = AccessBot._answer_value(response)
    return SdkInvokeResponse(status=value.get("status"), body=value.get("body"))
