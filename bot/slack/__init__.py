"""Slack: ``POST /slack/events`` on the shared aiohttp application, and DMs through the Web API.

One URL takes slash commands, interactivity and events. Bolt verifies every request's signature
and timestamp (a bad or stale one is answered 401 before any listener runs); the listeners in
:mod:`bot.slack.app` acknowledge first and work after. The route is mounted only while
``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` are both set. Web API calls are retried on 429
honouring ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import App
from bot.notify import FanoutNotifier
from bot.slack.app import Listeners
from bot.slack.identity import AddressBook
from bot.slack.notifier import SlackNotifier

log = structlog.get_logger("accessbot.slack")

ROUTE = "/slack/events"
MAX_BODY = 512 * 1024
RATE_LIMIT_RETRIES = 5


def retry_handlers() -> list[Any]:
    """429 honouring Retry-After, 5xx and dropped connections: each retried a few times."""
    return [AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            AsyncServerErrorRetryHandler(max_retry_count=2),
            AsyncConnectionErrorRetryHandler(max_retry_count=2)]


@dataclass
class SlackChannel:
    listeners: Listeners
    notifier: SlackNotifier
    client: AsyncWebClient

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "request too large"}, status=413)
        gate = self.listeners.gate
        gate.enter()
        try:
            bolt_response = await self.listeners.bolt.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(bolt_response)
        finally:
            gate.leave()

    async def idle(self) -> None:
        """Wait for the work started after acks and every delivery (tests, shutdown)."""
        await self.notifier.idle()


SLACK_KEY = web.AppKey("accessbot_slack", SlackChannel)


def build_channel(app: App, *, process_before_response: bool = False) -> SlackChannel:
    settings = app.settings
    handlers = retry_handlers()
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                            retry_handlers=handlers, timeout=15)
    notifier = SlackNotifier(app, client, AddressBook(app))
    listeners = Listeners(app, notifier, signing_secret=settings.slack_signing_secret,
                          token=settings.slack_bot_token, process_before_response=process_before_response,
                          retry_handlers=handlers)
    return SlackChannel(listeners=listeners, notifier=notifier, client=client)


def mount(web_app: web.Application, app: App, notifier: FanoutNotifier, *,
          process_before_response: bool = False) -> bool:
    """Add ``POST /slack/events`` and the Slack notifier when the token and signing secret are set."""
    if not app.settings.slack_enabled:
        return False
    channel = build_channel(app, process_before_response=process_before_response)
    web_app[SLACK_KEY] = channel
    web_app.router.add_post(ROUTE, channel.handle)
    notifier.add(channel.notifier)
    clients = (channel.client, channel.listeners.bolt.client)

    async def open_session(_: web.Application) -> None:
        session = aiohttp.ClientSession()
        for client in clients:
            client.session = session

    async def close_session(_: web.Application) -> None:
        await channel.idle()
        session = channel.client.session
        for client in clients:
            client.session = None
        if session is not None:
            await session.close()

    web_app.on_startup.append(open_session)
    web_app.on_cleanup.append(close_session)
    return True
