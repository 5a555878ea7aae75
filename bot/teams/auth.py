"""Bot Framework authentication on the Microsoft 365 Agents SDK.

Inbound: :class:`InboundAuth` validates each activity's token with the SDK's ``JwtTokenValidator``
(signature by the channel's published keys, RS256 only, expiry, audience = this app id), with
three checks the SDK leaves off by default switched on, and turns every failure, whatever the
SDK raised, into :class:`Unauthorized` (a 401 with nothing recorded):

- an expiry (``exp``) is required: PyJWT checks one only when the token has it;
- issuer validation (``validate_issuer``): only the Bot Framework channel's issuer is accepted;
- the token's ``serviceurl`` claim must name the activity's ``serviceUrl`` (the SDK only logs a
  mismatch unless its outbound host allow-list is on, which would also refuse every address on
  this machine).

Outbound: the SDK's connection manager hands out the bot's tokens. For Microsoft's login hosts
that is ``MsalConnectionManager`` (MSAL: multi-tenant, single-tenant, user-assigned managed
identity). MSAL refuses any other authority unless it can look the authority up at Microsoft
(instance discovery), so a token endpoint of another host (``ACCESSBOT_TEAMS_TOKEN_URL``, or
``ACCESSBOT_AUTHORITY_URL`` elsewhere: a private cloud, the tests' stand-in) gets
:class:`TokenEndpoint`, a plain OAuth client-credentials client behind the same connection
manager.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
import structlog
from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.core.authorization import (
    AgentAuthConfiguration,
    AuthenticationConstants,
    AuthTypes,
    ClaimsIdentity,
    ConnectionManager,
    Connections,
)
from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator
from microsoft_agents.hosting.core.authorization.jwt.jwt_token_validator import (
    _JwkClientCacheEntry,
    _JwkClientManager,
)
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from bot.settings import Settings

log = structlog.get_logger("accessbot.teams.auth")

# Overrides read from the environment (``Settings.env``): private clouds and local test servers.
ENV_OPENID_METADATA_URL = "ACCESSBOT_TEAMS_OPENID_METADATA_URL"
ENV_TOKEN_ISSUER = "ACCESSBOT_TEAMS_TOKEN_ISSUER"
ENV_TOKEN_URL = "ACCESSBOT_TEAMS_TOKEN_URL"
CONNECTION = "SERVICE_CONNECTION"  # the SDK's name for the bot's own connection


class Unauthorized(Exception):
    """The activity's token is missing or not valid for this bot."""


def app_type(settings: Settings) -> str:
    return (settings.app_type or ("SingleTenant" if settings.app_tenant_id else "MultiTenant")).lower()


def auth_configuration(settings: Settings) -> AgentAuthConfiguration:
    """The SDK's configuration of the bot's one connection, from ``MicrosoftApp*``."""
    kind = app_type(settings)
    if kind == "singletenant" and not (settings.app_tenant_id and settings.app_password):
        raise SystemExit("MicrosoftAppType=SingleTenant needs MicrosoftAppTenantId and MicrosoftAppPassword")
    issuer = settings.env.get(ENV_TOKEN_ISSUER) or AuthenticationConstants.AGENTS_SDK_TOKEN_ISSUER
    common: dict[str, Any] = {"client_id": settings.app_id, "issuers": [issuer], "validate_issuer": True,
                              "connection_name": CONNECTION}
    if kind == "userassignedmsi":
        return AgentAuthConfiguration(AuthTypes.user_managed_identity, tenant_id=settings.app_tenant_id or None,
                                      **common)
    tenant = settings.app_tenant_id if kind == "singletenant" else "botframework.com"
    return AgentAuthConfiguration(AuthTypes.client_secret, tenant_id=tenant, client_secret=settings.app_password,
                                  authority=f"{settings.authority_url.rstrip('/')}/{tenant}", **common)


def connections(settings: Settings, config: AgentAuthConfiguration) -> Connections:
    token_url = settings.env.get(ENV_TOKEN_URL, "")
    if config.AUTH_TYPE == AuthTypes.client_secret and (
            token_url or urlsplit(settings.authority_url).hostname not in WELL_KNOWN_AUTHORITY_HOSTS):
        url = token_url or f"{config.AUTHORITY}/oauth2/v2.0/token"
        return ConnectionManager(provider_factory=lambda cfg: TokenEndpoint(cfg, url),
                                 connections_configurations={CONNECTION: config})
    return MsalConnectionManager(connections_configurations={CONNECTION: config})


class TokenEndpoint:
    """The SDK's ``AccessTokenProviderBase`` for a client-credentials token endpoint MSAL will not use."""

    def __init__(self, configuration: AgentAuthConfiguration, token_url: str, *, timeout: float = 10.0) -> None:
        self._configuration = configuration
        self.token_url = token_url
        self.timeout = timeout
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    @property
    def configuration(self) -> AgentAuthConfiguration:
        return self._configuration

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        scope = " ".join(scopes) if scopes else resource_url.rstrip("/") + "/.default"
        cached = self._cache.get(scope)
        if cached and cached[1] > time.monotonic() and not force_refresh:
            return cached[0]
        async with self._lock:
            cached = self._cache.get(scope)
            if cached and cached[1] > time.monotonic() and not force_refresh:
                return cached[0]
            form = {"grant_type": "client_credentials", "client_id": self._configuration.CLIENT_ID or "",
                    "client_secret": self._configuration.CLIENT_SECRET or "", "scope": scope}
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(self.token_url, data=form) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or "access_token" not in body:
                    raise RuntimeError(f"token endpoint answered {resp.status}: "
                                       f"{str(body.get('error_description') or body.get('error'))[:200]}")
            lifetime = float(body.get("expires_in", 3600))
            self._cache[scope] = (body["access_token"], time.monotonic() + max(60.0, lifetime - 300))
            return str(body["access_token"])

    def get_token_credential(self) -> Any:
        raise NotImplementedError("no Azure SDK credentials from a plain token endpoint")

    async def acquire_token_on_behalf_of(self, scopes: list[str], user_assertion: str) -> str:
        raise NotImplementedError("the bot signs no user in")

    async def get_agentic_application_token(self, tenant_id: str, agent_app_instance_id: str) -> str | None:
        raise NotImplementedError("not an agentic app")

    async def get_agentic_instance_token(self, tenant_id: str, agent_app_instance_id: str) -> tuple[str, str]:
        raise NotImplementedError("not an agentic app")

    async def get_agentic_user_token(self, tenant_id: str, agent_app_instance_id: str, agentic_user_id: str,
                                     scopes: list[str]) -> str | None:
        raise NotImplementedError("not an agentic app")


class _MetadataKeys(jwt.PyJWKClient):
    """Keys named by an OpenID metadata document (its ``jwks_uri``), read when keys are first needed."""

    def __init__(self, metadata_url: str) -> None:
        super().__init__(metadata_url, timeout=10)
        self._metadata_url = metadata_url
        self._resolved = False

    def fetch_data(self) -> Any:
        if not self._resolved:  # runs in the SDK's worker thread, like the key fetch itself
            with urllib.request.urlopen(self._metadata_url, timeout=10) as resp:
                self.uri = str(json.load(resp)["jwks_uri"])
            self._resolved = True
        return super().fetch_data()


class _KeysFromMetadata(_JwkClientManager):
    """The SDK's key lookup, with every issuer's keys taken from one configured metadata document."""

    def __init__(self, metadata_url: str) -> None:
        super().__init__()
        self._entry = _JwkClientCacheEntry(_MetadataKeys(metadata_url), threading.Lock())

    def _get_jwk_client(self, jwks_uri: str) -> _JwkClientCacheEntry:
        return self._entry


# (the key client's set cache, the cached set) that served the key of the token being validated
_SERVED: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar("accessbot_jwk_set", default=None)
# the channels the key of the token being validated is endorsed for (the Bot Framework key set's ``endorsements``)
_ENDORSED: contextvars.ContextVar[Any] = contextvars.ContextVar("accessbot_jwk_endorsements", default=None)
CHANNEL = "msteams"


class _KeySetWitness:
    """The SDK's key look-up (``_JwkClientManager.get_signing_key``, same lock, same worker thread) that
    also notes, under that lock, which cached key set the key came from: a kept token is honoured only
    while that same set is still the key client's and unexpired, as long as the SDK alone would take it."""

    def __init__(self, inner: _JwkClientManager) -> None:
        self.inner = inner

    def _get_jwk_client(self, jwks_uri: str) -> _JwkClientCacheEntry:
        return self.inner._get_jwk_client(jwks_uri)

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> Any:
        entry = self.inner._get_jwk_client(jwks_uri)

        def look_up() -> tuple[Any, tuple[Any, Any] | None]:
            with entry.lock:
                key = entry.jwk_client.get_signing_key(header[AuthenticationConstants.KEY_ID_HEADER])
                # PyJWT's key-set cache; were it ever named otherwise, nothing is kept (the memo is off)
                cache = getattr(entry.jwk_client, "jwk_set_cache", None)
                stamp = getattr(cache, "jwk_set_with_timestamp", None) if hasattr(cache, "is_expired") else None
                return key, (cache, stamp) if stamp is not None else None

        key, served = await asyncio.to_thread(look_up)
        _SERVED.set(served)
        _ENDORSED.set((getattr(key, "_jwk_data", None) or {}).get("endorsements"))
        return key


class InboundAuth:
    """The SDK's token validation for every activity; any failure is :class:`Unauthorized`.

    A token the SDK accepted is kept, by its exact text, so that the next activity carrying it is not
    validated again: the Bot Connector service signs a token once and sends it with every activity
    for its lifetime, and each validation costs two decodes, an RSA signature check and a hop to a
    worker thread for the key (about 0.25 ms of CPU an activity). A kept token is honoured until its
    own ``exp``, at most :attr:`KEEP_S` seconds, and only while the key set that supplied its key is
    still the one the SDK's key client holds, unexpired (:class:`_KeySetWitness`): a key the channel
    withdraws stops opening the door exactly when it would without the memo. Only
    accepted tokens are kept, at most ``size`` of them (least recently used first out); the
    ``serviceurl`` binding and, in the route, the tenant are checked for every activity all the same.
    """

    KEEP_S = 300.0

    def __init__(self, config: AgentAuthConfiguration, *, metadata_url: str = "", size: int = 1024,
                 clock: Callable[[], float] = time.time) -> None:
        self.validator = JwtTokenValidator(config)
        if metadata_url:  # keys from elsewhere than the public Bot Framework endpoints
            self.validator._jwk_client_manager = _KeysFromMetadata(metadata_url)  # type: ignore[misc]
        self.validator._jwk_client_manager = _KeySetWitness(  # type: ignore[misc, assignment]
            self.validator._jwk_client_manager)
        self.size = size
        self.clock = clock
        # token → (until, claims, (key client's set cache, the set that served its key))
        self._accepted: OrderedDict[str, tuple[float, dict[str, Any], tuple[Any, Any]]] = OrderedDict()
        self.validations = 0  # tokens the SDK validated (the others came from the memo)

    async def authenticate(self, header: str | None, activity: dict[str, Any]) -> ClaimsIdentity:
        scheme, _, token = (header or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Unauthorized("no bearer token")
        claims = self._kept(token)
        if claims is None:
            self.validations += 1
            _SERVED.set(None)
            _ENDORSED.set(None)
            try:
                identity = await self.validator.validate_token(token)
            except Exception as exc:  # the SDK raises PyJWT errors, ValueError, KeyError, network errors …
                log.info("activity refused", reason=type(exc).__name__, detail=str(exc)[:200])
                raise Unauthorized(type(exc).__name__) from None
            expires = identity.claims.get("exp")
            if not isinstance(expires, int | float) or isinstance(expires, bool):
                # PyJWT checks an expiry only when there is one: the Bot Framework's own validation requires it,
                # and a token without one, once seen by anyone, would open the door for ever
                log.info("activity refused", reason="the token has no expiry (exp)")
                raise Unauthorized("no expiry")
            endorsed = _ENDORSED.get()
            if isinstance(endorsed, list) and CHANNEL not in endorsed:
                # the Bot Framework signs every channel's tokens with keys endorsed per channel: a key that does
                # not endorse Teams signed for Web Chat, Direct Line …, whose clients write `from` themselves
                log.info("activity refused", reason="the signing key is not endorsed for msteams")
                raise Unauthorized("endorsements")
            claims = identity.claims
            self._keep(token, claims, _SERVED.get())
        claimed = claims.get(AuthenticationConstants.SERVICE_URL_CLAIM)
        if not isinstance(claimed, str) or claimed != activity.get("serviceUrl"):
            log.info("activity refused", reason="serviceurl claim does not name the activity's serviceUrl")
            raise Unauthorized("serviceurl")
        # a new identity each time: what a turn does with it never reaches the next activity
        return ClaimsIdentity(dict(claims), security_token=token)

    def _kept(self, token: str) -> dict[str, Any] | None:
        kept = self._accepted.get(token)
        if kept is None:
            return None
        cache, served = kept[2]
        if self.clock() >= kept[0] or cache.jwk_set_with_timestamp is not served or cache.is_expired():
            del self._accepted[token]  # expired, or the key set that vouched for it is gone or stale
            return None
        self._accepted.move_to_end(token)
        return kept[1]

    def _keep(self, token: str, claims: dict[str, Any], served: tuple[Any, Any] | None) -> None:
        expires = claims.get("exp")
        if self.size <= 0 or served is None or not isinstance(expires, int | float) or isinstance(expires, bool):
            return  # a token without an expiry (or no key-set cache to tie it to) is validated every time
        if isinstance(expires, float) and not math.isfinite(expires):
            return
        until = float(min(expires, self.clock() + self.KEEP_S))  # an int of any size compares with a float
        if until <= self.clock():
            return  # accepted within the SDK's leeway only: not kept
        self._accepted[token] = (until, dict(claims), served)
        while len(self._accepted) > self.size:
            self._accepted.popitem(last=False)


def build_authentication(settings: Settings) -> tuple[AgentAuthConfiguration, InboundAuth, Connections | None]:
    """Configuration, inbound validation and outbound connections; no connections without an app id."""
    config = auth_configuration(settings)
    inbound = InboundAuth(config, metadata_url=settings.env.get(ENV_OPENID_METADATA_URL, ""))
    return config, inbound, connections(settings, config) if settings.app_id else None
