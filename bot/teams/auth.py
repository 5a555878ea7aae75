"""Bot Framework authentication: inbound JWT validation by the SDK, outbound tokens fetched without blocking.

Inbound: :func:`build_authentication` gives the SDK's ``ConfigurationBotFrameworkAuthentication``
an attribute object (a plain dict would silently turn authentication off). With
``MicrosoftAppId`` empty the bot runs in local emulator mode; otherwise every activity must
carry a token the SDK accepts, and :func:`authenticate` turns every failure into
:class:`Unauthorized` (the SDK lets some surface as 500s).

Outbound: :class:`ClientCredentialFactory` fetches the app's client-credentials token with
aiohttp inside ``create_credentials`` (which the SDK awaits), caches it until shortly before it
expires, and hands the SDK a credentials object that only returns the cached token, so no
synchronous token call runs on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from botbuilder.integration.aiohttp import (
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AppCredentials,
    AuthenticateRequestResult,
    AuthenticationConstants,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)

from bot.settings import Settings

log = structlog.get_logger("accessbot.teams.auth")

# Overrides read from the environment (``Settings.env``): sovereign clouds and local test servers.
ENV_OPENID_METADATA_URL = "ACCESSBOT_TEAMS_OPENID_METADATA_URL"
ENV_TOKEN_ISSUER = "ACCESSBOT_TEAMS_TOKEN_ISSUER"
ENV_TOKEN_URL = "ACCESSBOT_TEAMS_TOKEN_URL"


class Unauthorized(Exception):
    """The activity's token is missing or not valid for this bot."""


@dataclass
class BotConfig:
    """The attribute object the SDK's configuration classes read."""

    APP_ID: str = ""
    APP_PASSWORD: str = ""
    APP_TYPE: str = "MultiTenant"
    APP_TENANTID: str = ""
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL: str | None = None
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str | None = None
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str | None = None
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str | None = None
    OAUTH_URL: str | None = None
    VALIDATE_AUTHORITY: bool = True


def bot_config(settings: Settings) -> BotConfig:
    app_type = settings.app_type or ("SingleTenant" if settings.app_tenant_id else "MultiTenant")
    cfg = BotConfig(APP_ID=settings.app_id, APP_PASSWORD=settings.app_password, APP_TYPE=app_type,
                    APP_TENANTID=settings.app_tenant_id)
    metadata = settings.env.get(ENV_OPENID_METADATA_URL, "")
    issuer = settings.env.get(ENV_TOKEN_ISSUER, "")
    if metadata or issuer:
        # Any parameterised value switches the SDK to its parameterised mode: give it every value.
        cfg.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = metadata or AuthenticationConstants.\
            TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
        cfg.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = metadata or AuthenticationConstants.\
            TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        cfg.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = issuer or AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
        cfg.TO_CHANNEL_FROM_BOT_LOGIN_URL = AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL
        cfg.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        cfg.OAUTH_URL = AuthenticationConstants.OAUTH_URL
    return cfg


class _TokenCredentials(AppCredentials):
    """Hands the SDK a token that was fetched asynchronously."""

    def __init__(self, app_id: str, token: str, oauth_scope: str) -> None:
        super().__init__(app_id=app_id, oauth_scope=oauth_scope)
        self._token = token

    def get_access_token(self, force_refresh: bool = False) -> str:
        return self._token


class ClientCredentialFactory(ServiceClientCredentialsFactory):
    """App id + password (multi- or single-tenant); tokens from the OAuth token endpoint via aiohttp."""

    def __init__(self, app_id: str, password: str, *, tenant_id: str = "", token_url: str = "",
                 authority_url: str = "https://login.microsoftonline.com", timeout: float = 10.0) -> None:
        self.app_id = app_id
        self.password = password
        tenant = tenant_id or "botframework.com"
        self.token_url = token_url or f"{authority_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"
        self.timeout = timeout
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(app_id) and app_id == self.app_id

    async def is_authentication_disabled(self) -> bool:
        return not self.app_id

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> Any:
        if not self.app_id:
            return MicrosoftAppCredentials.empty()
        if app_id != self.app_id:
            raise Unauthorized("credentials asked for another app id")
        scope = oauth_scope or AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        return _TokenCredentials(app_id, await self.token(scope), scope)

    async def token(self, scope: str) -> str:
        cached = self._cache.get(scope)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        async with self._lock:
            cached = self._cache.get(scope)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            form = {"grant_type": "client_credentials", "client_id": self.app_id,
                    "client_secret": self.password, "scope": scope.rstrip("/") + "/.default"}
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(self.token_url, data=form) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or "access_token" not in body:
                    raise RuntimeError(f"token endpoint answered {resp.status}: "
                                       f"{str(body.get('error_description') or body.get('error'))[:200]}")
            lifetime = float(body.get("expires_in", 3600))
            self._cache[scope] = (body["access_token"], time.monotonic() + max(60.0, lifetime - 300))
            return body["access_token"]


def credentials_factory(settings: Settings) -> ServiceClientCredentialsFactory:
    cfg = bot_config(settings)
    if cfg.APP_TYPE.lower() == "userassignedmsi":  # managed identity: the SDK's own factory
        return ConfigurationServiceClientCredentialFactory(cfg)
    tenant = settings.app_tenant_id if cfg.APP_TYPE.lower() == "singletenant" else ""
    return ClientCredentialFactory(settings.app_id, settings.app_password, tenant_id=tenant,
                                   token_url=settings.env.get(ENV_TOKEN_URL, ""),
                                   authority_url=settings.authority_url)


class ReusingBotFrameworkAuthentication(ConfigurationBotFrameworkAuthentication):
    """The SDK's authentication, with its user-token client built once per app id, not per activity.

    ``CloudAdapter.process_activity`` asks for a user-token client (the OAuth sign-in API) on
    every activity; building one costs milliseconds (msrest's retry table), more than the rest of
    the SDK's work on an invoke. The client holds only the app's credentials and the endpoint,
    so one per app id serves every turn; it is rebuilt now and then all the same.
    """

    TTL = 3600.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._user_token_clients: dict[str, tuple[Any, float]] = {}

    async def create_user_token_client(self, claims_identity: Any) -> Any:
        claims = getattr(claims_identity, "claims", None) or {}
        key = str(claims.get("aud") or claims.get("appid") or claims.get("azp") or "")
        now = time.monotonic()
        cached = self._user_token_clients.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        client = await super().create_user_token_client(claims_identity)
        self._user_token_clients[key] = (client, now + self.TTL)
        return client


def build_authentication(settings: Settings, factory: ServiceClientCredentialsFactory | None = None
                         ) -> ConfigurationBotFrameworkAuthentication:
    cfg = bot_config(settings)
    if cfg.APP_TYPE.lower() == "singletenant" and not (settings.app_tenant_id and settings.app_password):
        raise SystemExit("MicrosoftAppType=SingleTenant needs MicrosoftAppTenantId and MicrosoftAppPassword")
    return ReusingBotFrameworkAuthentication(cfg, credentials_factory=factory or credentials_factory(settings))


async def authenticate(auth: ConfigurationBotFrameworkAuthentication, activity: Activity,
                       header: str | None) -> AuthenticateRequestResult:
    """The SDK's validation; any failure (missing, expired, wrong audience or issuer, garbage) → Unauthorized."""
    try:
        result = await auth.authenticate_request(activity, header or None)  # type: ignore[arg-type]
    except Exception as exc:
        log.info("activity refused", reason=type(exc).__name__, detail=str(exc)[:200])
        raise Unauthorized(str(exc)) from None
    if result is None or result.claims_identity is None or not result.claims_identity.is_authenticated:
        raise Unauthorized("no identity")
    return result
