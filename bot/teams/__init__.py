"""Microsoft Teams: ``POST /api/messages`` on the shared aiohttp application, and proactive messages.

``mount`` builds the SDK's CloudAdapter from the settings (``MicrosoftAppId`` empty = local
emulator mode, no tokens), authenticates each activity in our own route so that every
authentication failure is a 401 with nothing recorded, and adds a :class:`TeamsNotifier` to the
fan-out notifier.
"""

from __future__ import annotations

import ipaddress
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


TEAMS_KEY = web.AppKey("accessbot_teams", TeamsChannel)


def build_channel(app: App, credentials_factory: ServiceClientCredentialsFactory | None = None) -> TeamsChannel:
    auth = build_authentication(app.settings, credentials_factory)
    adapter = CloudAdapter(auth)
    adapter.on_turn_error = None  # errors surface to our route (logged, answered 500)
    connectors = ConnectorCache()
    notifier = TeamsNotifier(app, auth, app.settings.app_id, connectors)
    return TeamsChannel(adapter=adapter, bot=AccessBot(app, notifier), notifier=notifier, auth=auth,
                        app_id=app.settings.app_id, connectors=connectors)


def _loopback(request: web.Request) -> bool:
    peer = request.remote or ""
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def make_handler(channel: TeamsChannel) -> Any:
    async def messages(request: web.Request) -> web.StreamResponse:
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
        if not channel.app_id and not _loopback(request):
            # Emulator mode trusts the activity's claims; only a local emulator may use it.
            return web.json_response({"error": "unauthorized: set MicrosoftAppId"}, status=401)
        try:
            auth_result = await authenticate(channel.auth, activity, request.headers.get("Authorization"))
        except Unauthorized:
            return web.json_response({"error": "unauthorized"}, status=401)
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
    """Add ``POST /api/messages`` and the Teams notifier. Always on: without an app id it is emulator mode."""
    channel = build_channel(app, credentials_factory)
    web_app[TEAMS_KEY] = channel
    web_app.router.add_post(ROUTE, make_handler(channel))
    notifier.add(channel.notifier)

    async def drain(_: web.Application) -> None:
        await channel.notifier.idle()
        await channel.connectors.close()

    web_app.on_cleanup.append(drain)
    if not app.settings.app_id:
        log.info("Teams endpoint in local emulator mode: MicrosoftAppId is empty, activities are not authenticated")
    return True
