"""The Microsoft identity platform's user sign-in, added to the Graph stand-in (HTTPS on 127.0.0.1).

    GET  /{tenant}/oauth2/v2.0/authorize     OpenID Connect authorization endpoint: checks the client,
                                             the redirect URI, ``response_type=code``, the ``openid``
                                             scope, a PKCE ``S256`` challenge, state and nonce; "signs in"
                                             :attr:`user_oid` at once and redirects back with a code
    POST /{tenant}/oauth2/v2.0/token         also ``grant_type=authorization_code``: the code once, the
                                             same redirect URI, the client secret, and the PKCE verifier
                                             that hashes to the challenge; answers an RS256 id_token
    GET  /{tenant}/discovery/v2.0/keys       the JSON Web Key Set the id_tokens are signed with

Faults: :attr:`sign_with_other_key` (a valid-looking token under a key nobody published),
:attr:`wrong_nonce`, :attr:`wrong_audience`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.standins.graph import GraphStandIn


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LoginStandIn(GraphStandIn):
    KID = "standin-key-1"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.redirect_uris: set[str] = set()
        self.user_oid = ""
        self.user_name = ""
        self.codes: dict[str, dict[str, Any]] = {}
        self.sign_with_other_key = False
        self.wrong_nonce = False
        self.wrong_audience = False
        self.authorize_seen: list[dict[str, str]] = []
        self.code_redemptions: list[dict[str, str]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{tenant}/oauth2/v2.0/authorize", self._authorize)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._keys)
        super().routes(app)

    async def _keys(self, request: web.Request) -> web.Response:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return web.json_response({"keys": [{**public, "kid": self.KID, "use": "sig", "alg": "RS256"}]})

    async def _authorize(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.authorize_seen.append(q)
        problems = []
        if q.get("client_id") != self.client_id:
            problems.append("AADSTS700016: unknown application")
        if q.get("redirect_uri") not in self.redirect_uris:
            problems.append("AADSTS50011: the redirect URI does not match the application's")
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            problems.append("AADSTS900144: response_type=code and the openid scope are required")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            problems.append("AADSTS50148: PKCE with S256 is required")
        if not q.get("state") or not q.get("nonce"):
            problems.append("state and nonce are required")
        if problems:
            return web.json_response({"error": "invalid_request", "error_description": "; ".join(problems)},
                                     status=400)
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {"redirect_uri": q["redirect_uri"], "challenge": q["code_challenge"],
                                "nonce": q["nonce"], "oid": self.user_oid, "name": self.user_name}
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        if form.get("grant_type") != "authorization_code":
            return await super()._token(request)
        self.code_redemptions.append({k: str(v) for k, v in form.items()})

        def refuse(code: int, text: str) -> web.Response:
            return web.json_response({"error": "invalid_grant", "error_description": f"AADSTS{code}: {text}",
                                      "error_codes": [code]}, status=400)

        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid "
                                      "client secret provided.", "error_codes": [7000215]}, status=401)
        with self.lock:
            grant = self.codes.pop(str(form.get("code")), None)
        if grant is None:
            return refuse(54005, "OAuth2 Authorization code was already redeemed or is unknown.")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return refuse(500112, "The reply address does not match the one the code was issued to.")
        verifier = str(form.get("code_verifier") or "")
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return refuse(501481, "The Code_Verifier does not match the code_challenge supplied in the "
                          "authorization request.")
        now = int(time.time())
        tenant = request.match_info["tenant"]
        claims = {"iss": f"{self.url}/{tenant}/v2.0", "aud": "someone-else" if self.wrong_audience else self.client_id,
                  "iat": now, "nbf": now, "exp": now + 3600, "sub": "pairwise-" + grant["oid"][:8],
                  "oid": grant["oid"], "tid": tenant, "name": grant["name"], "ver": "2.0",
                  "nonce": "not-the-nonce" if self.wrong_nonce else grant["nonce"],
                  "preferred_username": grant["name"]}
        key = self.other_key if self.sign_with_other_key else self.key
        id_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.KID})
        client_info = _b64(json.dumps({"uid": grant["oid"], "utid": tenant}).encode())
        return web.json_response({"token_type": "Bearer", "scope": "openid profile email", "expires_in": 3599,
                                  "access_token": "user-" + secrets.token_hex(8), "id_token": id_token,
                                  "client_info": client_info})
