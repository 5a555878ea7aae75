""""Sign in with Microsoft": OpenID Connect, authorization code with PKCE, through msal.

msal makes the state, the nonce and the PKCE verifier, builds the authorization URL and redeems
the code at the token endpoint. The flow is kept server side (as a one-time token keyed by the
state's SHA-256) and bound to the browser by a short-lived cookie, so a callback that this browser
did not start is refused. msal checks the nonce but not the id_token's signature (it trusts the
TLS channel); we check both: the signature against the tenant's published keys, the audience,
the issuer, the tenant and the nonce. The person is found by the token's object id (``oid``),
never by a name or an email claim, which the user can change.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import aiohttp
import jwt
import structlog
from aiohttp import web

from bot.settings import Settings
from bot.web import PREFIX
from bot.web.routes import REFUSALS, html, signin_page
from bot.web.session import board, secure, set_session
from handlers.context import one_lookup_per_person
from handlers.dashboard.signin import new_secret, sign_in_verified, store_flow, take_flow
from provisioning.entra import EntraProvider
from provisioning.http import ssl_context

log = structlog.get_logger("accessbot.dashboard")

FLOW_COOKIE = "accessbot_oidc"
SECURE_FLOW_COOKIE = "__Host-accessbot_oidc"  # on https: Secure, Path=/, no Domain (a sibling host cannot set it)
CALLBACK = f"{PREFIX}/login/entra/callback"
KEYS_TTL = 3600.0
ERROR_CODE = re.compile(r"[a-z_]{1,60}")  # an OAuth error code (access_denied, consent_required, ...)


class EntraSignIn:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tenant = settings.entra_tenant_id
        self.client_id = settings.entra_client_id
        self.authority = f"{settings.authority_url.rstrip('/')}/{self.tenant}"
        self.redirect_uri = settings.public_base + CALLBACK
        self._metadata: dict[str, Any] | None = None
        self._keys: tuple[float, dict[str, Any]] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def provider(request: web.Request) -> EntraProvider:
        """The Entra provider: the app registration's msal client lives there (one credential, one cache)."""
        provider = board(request).app.deps.providers.get("entra")
        if not isinstance(provider, EntraProvider):
            raise web.HTTPNotFound()
        return provider

    async def _get(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.get(url, ssl=ssl_context(), timeout=aiohttp.ClientTimeout(total=15)) as resp:
            resp.raise_for_status()
            return dict(await resp.json(content_type=None))

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            self._metadata = await self._get(f"{self.authority}/v2.0/.well-known/openid-configuration")
        return self._metadata

    async def _key(self, kid: str) -> Any:
        now = time.monotonic()
        for attempt in range(2):  # keys roll over: an unknown kid fetches the set once more
            if self._keys is None or now - self._keys[0] > KEYS_TTL or attempt:
                jwks = await self._get(str((await self.metadata())["jwks_uri"]))
                self._keys = (now, {k.get("kid"): k for k in jwks.get("keys", [])})
            jwk = self._keys[1].get(kid)
            if jwk is not None:
                return jwt.PyJWK(jwk).key
        raise jwt.InvalidTokenError(f"no published key {kid!r}")

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The id_token's claims once its signature, audience, issuer, lifetime, tenant and nonce hold."""
        header = jwt.get_unverified_header(id_token)
        if header.get("alg") != "RS256":
            raise jwt.InvalidTokenError(f"unexpected algorithm {header.get('alg')!r}")
        key = await self._key(str(header.get("kid")))
        issuer = str((await self.metadata())["issuer"]).replace("{tenantid}", self.tenant)
        claims = jwt.decode(id_token, key, algorithms=["RS256"], audience=self.client_id, issuer=issuer,
                            options={"require": ["exp", "iat", "aud", "iss", "nonce", "oid"]}, leeway=60)
        # msal keeps the nonce in the flow and sends its SHA-256 (hex) in the authorization request
        if claims.get("nonce") != hashlib.sha256(nonce.encode("ascii")).hexdigest():
            raise jwt.InvalidTokenError("the nonce is not the one this sign-in sent")
        if claims.get("tid") not in (None, self.tenant):
            raise jwt.InvalidTokenError("the token is from another tenant")
        return dict(claims)


def flow_cookie(request: web.Request) -> tuple[str, str]:
    """The name and path of the cookie that binds a sign-in to the browser that started it. Behind https it is
    ``__Host-`` prefixed, as the session cookie is: a sibling host could otherwise plant its own sign-in's state
    and send the browser to the callback with its own code (signing the victim in as someone else)."""
    return (SECURE_FLOW_COOKIE, "/") if secure(request) else (FLOW_COOKIE, CALLBACK)


def _entra(request: web.Request) -> EntraSignIn:
    oidc = board(request).oidc
    if oidc is None:
        raise web.HTTPNotFound()
    return oidc  # type: ignore[no-any-return]


async def entra_start(request: web.Request) -> web.StreamResponse:
    oidc = _entra(request)
    b = board(request)
    state = new_secret()
    flow = await oidc.provider(request).begin_sign_in(oidc.redirect_uri, state)
    await store_flow(b.app.deps, b.source, state, flow)
    response = web.Response(status=303, headers={"Location": flow["auth_uri"]})
    # Lax: the cookie must come back on the identity platform's redirect to us (a cross-site navigation)
    name, path = flow_cookie(request)
    response.set_cookie(name, state, max_age=600, path=path, httponly=True, samesite="Lax", secure=secure(request))
    return response


async def entra_callback(request: web.Request) -> web.StreamResponse:
    oidc = _entra(request)
    b = board(request)
    query = dict(request.query)
    state = query.get("state", "")
    name, path = flow_cookie(request)
    if not state or request.cookies.get(name) != state:
        return signin_page(request, status=403, message="This sign-in was not started in this browser.")
    if query.get("error"):  # named by its code only: the words of an address someone crafted never show
        code = query["error"] if ERROR_CODE.fullmatch(query["error"]) else "an error"
        return signin_page(request, status=403, message=f"Microsoft sign-in refused: {code}.")
    flow = await take_flow(b.app.deps, b.source, state)
    if flow is None:
        return signin_page(request, status=403, message="This sign-in has expired or was used; start again.")
    try:
        result = await oidc.provider(request).finish_sign_in(flow, query)
    except (ValueError, RuntimeError) as exc:  # msal's own checks (state, nonce) raise
        log.info("entra sign-in refused", reason=str(exc)[:200])
        return signin_page(request, status=403, message="Microsoft sign-in could not be verified.")
    if "error" in result or not result.get("id_token"):
        log.info("entra sign-in refused", error=result.get("error"), description=result.get("error_description"))
        return signin_page(request, status=403, message="Microsoft sign-in failed; start again.")
    try:
        claims = await oidc.verify(str(result["id_token"]), str(flow.get("nonce")))
    except (jwt.PyJWTError, aiohttp.ClientError, KeyError) as exc:
        log.info("entra id_token refused", reason=str(exc))
        return signin_page(request, status=403, message="Microsoft sign-in could not be verified.")
    with one_lookup_per_person():
        person = await b.app.deps.directory.find_by_aad_object_id(str(claims["oid"]))
        if person is None:
            return signin_page(request, status=403, message="Your Microsoft account is not linked to a person "
                               "the identity source knows.")
        signed = await sign_in_verified(b.app.deps, b.source, person.email, "entra", {"oid": claims["oid"]})
    if not signed.ok or signed.session is None:
        return signin_page(request, status=403, message=REFUSALS.get(signed.reason, REFUSALS["unknown"]))
    # A page, not a redirect: the navigation here began at the identity platform (cross-site), so a
    # SameSite=Strict cookie would not go along on a redirect; the page's own navigation is same-site.
    response = html(request, "continue.html", viewer=None)
    set_session(request, response, signed.session)
    response.del_cookie(name, path=path, secure=secure(request), httponly=True, samesite="Lax")
    return response
