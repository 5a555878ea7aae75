"""An Okta management API stand-in over plain HTTP on 127.0.0.1.

    GET    /api/v1/users/{id|login}            404 E0000007 when unknown
    GET    /api/v1/users?search=profile.email eq "…"   (also ``filter=``)
    GET    /api/v1/meta/schemas/user/default   the user profile schema (base and custom properties)
    GET    /api/v1/users/{id}/groups
    GET    /api/v1/groups?search=profile.name eq "…"&limit=…&after=…   paged with ``Link: <…>; rel="next"``
    GET    /api/v1/groups?q=…                  a name prefix, at most ``limit`` (300), not paged (as Okta)
    GET    /api/v1/groups/{gid}
    GET    /api/v1/groups/{gid}/users?limit=…&after=…  paged with ``Link: <…>; rel="next"``
    PUT    /api/v1/groups/{gid}/users/{uid}    204, idempotent
    DELETE /api/v1/groups/{gid}/users/{uid}    204, idempotent

    POST   /oauth2/v1/token                    client credentials, ``private_key_jwt`` (service apps)

Every call needs ``Authorization: SSWS <token>``, or ``Bearer <access token>`` from the token
endpoint with the scope the call needs (401 E0000011 otherwise; 403 E0000006 for a missing
scope), and answers with
``X-Okta-Request-Id`` and the rate-limit headers ``X-Rate-Limit-Limit``/``-Remaining``/``-Reset``
(epoch seconds, fractional here so tests stay fast). :meth:`set_rate_limit` turns on a bucket
of N calls per window; beyond it the answer is 429 E0000047. ``fail_next(n, 429, retry_after)``
answers 429 with ``X-Rate-Limit-Reset`` ``retry_after`` seconds ahead.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web

from tests.standins import Fault, StandIn

SEARCH_RE = re.compile(r'^\s*profile\.(\w+)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$')


# the base user profile properties every Okta org has, by variable name (``definitions.base.properties``)
BASE_PROPERTIES = (
    "login", "email", "secondEmail", "firstName", "lastName", "middleName", "honorificPrefix", "honorificSuffix",
    "title", "displayName", "nickName", "profileUrl", "primaryPhone", "mobilePhone", "streetAddress", "city", "state",
    "zipCode", "countryCode", "postalAddress", "preferredLanguage", "locale", "timezone", "userType",
    "employeeNumber", "costCenter", "organization", "division", "department", "managerId", "manager",
)


def _error(status: int, code: str, summary: str) -> web.Response:
    return web.json_response({"errorCode": code, "errorSummary": summary, "errorLink": code,
                              "errorId": "oae" + uuid.uuid4().hex[:20], "errorCauses": []}, status=status)


class OktaStandIn(StandIn):
    def __init__(self, *, token: str = "okta-api-token", page_size: int = 2) -> None:
        super().__init__()
        self.token = token
        self.page_size = page_size
        self._clear_state()

    def _clear_state(self) -> None:
        with self.lock:
            self.users: dict[str, dict[str, Any]] = {}
            self.groups: dict[str, dict[str, Any]] = {}
            self.members: dict[str, list[str]] = {}
            self.rate: tuple[int, float] | None = None
            self.window_start = 0.0
            self.used = 0
            self.apps: dict[str, tuple[str, frozenset[str]]] = {}  # client id -> (public key PEM, scopes)
            self.access_tokens: dict[str, tuple[frozenset[str], float]] = {}  # token -> (scopes, expiry)
            self.seen_jti: set[str] = set()
            self.token_lifetime = 3600
            self.custom_properties: set[str] = set()  # the org's custom profile properties (``definitions.custom``)

    def reset(self) -> None:
        super().reset()
        self._clear_state()

    # ----- seeding and truth -----------------------------------------------------------------

    def add_user(self, email: str, *, login: str | None = None, first_name: str = "", last_name: str = "",
                 department: str | None = None, title: str | None = None, user_type: str | None = None,
                 status: str = "ACTIVE", manager: str | None = None, manager_by_login: bool = False,
                 last_login: str | None = None, attributes: dict[str, Any] | None = None) -> str:
        """``attributes``: more of the profile by Okta's names, base (``costCenter``, ``employeeNumber``,
        ``division``, ``organization``…) or custom; Okta answers with every one in ``profile``."""
        uid = "00u" + uuid.uuid4().hex[:17]
        with self.lock:  # Okta takes no profile attribute its schema lacks: one given here is a custom property
            self.custom_properties.update(set(attributes or {}) - set(BASE_PROPERTIES))
        profile: dict[str, Any] = {"login": login or email, "email": email,
                                   "firstName": first_name or email.split("@")[0], "lastName": last_name,
                                   "department": department, "title": title, "userType": user_type,
                                   **(attributes or {})}
        if manager:
            if manager_by_login:
                profile["manager"] = manager
            else:
                mid = self.user_id(manager)
                assert mid, f"seed the manager {manager} first"
                profile["managerId"] = mid
        with self.lock:
            self.users[uid] = {"id": uid, "status": status, "created": "2024-01-01T00:00:00.000Z",
                               "lastLogin": last_login,
                               "profile": profile, "_links": {"self": {"href": f"{self.url}/api/v1/users/{uid}"}}}
        return uid

    def add_property(self, name: str) -> None:
        """A custom property of the user profile schema (no user need have a value for it)."""
        with self.lock:
            self.custom_properties.add(name)

    def _schema(self) -> dict[str, Any]:
        """``GET /meta/schemas/user/default`` as Okta answers it: base and custom properties by variable name."""
        def prop(name: str, scope: str) -> dict[str, Any]:
            return {"title": name, "type": "string", "mutability": "READ_WRITE", "scope": scope,
                    "permissions": [{"principal": "SELF", "action": "READ_WRITE"}]}
        return {
            "id": f"{self.url}/meta/schemas/user/default", "$schema": "http://json-schema.org/draft-04/schema#",
            "name": "user", "title": "User", "type": "object", "created": "2024-01-01T00:00:00.000Z",
            "definitions": {
                "base": {"id": "#base", "type": "object", "required": ["login", "firstName", "lastName", "email"],
                         "properties": {n: prop(n, "NONE") for n in BASE_PROPERTIES}},
                "custom": {"id": "#custom", "type": "object", "required": [],
                           "properties": {n: prop(n, "NONE") for n in sorted(self.custom_properties)}},
            },
            "properties": {"profile": {"allOf": [{"$ref": "#/definitions/custom"}, {"$ref": "#/definitions/base"}]}},
        }

    def set_status(self, email: str, status: str) -> None:
        with self.lock:
            uid = self.user_id(email)
            assert uid
            self.users[uid]["status"] = status

    def delete_user(self, email: str) -> None:
        with self.lock:
            uid = self.user_id(email)
            if uid:
                del self.users[uid]
                for members in self.members.values():
                    if uid in members:
                        members.remove(uid)

    def add_group(self, name: str) -> str:
        gid = "00g" + uuid.uuid4().hex[:17]
        with self.lock:
            self.groups[gid] = {"id": gid, "type": "OKTA_GROUP", "profile": {"name": name, "description": None}}
            self.members[gid] = []
        return gid

    def rename_group(self, group_id: str, name: str) -> None:
        with self.lock:
            self.groups[group_id]["profile"]["name"] = name

    def add_member(self, group_id: str, email: str) -> None:
        with self.lock:
            uid = self.user_id(email)
            assert uid, f"unknown user {email}"
            if uid not in self.members[group_id]:
                self.members[group_id].append(uid)

    def user_id(self, key: str) -> str | None:
        with self.lock:
            if key in self.users:
                return key
            low = key.lower()
            for uid, u in self.users.items():
                if u["profile"]["login"].lower() == low:
                    return uid
        return None

    def member_emails(self, group_id: str) -> list[str]:
        with self.lock:
            return sorted(self.users[u]["profile"]["email"].lower() for u in self.members.get(group_id, []))

    def add_service_app(self, client_id: str, public_key_pem: str,
                        scopes: tuple[str, ...] = ("okta.users.read", "okta.groups.manage")) -> None:
        with self.lock:
            self.apps[client_id] = (public_key_pem, frozenset(scopes))

    def revoke_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def set_rate_limit(self, calls: int | None, window: float = 60.0) -> None:
        with self.lock:
            self.rate = (calls, window) if calls else None
            self.window_start, self.used = time.time(), 0

    # ----- plumbing --------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/v1/{tail:.*}", self._api)
        app.router.add_post("/oauth2/v1/token", self._token)

    async def _token(self, request: web.Request) -> web.Response:
        """Okta's org authorization server: client credentials with a signed client assertion."""
        form = await request.post()

        def refuse(error: str, description: str, status: int = 400) -> web.Response:
            return web.json_response({"error": error, "error_description": description}, status=status)

        if form.get("grant_type") != "client_credentials":
            return refuse("unsupported_grant_type", "The authorization grant type is not supported.")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return refuse("invalid_client", "Client authentication failed.", 401)
        assertion = str(form.get("client_assertion") or "")
        try:
            client_id = jwt.decode(assertion, options={"verify_signature": False}).get("iss", "")
        except jwt.PyJWTError:
            return refuse("invalid_client", "The client_assertion token is malformed.", 401)
        with self.lock:
            app = self.apps.get(client_id)
        if app is None:
            return refuse("invalid_client", "The client_id is not found.", 401)
        public_key, granted = app
        try:
            claims = jwt.decode(assertion, public_key, algorithms=["RS256"], audience=f"{self.url}/oauth2/v1/token",
                                options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except jwt.PyJWTError as exc:
            return refuse("invalid_client", f"The client_assertion token is invalid: {exc}", 401)
        if claims["sub"] != client_id or claims["exp"] - time.time() > 3600:
            return refuse("invalid_client", "The client_assertion token has invalid claims.", 401)
        with self.lock:
            if claims["jti"] in self.seen_jti:
                return refuse("invalid_client", "The client_assertion token has already been used.", 401)
            self.seen_jti.add(claims["jti"])
        asked = frozenset(str(form.get("scope") or "").split())
        if not asked or not asked <= granted:
            return refuse("invalid_scope", f"The following scopes are not allowed: {' '.join(sorted(asked - granted))}")
        token = "eyJ" + uuid.uuid4().hex + uuid.uuid4().hex
        with self.lock:
            self.access_tokens[token] = (asked, time.time() + self.token_lifetime)
        return web.json_response({"token_type": "Bearer", "expires_in": self.token_lifetime,
                                  "access_token": token, "scope": " ".join(sorted(asked))})

    def _authorized(self, request: web.Request) -> web.Response | None:
        """None when the caller may make this call; else Okta's answer."""
        header = request.headers.get("Authorization", "")
        if header == f"SSWS {self.token}":
            return None
        if header.startswith("Bearer "):
            with self.lock:
                found = self.access_tokens.get(header.removeprefix("Bearer "))
            if found is not None and found[1] > time.time():
                scopes = found[0]
                tail = request.match_info["tail"]
                needed = ("okta.groups.manage" if request.method in ("PUT", "DELETE") else
                          "okta.users.read" if tail.startswith("users") else
                          "okta.schemas.read" if tail.startswith("meta/schemas") else "okta.groups.read")
                if needed in scopes or (needed == "okta.groups.read" and "okta.groups.manage" in scopes):
                    return None
                resp = _error(403, "E0000006", "You do not have permission to perform the requested action")
                resp.headers["WWW-Authenticate"] = f'Bearer error="insufficient_scope", scope="{needed}"'
                return resp
        return _error(401, "E0000011", "Invalid token provided")

    def fault_response(self, fault: Fault, request: web.Request) -> web.Response:
        if fault.status == 429:
            resp = _error(429, "E0000047", "API call exceeded rate limit due to too many requests.")
            reset = time.time() + (fault.retry_after or 0)
            resp.headers.update({"X-Rate-Limit-Limit": "600", "X-Rate-Limit-Remaining": "0",
                                 "X-Rate-Limit-Reset": f"{reset:.3f}"})
        elif fault.status >= 500:
            resp = _error(fault.status, "E0000009", "Internal Server Error")
        elif fault.status == 403:
            resp = _error(403, "E0000006", "You do not have permission to perform the requested action")
        else:
            resp = _error(fault.status, "E0000001", "Api validation failed")
        if fault.status != 429 and fault.retry_after is not None:
            resp.headers["Retry-After"] = f"{fault.retry_after:g}"
        resp.headers["X-Okta-Request-Id"] = uuid.uuid4().hex
        return resp

    def _limit_headers(self) -> tuple[bool, dict[str, str]]:
        with self.lock:
            if self.rate is None:
                return True, {"X-Rate-Limit-Limit": "600", "X-Rate-Limit-Remaining": "599",
                              "X-Rate-Limit-Reset": str(int(time.time()) + 60)}
            calls, window = self.rate
            now = time.time()
            if now >= self.window_start + window:
                self.window_start, self.used = now, 0
            allowed = self.used < calls
            if allowed:
                self.used += 1
            return allowed, {"X-Rate-Limit-Limit": str(calls), "X-Rate-Limit-Remaining": str(calls - self.used),
                             "X-Rate-Limit-Reset": f"{self.window_start + window:.3f}"}

    async def _api(self, request: web.Request) -> web.Response:
        refused = self._authorized(request)
        if refused is not None:
            resp = refused
        else:
            allowed, limits = self._limit_headers()
            if not allowed:
                resp = _error(429, "E0000047", "API call exceeded rate limit due to too many requests.")
            else:
                resp = self._dispatch(request)
            resp.headers.update(limits)
        resp.headers["X-Okta-Request-Id"] = uuid.uuid4().hex
        return resp

    def _dispatch(self, request: web.Request) -> web.Response:
        seg = request.match_info["tail"].strip("/").split("/")
        method, query = request.method, request.query
        with self.lock:
            if seg == ["meta", "schemas", "user", "default"] and method == "GET":
                return web.json_response(self._schema())
            if seg == ["users"] and method == "GET":
                expr = query.get("search") or query.get("filter") or ""
                if not expr:  # a plain listing, as Okta answers it: the first `limit` users
                    return web.json_response(list(self.users.values())[: int(query.get("limit", "200"))])
                m = SEARCH_RE.match(expr)
                if not m:
                    return _error(400, "E0000031", f"Invalid search criteria: {expr}")
                attr, value = m.group(1), m.group(2).replace('\\"', '"').lower()
                found = [u for u in self.users.values() if str(u["profile"].get(attr) or "").lower() == value]
                return web.json_response(found)
            if seg[0] == "users" and len(seg) >= 2:
                uid = self.user_id(seg[1])
                if uid is None:
                    return _error(404, "E0000007", f"Not found: Resource not found: {seg[1]} (User)")
                if len(seg) == 2 and method == "GET":
                    return web.json_response(self.users[uid])
                if seg[2:] == ["groups"] and method == "GET":
                    return web.json_response([self.groups[g] for g, ms in self.members.items() if uid in ms])
            if seg == ["groups"] and method == "GET":
                return self._groups(request)
            if seg[0] == "groups" and len(seg) >= 2:
                gid = seg[1]
                if gid not in self.groups:
                    return _error(404, "E0000007", f"Not found: Resource not found: {gid} (UserGroup)")
                if len(seg) == 2 and method == "GET":
                    return web.json_response(self.groups[gid])
                if seg[2:] == ["users"] and method == "GET":
                    return self._page(request, gid)
                if len(seg) == 4 and seg[2] == "users":
                    uid = seg[3] if seg[3] in self.users else None
                    if uid is None:
                        return _error(404, "E0000007", f"Not found: Resource not found: {seg[3]} (User)")
                    if method == "PUT":
                        if uid not in self.members[gid]:
                            self.members[gid].append(uid)
                        return web.Response(status=204)
                    if method == "DELETE":
                        if uid in self.members[gid]:
                            self.members[gid].remove(uid)
                        return web.Response(status=204)
            return _error(404, "E0000022", f"The endpoint does not support the provided HTTP method: {method}")

    def _groups(self, request: web.Request) -> web.Response:
        """``GET /groups``: ``q`` (a name prefix, not paged), ``search`` (``profile.name eq``, paged by
        ``after`` = the last group id of the page before), else every group, paged."""
        query = request.query
        if "q" in query:
            prefix = query["q"].casefold()
            found = [g for g in self.groups.values() if g["profile"]["name"].casefold().startswith(prefix)]
            return web.json_response(found[: int(query.get("limit", "300"))])
        expr = query.get("search") or ""
        if expr:
            m = SEARCH_RE.match(expr)
            if not m or m.group(1) not in ("name", "description"):
                return _error(400, "E0000031", f"Invalid search criteria: {expr}")
            value = re.sub(r"\\(.)", r"\1", m.group(2)).casefold()
            found = [g for g in self.groups.values() if str(g["profile"].get(m.group(1)) or "").casefold() == value]
        else:
            found = list(self.groups.values())
        ids = [g["id"] for g in found]
        limit = min(int(query.get("limit", "200")), self.page_size)
        after = query.get("after")
        start = ids.index(after) + 1 if after in ids else 0
        page = found[start:start + limit]
        base = f"{self.url}/api/v1/groups"
        keep = {k: v for k, v in query.items() if k in ("search", "limit")}
        resp = web.json_response(page)
        resp.headers.add("Link", f'<{base}?{urlencode(keep)}>; rel="self"')
        if start + limit < len(found):
            resp.headers.add("Link", f'<{base}?{urlencode({**keep, "after": page[-1]["id"]})}>; rel="next"')
        return resp

    def _page(self, request: web.Request, gid: str) -> web.Response:
        limit = min(int(request.query.get("limit", "200")), self.page_size)
        members = self.members[gid]
        after = request.query.get("after")
        start = members.index(after) + 1 if after in members else 0
        page = members[start:start + limit]
        base = f"{self.url}/api/v1/groups/{gid}/users"
        links = [f'<{base}?{urlencode({"limit": request.query.get("limit", "200")})}>; rel="self"']
        if start + limit < len(members):
            if self.next_base:  # a next link to another host
                base = f"{self.next_base}/api/v1/groups/{gid}/users"
            links.append(f'<{base}?{urlencode({"limit": request.query.get("limit", "200"), "after": page[-1]})}>; '
                         f'rel="next"')
        resp = web.json_response([self.users[u] for u in page])
        for link in links:
            resp.headers.add("Link", link)
        return resp
