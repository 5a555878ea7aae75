"""Microsoft Teams: ``POST /api/messages`` on the shared aiohttp application, and proactive messages.

``mount`` builds the SDK's CloudAdapter from the settings, authenticates each activity in our
own route so that every authentication failure is a 401 with nothing recorded, admits only the
served tenants (403 otherwise, before anything is recorded or remembered), and adds a
:class:`TeamsNotifier` to the fan-out notifier. Without ``MicrosoftAppId`` the route accepts
nothing, unless ``ACCESSBOT_TEAMS_EMULATOR=1`` asks for the local emulator mode (see
:mod:`bot.teams.gate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity
from botframework.connector.auth import ServiceClientCredentialsFactory

from bot.bootstrap import App
from bot.notify import FanoutNotifier
from bot.teams.auth import Unauthorized, authenticate, build_authentication
from bot.teams.bot import AccessBot
from bot.teams.connector import ConnectorCache
from bot.teams.gate import EMULATOR, OFF, Gate, Refusal
from bot.teams.notifier import TeamsNotifier

log = structlog.get_logger("accessbot.teams")

ROUTE = "/api/messages"
MAX_BODY = 256 * 1024


@dataclass
class TeamsChannel:
    adapter: CloudAdapter
    bot: AccessBot
    notifier: TeamsNotifier
    auth: Any
    app_id: str
    connectors: ConnectorCache
    gate: Gate


TEAMS_KEY = web.AppKey("accessbot_teams", TeamsChannel)


def build_channel(app: App, credentials_factory: ServiceClientCredentialsFactory | None = None) -> TeamsChannel:
    gate = Gate.from_settings(app.settings)
    auth = build_authentication(app.settings, credentials_factory)
    adapter = CloudAdapter(auth)
    adapter.on_turn_error = None  # errors surface to our route (logged, answered 500)
    connectors = ConnectorCache()
    notifier = TeamsNotifier(app, auth, app.settings.app_id, connectors, may_call=gate.may_call)
    return TeamsChannel(adapter=adapter, bot=AccessBot(app, notifier), notifier=notifier, auth=auth,
                        app_id=app.settings.app_id, connectors=connectors, gate=gate)


def _refuse(refusal: Refusal) -> web.Response:
    return web.json_response({"error": refusal.error}, status=refusal.status)


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
            activity = Activity().deserialize(body) if isinstance(body, dict) else None
        except Exception:
            activity = None
        if activity is None or not activity.type:
            return web.json_response({"error": "not an activity"}, status=400)
        try:
            auth_result = await authenticate(channel.auth, activity, request.headers.get("Authorization"))
        except Unauthorized:
            return web.json_response({"error": "unauthorized"}, status=401)
        refusal = channel.gate.admit(body)
        if refusal is not None:  # before the turn: nothing is recorded, no reference is remembered
            log.info("activity refused", status=refusal.status, reason=refusal.error, type=activity.type)
            return _refuse(refusal)
        claims = auth_result.claims_identity.claims or {}
        auth_result.connector_factory = channel.connectors.wrap(auth_result.connector_factory,
                                                                claims.get("aud") or claims.get("appid"))
        try:
            response = await channel.adapter.process_activity(auth_result, activity, channel.bot.on_turn)
        except Exception:
            log.exception("activity failed", type=activity.type, name=activity.name)
            return web.json_response({"error": "the bot could not handle this activity"}, status=500)
        if response is not None:
            return web.json_response(response.body, status=response.status)
        return web.Response(status=200)

    return messages


def mount(web_app: web.Application, app: App, notifier: FanoutNotifier, *,
          credentials_factory: ServiceClientCredentialsFactory | None = None) -> bool:
    """Add ``POST /api/messages`` and the Teams notifier; False (the route refusing all) when Teams is off."""
    gate = Gate.from_settings(app.settings)
    if gate.mode == OFF:
        async def off(request: web.Request) -> web.Response:
            refusal = gate.door(request.remote, request.headers)
            assert refusal is not None
            return _refuse(refusal)

        web_app.router.add_post(ROUTE, off)
        return False
    channel = build_channel(app, credentials_factory)
    web_app[TEAMS_KEY] = channel
    web_app.router.add_post(ROUTE, make_handler(channel))
    notifier.add(channel.notifier)

    async def drain(_: web.Application) -> None:
        await channel.notifier.idle()
        await channel.connectors.close()

    web_app.on_cleanup.append(drain)
    if gate.mode == EMULATOR:
        log.warning("Teams endpoint in local emulator mode (ACCESSBOT_TEAMS_EMULATOR=1): activities are not "
                    "authenticated and are taken from this machine only; never put this behind a proxy")
    return True
