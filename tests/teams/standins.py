"""Stand-ins for Microsoft's side of Teams, on 127.0.0.1 in their own threads.

``BotConnector``  the Bot Connector service (the activity's ``serviceUrl``): records replies,
                  sends, updates and created conversations; answers roster look-ups.
``OpenIdIssuer``  OpenID metadata + JWKS with a locally generated RSA key, and a token endpoint
                  for the bot's outbound client-credentials tokens; ``token(...)`` signs
                  inbound tokens the way the Bot Framework channel does.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.standins import StandIn


@dataclass
class Posted:
    kind: str  # send | reply | update | create
    conversation: str
    activity_id: str | None
    body: dict[str, Any]
    size: int = 0  # bytes of the request body as it came
    content_type: str = ""  # the request's Content-Type header

    @property
    def card(self) -> dict[str, Any] | None:
        for att in self.body.get("attachments") or []:
            if att.get("contentType") == "application/vnd.microsoft.card.adaptive":
                return att["content"]
        return None

    @property
    def text(self) -> str:
        return self.body.get("text") or ""


class BotConnector(StandIn):
    """Teams answers a message activity (a send, a reply, an update) larger than its limit (about 100 KB) with 413
    and the error code ``MessageSizeTooBig``, and nothing is posted; ``max_activity_bytes`` is that limit here,
    in bytes of the request body (a test may set it lower)."""

    OUTBOUND_TOKEN = "outbound-token-from-standin"
    MAX_ACTIVITY_BYTES = 100 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.posted: list[Posted] = []
        self.roster: dict[str, dict[str, Any]] = {}  # Teams user id → member
        self.refuse_create: int | None = None  # answer creating a conversation with this status (app not installed)
        self.max_activity_bytes = self.MAX_ACTIVITY_BYTES
        self._ids = itertools.count(1)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.posted.clear()
            self.refuse_create = None
            self.max_activity_bytes = self.MAX_ACTIVITY_BYTES

    def faults_apply(self, request: web.Request) -> bool:
        return request.method != "GET"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{cid}/activities", self._send)
        app.router.add_post("/v3/conversations/{cid}/activities/{aid}", self._reply)
        app.router.add_put("/v3/conversations/{cid}/activities/{aid}", self._update)
        app.router.add_get("/v3/conversations/{cid}/members/{uid}", self._member)
        app.router.add_post("/token", self._token)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)  # as login.microsoftonline.com

    def _record(self, kind: str, conversation: str, activity_id: str | None, body: Any, size: int = 0,
                content_type: str = "") -> None:
        with self.lock:
            self.posted.append(Posted(kind, conversation, activity_id, body if isinstance(body, dict) else {}, size,
                                      content_type))

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.refuse_create is not None:
            return web.json_response({"error": {"code": "Forbidden", "message": "The bot is not installed for "
                                                "the user (personal scope)."}}, status=self.refuse_create)
        cid = f"a:created-{next(self._ids)}"
        self._record("create", cid, None, body)
        return web.json_response({"id": cid, "serviceUrl": self.url}, status=201)

    async def _activity(self, request: web.Request, kind: str, aid: str, status: int) -> web.Response:
        raw = await request.read()
        if len(raw) > self.max_activity_bytes:
            return web.json_response({"error": {"code": "MessageSizeTooBig", "message": "Message size too large."}},
                                     status=413)
        try:
            body = json.loads(raw.decode("utf-8"))  # JSON is UTF-8 (RFC 8259): a body that is not is refused
        except (UnicodeDecodeError, ValueError):
            return web.json_response({"error": {"code": "BadArgument", "message": "The body is not JSON in UTF-8."}},
                                     status=400)
        self._record(kind, request.match_info["cid"], aid, body, len(raw), request.headers.get("Content-Type", ""))
        return web.json_response({"id": aid}, status=status)

    async def _send(self, request: web.Request) -> web.Response:
        return await self._activity(request, "send", f"msg-{next(self._ids)}", 201)

    async def _reply(self, request: web.Request) -> web.Response:
        return await self._activity(request, "reply", f"msg-{next(self._ids)}", 201)

    async def _update(self, request: web.Request) -> web.Response:
        return await self._activity(request, "update", request.match_info["aid"], 200)

    async def _member(self, request: web.Request) -> web.Response:
        member = self.roster.get(request.match_info["uid"])
        if member is None:
            return web.json_response({"error": {"code": "MemberNotFoundInConversation"}}, status=404)
        return web.json_response(member)

    async def _token(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": self.OUTBOUND_TOKEN, "expires_in": 3600, "token_type": "Bearer"})

    # -- queries ----------------------------------------------------------------------------------
    def of(self, kind: str | None = None, conversation: str | None = None) -> list[Posted]:
        with self.lock:
            return [p for p in self.posted if (kind is None or p.kind == kind)
                    and (conversation is None or p.conversation == conversation)]

    def cards(self) -> list[dict[str, Any]]:
        return [c for p in self.of() if (c := p.card) is not None]


class OpenIdIssuer(StandIn):
    ISSUER = "https://api.botframework.com"

    def __init__(self) -> None:
        super().__init__()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "standin-key-1"
        self.endorsements = ["msteams"]  # the channels the key signs for

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/.well-known/openidconfiguration", self._metadata)
        app.router.add_get("/keys", self._keys)

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openidconfiguration"

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.ISSUER, "jwks_uri": f"{self.url}/keys",
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def _keys(self, request: web.Request) -> web.Response:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256", "endorsements": list(self.endorsements)})
        return web.json_response({"keys": [jwk]})

    def token(self, *, audience: str, service_url: str, issuer: str | None = None, expires_in: int = 3600,
              key: rsa.RSAPrivateKey | None = None, kid: str | None = None) -> str:
        now = int(time.time())
        claims = {"iss": issuer or self.ISSUER, "aud": audience, "serviceurl": service_url,
                  "nbf": now - 60, "iat": now - 60, "exp": now + expires_in}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})
