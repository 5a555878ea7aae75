"""How accessbot proves itself to Okta: an API token, or an OAuth 2.0 service app.

``SswsToken`` sends ``Authorization: SSWS <token>`` (a token acts with its creator's rights).
``ServiceApp`` is Okta's recommended credential for a service: a client-credentials grant at the
org authorization server (``POST {org}/oauth2/v1/token``), authenticated by a JWT signed with the
app's private key (``private_key_jwt``), for the scopes the app was granted; the access token is
cached until shortly before it expires, and a 401 from the API forces one new token.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import jwt

from handlers.ports import ProviderError
from provisioning.http import TRANSIENT_STATUSES, parse_retry_after, read_reply

DEFAULT_SCOPES = ("okta.users.read", "okta.groups.manage")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds; Okta refuses assertions that live longer than an hour
EARLY_REFRESH = 120  # seconds before expiry a cached token is replaced


class OktaCredentials(Protocol):
    async def authorization(self, session: aiohttp.ClientSession, ssl: Any) -> str:
        """The ``Authorization`` header value for the next API call."""
        ...

    def invalidate(self, header: str) -> bool:
        """The API refused ``header`` (401): forget it. True when a new one may be worth a retry."""
        ...


class SswsToken:
    def __init__(self, token: str) -> None:
        self._header = f"SSWS {token}"

    async def authorization(self, session: aiohttp.ClientSession, ssl: Any) -> str:
        return self._header

    def invalidate(self, header: str) -> bool:
        return False  # the same token would be refused again


class ServiceApp:
    """Client credentials with ``private_key_jwt`` against the org authorization server."""

    def __init__(self, *, org_url: str, client_id: str, private_key: str, key_id: str | None = None,
                 scopes: tuple[str, ...] = DEFAULT_SCOPES, timeout: float = 30.0) -> None:
        if not client_id:
            raise ValueError("an Okta service app needs its client id")
        if "PRIVATE KEY" not in private_key:
            raise ValueError("the Okta service app's private key must be a PEM private key")
        self.token_url = org_url.rstrip("/").removesuffix("/api/v1") + "/oauth2/v1/token"
        self.client_id = client_id
        self._key = private_key
        self._kid = key_id or None
        self.scopes = scopes
        self._timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_file(cls, *, org_url: str, client_id: str, key_file: str, key_id: str | None = None,
                  scopes: tuple[str, ...] = DEFAULT_SCOPES) -> ServiceApp:
        try:
            pem = Path(key_file).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read the Okta private key {key_file}: {exc.strerror}") from exc
        return cls(org_url=org_url, client_id=client_id, private_key=pem, key_id=key_id, scopes=scopes)

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
                  "iat": now, "exp": now + ASSERTION_LIFETIME, "jti": uuid.uuid4().hex}
        headers = {"kid": self._kid} if self._kid else None
        try:
            return jwt.encode(claims, self._key, algorithm="RS256", headers=headers)
        except (ValueError, TypeError) as exc:
            raise ProviderError(f"Okta token: the private key cannot sign ({exc})", transient=False) from exc

    async def authorization(self, session: aiohttp.ClientSession, ssl: Any) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                await self._fetch(session, ssl)
            return f"Bearer {self._token}"

    def invalidate(self, header: str) -> bool:
        if self._token is not None and header == f"Bearer {self._token}":
            self._token = None  # refused: the next call fetches a new one
        return True  # a new token (or one another call already fetched) is worth one more try

    async def _fetch(self, session: aiohttp.ClientSession, ssl: Any) -> None:
        form = {"grant_type": "client_credentials", "scope": " ".join(self.scopes),
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": self._assertion()}
        try:
            async with session.post(self.token_url, data=form, ssl=ssl, headers={"Accept": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=self._timeout)) as resp:
                data, text = await read_reply(resp)
                status, headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(f"Okta token: {type(exc).__name__}: {exc}", transient=True) from exc
        body = data if isinstance(data, dict) else {}
        if status == 200 and body.get("access_token"):
            if str(body.get("token_type", "Bearer")).lower() != "bearer":
                raise ProviderError(f"Okta token: token type {body.get('token_type')!r} is not supported "
                                    "(turn off 'Require DPoP' for this app)", transient=False)
            self._token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or 3600)
            self._expires = time.monotonic() + max(lifetime - EARLY_REFRESH, lifetime / 2)
            return
        error = body.get("error") or "error"
        description = body.get("error_description") or text[:200]
        raise ProviderError(f"Okta token: HTTP {status} {error}: {description}",
                            transient=status in TRANSIENT_STATUSES, status=status,
                            retry_after=parse_retry_after(headers.get("Retry-After")),
                            correlation_id=headers.get("X-Okta-Request-Id"))
