"""Slack: ``POST /slack/events`` on the shared aiohttp application, and DMs through the Web API.

One URL takes slash commands, interactivity and events. Bolt verifies every request's signature
and timestamp (a bad or stale one is answered 401 before any listener runs); the listeners in
:mod:`bot.slack.app` acknowledge first and work after. A button click, whose acknowledgement is
an empty 200 whatever happens next, is answered as soon as its signature and timestamp pass
slack_sdk's ``SignatureVerifier`` (the check Bolt itself makes); Bolt then dispatches it. The
route is mounted only while ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET`` are both set. Web
API calls are retried on 429 honouring ``Retry-After`` (one longer than ``bot.slack.retries.MAX_RETRY_AFTER``
is not waited); on a 5xx or a dropped connection only when the call is safe to make twice (never
``chat.postMessage``: Slack may have posted before the error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import App
from bot.notify import FanoutNotifier
from bot.slack.app import Listeners
from bot.slack.identity import AddressBook
from bot.slack.notifier import SlackNotifier
from bot.slack.retries import RateLimitRetry

log = structlog.get_logger("accessbot.slack")

ROUTE = "/slack/events"
MAX_BODY = 512 * 1024
RATE_LIMIT_RETRIES = 5


# Web API methods that an answer which does not say whether they were carried out (a 5xx, a connection cut
# after the request went out) must not repeat: a retry of chat.postMessage can post a second message.
NOT_IDEMPOTENT = frozenset({"chat.postMessage"})


def idempotent(request: HttpRequest) -> bool:
    """Whether the Web API call may be sent again after an answer that does not say if it was carried out."""
    return request.url.rstrip("/").rsplit("/", 1)[-1] not in NOT_IDEMPOTENT


class _ServerErrorRetry(AsyncServerErrorRetryHandler):
    async def _can_retry_async(self, *, request: HttpRequest, **kw: Any) -> bool:
        return idempotent(request) and await super()._can_retry_async(request=request, **kw)


class _ConnectionErrorRetry(AsyncConnectionErrorRetryHandler):
    async def _can_retry_async(self, *, request: HttpRequest, **kw: Any) -> bool:
        return idempotent(request) and await super()._can_retry_async(request=request, **kw)


def retry_handlers() -> list[Any]:
    """429 honouring Retry-After (up to ``bot.slack.retries.MAX_RETRY_AFTER``), for every call; 5xx and dropped
    connections, for the calls that may be repeated (:func:`idempotent`): each retried a few times."""
    return [RateLimitRetry(max_retry_count=RATE_LIMIT_RETRIES),
            _ServerErrorRetry(max_retry_count=2),
            _ConnectionErrorRetry(max_retry_count=2)]


async def read_at_most(request: web.Request, limit: int) -> bytes:
    """The body, read no further than ``limit`` bytes whatever the headers say."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await request.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@dataclass
class SlackChannel:
    listeners: Listeners
    notifier: SlackNotifier
    client: AsyncWebClient
    verifier: SignatureVerifier

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": "request too large"}, status=413)
        raw = await read_at_most(request, MAX_BODY + 1)  # chunked: no Content-Length to go by
        if len(raw) > MAX_BODY:
            return web.json_response({"error": "request too large"}, status=413)
        gate = self.listeners.gate
        gate.enter()
        try:
            try:
                bolt_request = AsyncBoltRequest(body=raw.decode(request.charset or "utf-8", errors="replace"),
                                                query=request.query_string, headers=request.headers)  # type: ignore[arg-type]
            except Exception:  # a body of a shape Slack never sends (Bolt reads it before checking its signature)
                if not self._signed(raw, request):
                    return web.json_response({"error": "invalid request"}, status=401)
                log.info("slack request of an unknown shape refused", size=len(raw))
                return web.json_response({"error": "malformed request"}, status=400)
            if not self.listeners.process_before_response and self._button_click(bolt_request):
                # A button click's acknowledgement is an empty 200 whatever the listener decides,
                # so it goes out now; Bolt verifies (again), routes and runs the listener after.
                self.notifier.spawn(self._dispatch_after_ack(bolt_request))
                return web.Response(status=200)
            return await to_aiohttp_response(await self.listeners.bolt.async_dispatch(bolt_request))
        finally:
            gate.leave()

    def _signed(self, raw: bytes, request: web.Request) -> bool:
        """Whether ``raw`` carries a valid, fresh Slack signature (the check Bolt makes)."""
        return self.verifier.is_valid(body=raw, timestamp=request.headers.get("X-Slack-Request-Timestamp"),
                                      signature=request.headers.get("X-Slack-Signature"))

    def _button_click(self, bolt_request: AsyncBoltRequest) -> bool:
        """A signed, fresh ``block_actions`` payload (checked as Bolt checks it: same verifier)."""
        if not isinstance(bolt_request.body, dict) or bolt_request.body.get("type") != "block_actions":
            return False
        timestamp = (bolt_request.headers.get("x-slack-request-timestamp") or [None])[0]
        signature = (bolt_request.headers.get("x-slack-signature") or [None])[0]
        return self.verifier.is_valid(body=bolt_request.raw_body, timestamp=timestamp, signature=signature)

    async def _dispatch_after_ack(self, bolt_request: AsyncBoltRequest) -> None:
        # after the burst it came in (at most half a second: a modal's trigger lasts 3 s)
        await self.listeners.gate.quiet()
        try:
            response = await self.listeners.bolt.async_dispatch(bolt_request)
        except Exception:
            log.exception("slack dispatch after ack failed")
            return
        if response.status != 200:
            log.info("slack request refused after ack", status=response.status, body=response.body[:200])

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
    return SlackChannel(listeners=listeners, notifier=notifier, client=client,
                        verifier=SignatureVerifier(settings.slack_signing_secret))


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
