"""Microsoft Teams: ``POST /api/messages`` on the shared aiohttp application, and proactive messages.

Built on the Microsoft 365 Agents SDK (the maintained successor of the Bot Framework SDK: the same
protocol and the same Azure Bot registration). ``mount`` builds the SDK's ``CloudAdapter`` with
this bot's client factory (:mod:`bot.teams.clients`), and the route does, in order:

1. :class:`~bot.teams.gate.Gate` ``door``: without ``MicrosoftAppId`` nothing is accepted, unless
   ``ACCESSBOT_TEAMS_EMULATOR=1`` asks for the local emulator mode (this machine only);
2. the SDK's token validation (:mod:`bot.teams.auth`): every failure is a 401, nothing recorded;
3. ``Gate.admit``: only the served tenants (403 otherwise, before anything is recorded or
   remembered), and in emulator mode only a ``serviceUrl`` on this machine;
4. the SDK's turn (``CloudAdapter.process_activity``) into :class:`~bot.teams.bot.AccessBot`.

A :class:`TeamsNotifier` is added to the fan-out notifier for the messages the bot writes first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import ClaimsIdentity
from microsoft_agents.hosting.core.authorization import Connections

from bot.bootstrap import App
from bot.notify import FanoutNotifier
from bot.teams.auth import InboundAuth, Unauthorized, build_authentication
from bot.teams.bot import AccessBot, invoke_json
from bot.teams.clients import ClientFactory, opener
from bot.teams.gate import EMULATOR, OFF, SECURED, Gate, Refusal
from bot.teams.notifier import TeamsNotifier

log = structlog.get_logger("accessbot.teams")

ROUTE = "/api/messages"
MAX_BODY = 256 * 1024


@dataclass
class TeamsChannel:
    adapter: CloudAdapter
    bot: AccessBot
    notifier: TeamsNotifier
    inbound: InboundAuth
    clients: ClientFactory
    gate: Gate
    app_id: str


TEAMS_KEY = web.AppKey("accessbot_teams", TeamsChannel)


def build_channel(app: App, connections: Connections | None = None) -> TeamsChannel:
    """The channel from the settings; ``connections`` replaces the SDK connection manager built from them."""
    gate = Gate.from_settings(app.settings)
    _, inbound, built = build_authentication(app.settings)
    clients = ClientFactory(connections or built, may_call=gate.may_call)
    adapter = CloudAdapter(channel_service_client_factory=clients)
    adapter.on_turn_error = None  # errors surface to our route (logged, answered 500)
    notifier = TeamsNotifier(app, opener(clients, app.settings.app_id))
    return TeamsChannel(adapter=adapter, bot=AccessBot(app, notifier), notifier=notifier, inbound=inbound,
                        clients=clients, gate=gate, app_id=app.settings.app_id)


def _refuse(refusal: Refusal) -> web.Response:
    return web.json_response({"error": refusal.error}, status=refusal.status)


def _text(value: Any) -> bool:
    """Text UTF-8 can carry: no lone surrogate."""
    try:
        str(value).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value is not None


def make_handler(channel: TeamsChannel) -> Any:
    async def messages(request: web.Request) -> web.StreamResponse:
        refusal = channel.gate.door(request.remote, request.headers)
        if refusal is not None:
            return _refuse(refusal)
        if "application/json" not in request.headers.get("Content-Type", ""):
            return web.json_response({"error": "expected application/json"}, status=415)
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return web.json_response({"error": "activity too large"}, status=413)
        try:
            body = json.loads(raw)
            activity = Activity.model_validate(body) if isinstance(body, dict) else None
        except Exception:
            activity = None
        if activity is None or not activity.type or not activity.conversation or not activity.conversation.id \
                or activity.recipient is None or not _text(activity.channel_id):
            # the Bot Connector always names the conversation, the bot and the channel (in text: the SDK's own
            # type for channelId takes half an emoji, which its conversation reference then refuses)
            return web.json_response({"error": "not an activity"}, status=400)
        identity = ClaimsIdentity()  # emulator mode: anonymous
        if channel.gate.mode == SECURED:
            try:
                identity = await channel.inbound.authenticate(request.headers.get("Authorization"), body)
            except Unauthorized:
                return web.json_response({"error": "unauthorized"}, status=401)
        refusal = channel.gate.admit(body)
        if refusal is not None:  # before the turn: nothing is recorded, no reference is remembered
            log.info("activity refused", status=refusal.status, reason=refusal.error, type=activity.type)
            return _refuse(refusal)
        try:
            response = await channel.adapter.process_activity(identity, activity, channel.bot.on_turn)
        except Exception:
            log.exception("activity failed", type=activity.type, name=activity.name)
            return web.json_response({"error": "the bot could not handle this activity"}, status=500)
        if response is not None:
            try:
                payload = invoke_json(response.body)
            except Exception:  # an answer no JSON can carry: say so, as for any failed activity
                log.exception("invoke answer not written", type=activity.type, name=activity.name)
                return web.json_response({"error": "the bot could not write its answer"}, status=500)
            return web.Response(body=payload, status=response.status or 501, content_type="application/json")
        return web.Response(status=200)

    return messages


def mount(web_app: web.Application, app: App, notifier: FanoutNotifier, *,
          connections: Connections | None = None) -> bool:
    """Add ``POST /api/messages`` and the Teams notifier; False (the route refusing all) when Teams is off."""
    gate = Gate.from_settings(app.settings)
    if gate.mode == OFF:
        async def off(request: web.Request) -> web.Response:
            refusal = gate.door(request.remote, request.headers)
            assert refusal is not None
            return _refuse(refusal)

        web_app.router.add_post(ROUTE, off)
        return False
    channel = build_channel(app, connections)
    web_app[TEAMS_KEY] = channel
    web_app.router.add_post(ROUTE, make_handler(channel))
    notifier.add(channel.notifier)

    async def drain(_: web.Application) -> None:
        await channel.notifier.idle()
        await channel.clients.close()

    web_app.on_cleanup.append(drain)
    if gate.mode == EMULATOR:
        log.warning("Teams endpoint in local emulator mode (ACCESSBOT_TEAMS_EMULATOR=1): activities are not "
                    "authenticated and are taken from this machine only; never put this behind a proxy")
    return True
