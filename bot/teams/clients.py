"""The channel's outbound clients: the SDK's connector client, built from the SDK's connection manager.

:class:`ClientFactory` is the SDK's ``ChannelServiceClientFactoryBase`` for this bot. The SDK's own
factory (``RestChannelServiceClientFactory``) builds a new connector client, with a new HTTP
session, for every activity and closes it at the end of the turn; it also fetches a token for
the user-token service on every turn. This one differs in four ways, nothing else:

- it refuses a service URL the bot may not call (emulator mode: anything off this machine);
- connector clients are reused across turns and notices, per (service URL, token), so replies
  ride on kept-alive connections; a client whose token was replaced is closed after a grace period;
- the bot uses no user sign-in (OAuth prompts), so the user-token client is one per app id that
  never fetches a token;
- a connector client's HTTP session writes every body with :func:`bot.teams.connector.wire_text` (compact
  UTF-8 JSON) instead of aiohttp's default ``json.dumps`` (``\\u`` escapes, blanks), so text past ASCII is sent
  in the bytes the activity bound counts (messages the bot writes first, replies in a turn, card updates).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import ClientSession
from microsoft_agents.hosting.core import ChannelServiceClientFactoryBase, ClaimsIdentity, TurnContext
from microsoft_agents.hosting.core.authorization import AuthenticationConstants, Connections
from microsoft_agents.hosting.core.connector import ConnectorClientBase, UserTokenClientBase
from microsoft_agents.hosting.core.connector.client import UserTokenClient
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from bot.teams.connector import wire_text

log = structlog.get_logger("accessbot.teams.clients")


class ServiceUrlRefused(Exception):
    """A service URL this bot may not call (emulator mode: not on this machine)."""


class _KeptConnectorClient(TeamsConnectorClient):
    """A connector client the SDK may "close" at the end of a turn; the cache closes it for real. Its session writes
    bodies with :func:`wire_text`."""

    def __init__(self, endpoint: str, token: str) -> None:
        base = endpoint if endpoint.endswith("/") else endpoint + "/"  # as the SDK's own session is based
        super().__init__(endpoint, token, session=ClientSession(base_url=base, json_serialize=wire_text))

    async def close(self) -> None:
        return None

    async def release(self) -> None:
        await super().close()


class _NoUserTokens(UserTokenClient):
    """The user-token client the SDK asks for on every turn; this bot never signs users in."""

    async def close(self) -> None:
        return None

    async def release(self) -> None:
        await super().close()


class ConnectorCache:
    """Clients per key; replaced ones are released once calls still using them have had time to finish."""

    def __init__(self, *, grace: float = 60.0) -> None:
        self.grace = grace
        self._items: dict[tuple[str, ...], Any] = {}
        self._retired: list[tuple[Any, float]] = []

    async def get(self, key: tuple[str, ...], create: Callable[[], Any], *, family: str = "") -> Any:
        client = self._items.get(key)
        if client is not None:
            return client
        now = time.monotonic()
        for old in [k for k in self._items if k[0] == family and family]:  # the same URL with an older token
            self._retired.append((self._items.pop(old), now))
        client = self._items[key] = create()
        await self._release_retired(now)
        return client

    async def _release_retired(self, now: float) -> None:
        keep = []
        for client, since in self._retired:
            if now - since > self.grace:
                await _release(client)
            else:
                keep.append((client, since))
        self._retired = keep

    async def close(self) -> None:
        for client in [*self._items.values(), *(c for c, _ in self._retired)]:
            await _release(client)
        self._items.clear()
        self._retired.clear()


async def _release(client: Any) -> None:
    try:
        await client.release()
    except Exception:  # closing is best effort
        log.debug("connector client close failed")


class ClientFactory(ChannelServiceClientFactoryBase):
    def __init__(self, connections: Connections | None, *, may_call: Callable[[str], bool] = lambda url: True,
                 token_service: str = AuthenticationConstants.AGENTS_SDK_OAUTH_URL) -> None:
        self.connections = connections  # None: emulator mode, no tokens
        self.may_call = may_call
        self.token_service = token_service
        self.cache = ConnectorCache()
        self._user_tokens: dict[str, _NoUserTokens] = {}

    async def create_connector_client(self, context: TurnContext | None, claims_identity: ClaimsIdentity,
                                      service_url: str, audience: str, scopes: list[str] | None = None,
                                      use_anonymous: bool = False) -> ConnectorClientBase:
        if not service_url or not self.may_call(service_url):
            log.warning("service URL refused", service_url=service_url)
            raise ServiceUrlRefused(service_url)
        token = ""
        if self.connections is not None and not use_anonymous:
            provider = self.connections.get_token_provider(claims_identity, service_url)
            token = await provider.get_access_token(audience, scopes or claims_identity.get_token_scope())
        key = (service_url, hashlib.sha256(token.encode()).hexdigest())
        client: ConnectorClientBase = await self.cache.get(
            key, lambda: _KeptConnectorClient(endpoint=service_url, token=token), family=service_url)
        return client

    async def create_user_token_client(self, context: TurnContext, claims_identity: ClaimsIdentity,
                                       use_anonymous: bool = False) -> UserTokenClientBase:
        app_id = claims_identity.get_app_id() or ""
        client = self._user_tokens.get(app_id)
        if client is None:
            client = self._user_tokens[app_id] = _NoUserTokens(endpoint=self.token_service, token="",
                                                               app_id=app_id or None)
        return client

    async def close(self) -> None:
        await self.cache.close()
        for client in self._user_tokens.values():
            await _release(client)
        self._user_tokens.clear()


Opener = Callable[[str], Awaitable[ConnectorClientBase]]


def opener(factory: ClientFactory, app_id: str) -> Opener:
    """Connector clients for messages the bot writes first: the app's own identity, the channel's audience."""
    claims = ClaimsIdentity({AuthenticationConstants.AUDIENCE_CLAIM: app_id,
                             AuthenticationConstants.APP_ID_CLAIM: app_id})

    async def open_(service_url: str) -> ConnectorClientBase:
        return await factory.create_connector_client(None, claims, service_url,
                                                     AuthenticationConstants.AGENTS_SDK_SCOPE,
                                                     use_anonymous=not app_id)

    return open_
