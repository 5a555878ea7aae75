"""A Microsoft identity platform + Microsoft Graph stand-in, served over HTTPS on 127.0.0.1.

Login (msal talks to these with ``requests``):
    GET  /{tenant}/v2.0/.well-known/openid-configuration
    POST /{tenant}/oauth2/v2.0/token          client credentials; wrong secret -> AADSTS7000215;
                                              a certificate's assertion is checked against
                                              ``certificate_pem`` (AADSTS700027 otherwise)

Graph, under ``/v1.0`` (bearer token required, real error shape ``{"error": {"code", "message"}}``):
    GET    /users/{id|upn}  /users?$filter=mail eq '…'  /users/{id}/manager
                                              a $select naming a property the user type lacks -> 400
                                              (names match in any case; the answer spells each as Graph does)
                                              (a directory extension not registered: Request_BadRequest,
                                              "Could not find a property named '…' on type
                                              'Microsoft.DirectoryServices.User'.")
    GET    /users/{id}/transitiveMemberOf    /groups?$filter=displayName eq '…'   /groups/{id}
    GET    /users|servicePrincipals|groups/{id}/memberOf   direct memberships (paged as below)
    GET    /groups/{id}/members              (paged with @odata.nextLink, ``page_size`` a page; users and
                                              service principals)
    GET    /users/{id}?$select=signInActivity  only when selected; 403 while ``sign_in_forbidden``
    GET    /servicePrincipals/{id}/owners
    POST   /groups/{id}/members/$ref         existing member -> 400 "…already exist…"
    DELETE /groups/{id}/members/{uid}/$ref   non-member -> 404
    POST   /$batch                           at most 20 requests, each judged on its own

Seed with :meth:`add_user`, :meth:`add_group`, :meth:`add_member`; read the truth with
:meth:`member_emails`. Faults: the base class's ``fail_next``/``slow_next``/``drop_next`` (Graph
routes only), :meth:`fail_inner_next` for requests inside a batch, :meth:`revoke_tokens` (the
next call answers 401; ``accept_tokens = False`` refuses every token), :meth:`set_write_quota`
(N writes per window, then 429 + Retry-After).
"""

from __future__ import annotations

import base64
import collections
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.standins import Fault, StandIn, _Faults
from tests.standins.tls import LocalTLS

USER_FIELDS = ("id", "mail", "userPrincipalName", "displayName", "department", "jobTitle", "employeeType",
               "accountEnabled")
DEFAULT_USER_FIELDS = ("id", "mail", "userPrincipalName", "displayName", "jobTitle")
# the user properties a $select may name here (Graph refuses any other name with 400); directory extensions
# (extension_<app id>_<name>) may be selected when registered (``register_extension``)
USER_PROPERTIES = frozenset({
    "accountEnabled", "ageGroup", "businessPhones", "city", "companyName", "country", "creationType", "department",
    "displayName", "employeeId", "employeeOrgData", "employeeType", "externalUserState", "givenName", "id",
    "jobTitle", "mail", "mailNickname", "mobilePhone", "officeLocation", "onPremisesDistinguishedName",
    "onPremisesDomainName", "onPremisesExtensionAttributes", "onPremisesSamAccountName", "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName", "otherMails", "postalCode", "preferredLanguage", "proxyAddresses",
    "signInActivity", "state", "streetAddress", "surname", "usageLocation", "userPrincipalName", "userType",
})
EXTENSION_RE = re.compile(r"^extension_[0-9a-fA-F]{32}_[A-Za-z0-9_]+$")
FILTER_RE = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$")
ALREADY_EXISTS = "One or more added object references already exist for the following modified properties: 'members'."

Result = tuple[int, Any, dict[str, str]]


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Result:
    return status, {"error": {"code": code, "message": message,
                              "innerError": {"date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                             "request-id": str(uuid.uuid4())}}}, headers or {}


def _not_found(what: str) -> Result:
    return _error(404, "Request_ResourceNotFound",
                  f"Resource '{what}' does not exist or one of its queried reference-property objects are not present.")


class GraphStandIn(StandIn):
    def __init__(self, tls: LocalTLS, *, tenant: str = "contoso-tenant", client_id: str = "accessbot-app",
                 client_secret: str = "s3cret", page_size: int = 2, max_top: int | None = None) -> None:
        super().__init__(tls=tls.server_context())
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_size = page_size
        # the largest page $top may ask for (Graph: 999); None: every page is page_size, so tests page at 2
        self.max_top = max_top
        self.inner_faults = _Faults()
        self._clear_state()

    def _clear_state(self) -> None:
        with self.lock:
            self.users: dict[str, dict[str, Any]] = {}
            self.groups: dict[str, dict[str, Any]] = {}
            self.members: dict[str, list[str]] = {}
            self.managers: dict[str, str] = {}
            self.sign_ins: dict[str, dict[str, Any]] = {}
            self.sign_in_forbidden = False  # a tenant without the licence or AuditLog.Read.All
            self.principals: dict[str, dict[str, Any]] = {}
            self.owners: dict[str, list[str]] = {}
            self.extensions: set[str] = set()  # directory extension properties registered for users
            self.dropped: set[str] = set()  # user properties this Graph does not have (``drop_property``)
            # refuse an unknown $select name as Graph's OData parser does in some tenants (Azure AD B2C): naming
            # the whole term, not the property
            self.odata_select_errors = False
            self.tokens_issued = 0
            self.valid_tokens: set[str] = set()
            self.accept_tokens = True
            self.certificate_pem: str | None = None
            self.quota: tuple[int, float] | None = None
            self.writes: collections.deque[float] = collections.deque()
            self.throttled_writes = 0

    def reset(self) -> None:
        super().reset()
        self.inner_faults.clear()
        self._clear_state()

    @property
    def graph_url(self) -> str:
        return f"{self.url}/v1.0"

    # ----- seeding and truth -----------------------------------------------------------------

    def add_user(self, mail: str, *, upn: str | None = None, display_name: str = "", department: str | None = None,
                 job_title: str | None = None, employee_type: str | None = None, enabled: bool = True,
                 manager: str | None = None, object_id: str | None = None, last_sign_in: str | None = None,
                 last_non_interactive: str | None = None, properties: dict[str, Any] | None = None) -> str:
        """``properties``: more user properties by Graph's names (``companyName``, ``employeeOrgData``,
        ``onPremisesExtensionAttributes`` as a dict of ``extensionAttributeN``, a registered extension)."""
        uid = object_id or str(uuid.uuid4())
        with self.lock:
            if last_sign_in or last_non_interactive:
                self.sign_ins[uid] = {"lastSignInDateTime": last_sign_in, "lastSignInRequestId": str(uuid.uuid4()),
                                      "lastNonInteractiveSignInDateTime": last_non_interactive,
                                      "lastNonInteractiveSignInRequestId": str(uuid.uuid4())}
            self.users[uid] = {"id": uid, "mail": mail, "userPrincipalName": upn or mail,
                               "displayName": display_name or mail.split("@")[0], "department": department,
                               "jobTitle": job_title, "employeeType": employee_type, "accountEnabled": enabled,
                               "onPremisesExtensionAttributes": {f"extensionAttribute{n}": None for n in range(1, 16)},
                               **(properties or {})}
            if manager:
                mid = self.user_id(manager)
                assert mid, f"seed the manager {manager} first"
                self.managers[uid] = mid
        return uid

    def update_user(self, mail: str, **properties: Any) -> None:
        """Change user properties by Graph's names (``department``, a registered extension's name…)."""
        with self.lock:
            uid = self.user_id(mail)
            assert uid, f"no user {mail}"
            self.users[uid].update(properties)

    def register_extension(self, name: str) -> None:
        """A directory extension (``extension_<app id>_<name>``) an app registered for users: selectable."""
        with self.lock:
            self.extensions.add(name)

    def delete_extension(self, name: str) -> None:
        """The app deleted the directory extension: a ``$select`` naming it is refused (400) from now on."""
        with self.lock:
            self.extensions.discard(name)

    def drop_property(self, name: str) -> None:
        """This Graph has no user property ``name`` (as a national cloud may lack one): a ``$select`` naming it is
        refused (400)."""
        with self.lock:
            self.dropped.add(name)

    def delete_user(self, mail: str) -> None:
        with self.lock:
            uid = self.user_id(mail)
            if uid:
                del self.users[uid]
                for members in self.members.values():
                    if uid in members:
                        members.remove(uid)

    def add_group(self, display_name: str, *, object_id: str | None = None) -> str:
        gid = object_id or str(uuid.uuid4())
        with self.lock:
            self.groups[gid] = {"id": gid, "displayName": display_name}
            self.members[gid] = []
        return gid

    def add_service_principal(self, display_name: str, *, owners: tuple[str, ...] = ()) -> str:
        spid = str(uuid.uuid4())
        with self.lock:
            self.principals[spid] = {"id": spid, "appId": str(uuid.uuid4()), "displayName": display_name,
                                     "accountEnabled": True}
            self.owners[spid] = [self.user_id(o) or o for o in owners]
        return spid

    def add_member(self, group_id: str, member: str) -> None:
        """``member``: a user's mail/UPN/id, a group id (nesting) or a service principal id."""
        with self.lock:
            mid = member if member in self.groups or member in self.principals else self.user_id(member)
            assert mid, f"unknown member {member}"
            if mid not in self.members[group_id]:
                self.members[group_id].append(mid)

    def user_id(self, key: str) -> str | None:
        with self.lock:
            if key in self.users:
                return key
            low = key.lower()
            for uid, u in self.users.items():
                if low in ((u["mail"] or "").lower(), u["userPrincipalName"].lower()):
                    return uid
        return None

    def _by_id_or_upn(self, key: str) -> str | None:
        """``/users/{key}`` takes an object id or a userPrincipalName, never a mail."""
        if key in self.users:
            return key
        return next((uid for uid, u in self.users.items() if u["userPrincipalName"].lower() == key.lower()), None)

    def member_emails(self, group_id: str) -> list[str]:
        with self.lock:
            return sorted((self.users[m]["mail"] or self.users[m]["userPrincipalName"]).lower()
                          for m in self.members.get(group_id, []) if m in self.users)

    # ----- switches --------------------------------------------------------------------------

    def fail_inner_next(self, n: int = 1, status: int = 429, retry_after: float | None = 0.05) -> None:
        self.inner_faults.push(Fault("status", status=status, retry_after=retry_after), n)

    def revoke_tokens(self) -> None:
        with self.lock:
            self.valid_tokens.clear()

    def set_write_quota(self, writes: int | None, window: float = 150.0) -> None:
        with self.lock:
            self.quota = (writes, window) if writes else None
            self.writes.clear()

    # ----- routes ----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_route("*", "/v1.0/{tail:.*}", self._graph)

    def faults_apply(self, request: web.Request) -> bool:
        return request.path.startswith("/v1.0/")

    def fault_response(self, fault: Fault, request: web.Request) -> web.Response:
        headers = {"request-id": str(uuid.uuid4()),
                   "client-request-id": request.headers.get("client-request-id", "")}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        code = {429: "TooManyRequests", 503: "ServiceUnavailable", 502: "BadGateway", 504: "GatewayTimeout",
                400: "BadRequest", 403: "Authorization_RequestDenied"}.get(fault.status, "UnknownError")
        _, body, _ = _error(fault.status, code, f"Stand-in fault {fault.status}.")
        return web.json_response(body, status=fault.status, headers=headers)

    async def _openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        base = f"{self.url}/{tenant}"
        return web.json_response({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "issuer": f"{base}/v2.0", "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        })

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type",
                                      "error_description": "AADSTS70003: The app requested an unsupported grant type.",
                                      "error_codes": [70003]}, status=400)
        if form.get("client_id") != self.client_id:
            return web.json_response({
                "error": "unauthorized_client",
                "error_description": f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                                     f"found in the directory '{self.tenant}'.\r\nTrace ID: {trace}\r\n"
                                     f"Correlation ID: {corr}\r\nTimestamp: {stamp}",
                "error_codes": [700016], "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
                "error_uri": f"{self.url}/error?code=700016"}, status=400)
        if form.get("client_assertion"):
            problem = self._assertion_problem(str(form["client_assertion"]), f"{self.url}/{self.tenant}")
            if problem:
                return web.json_response({
                    "error": "invalid_client",
                    "error_description": f"AADSTS700027: {problem}\r\nTrace ID: {trace}\r\n"
                                         f"Correlation ID: {corr}\r\nTimestamp: {stamp}",
                    "error_codes": [700027], "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
                    "error_uri": f"{self.url}/error?code=700027"}, status=401)
        elif form.get("client_secret") != self.client_secret:
            return web.json_response({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                                     "in the request is the client secret value, not the client secret ID, for a "
                                     f"secret added to app '{self.client_id}'.\r\nTrace ID: {trace}\r\n"
                                     f"Correlation ID: {corr}\r\nTimestamp: {stamp}",
                "error_codes": [7000215], "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
                "error_uri": f"{self.url}/error?code=7000215"}, status=401)
        token = "eyJ0eXAiOiJKV1QifQ." + uuid.uuid4().hex
        with self.lock:
            self.tokens_issued += 1
            self.valid_tokens.add(token)
        return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                  "access_token": token})

    def _assertion_problem(self, assertion: str, authority: str) -> str | None:
        """Why a certificate's client assertion is refused, or None when it is good."""
        if not self.certificate_pem:
            return "Client assertion contains an invalid signature: no certificate is registered for the app."
        cert = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        header = jwt.get_unverified_header(assertion)
        sha1 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).rstrip(b"=").decode()
        sha256 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
        if str(header.get("x5t")).rstrip("=") != sha1 and str(header.get("x5t#S256")).rstrip("=") != sha256:
            return f"Client assertion contains an unknown key: {header.get('x5t#S256') or header.get('x5t')}."
        try:
            claims = jwt.decode(assertion, cert.public_key(), algorithms=["RS256", "PS256"],  # type: ignore[arg-type]
                                audience=f"{authority}/oauth2/v2.0/token")
        except jwt.PyJWTError as exc:
            return f"Client assertion failed signature validation: {exc}."
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return "Client assertion is not issued by the app."
        return None

    async def _graph(self, request: web.Request) -> web.Response:
        headers = {"request-id": str(uuid.uuid4()),
                   "client-request-id": request.headers.get("client-request-id", "")}
        auth = request.headers.get("Authorization", "")
        with self.lock:
            authorised = self.accept_tokens and auth.startswith("Bearer ") and auth[7:] in self.valid_tokens
        if not authorised:
            status, body, _ = _error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
            return web.json_response(body, status=status, headers=headers)
        raw = await request.read()
        body = json.loads(raw) if raw else None
        tail = "/" + request.match_info["tail"]
        if tail == "/$batch" and request.method == "POST":
            status, data, extra = self._batch(body or {})
        else:
            status, data, extra = self._dispatch(request.method, tail, dict(request.query), body)
        headers.update(extra)
        if data is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(data, status=status, headers=headers)

    # ----- Graph semantics -------------------------------------------------------------------

    def _batch(self, body: dict[str, Any]) -> Result:
        reqs = body.get("requests") or []
        if len(reqs) > 20:
            return _error(400, "BadRequest", "Number of batch requests exceeds the limit of 20.")
        responses = []
        for r in reqs:
            fault = self.inner_faults.pop()
            if fault is not None:
                h = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                status, data, extra = _error(fault.status, "TooManyRequests" if fault.status == 429 else "Fault",
                                             f"Stand-in inner fault {fault.status}.", h)
            else:
                parts = urlsplit(r.get("url", ""))
                path = "/" + parts.path.lstrip("/")
                query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
                query = {unquote(k): unquote(v) for k, v in query.items()}
                status, data, extra = self._dispatch(r.get("method", "GET").upper(), path, query, r.get("body"))
            responses.append({"id": r.get("id"), "status": status,
                              "headers": {"Content-Type": "application/json", **extra}, "body": data})
        return 200, {"responses": responses}, {}

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> Result:
        seg = [unquote(s) for s in path.strip("/").split("/")]
        with self.lock:
            if method == "GET" and seg[:1] == ["users"] and len(seg) <= 2 and (bad := self._unknown_select(query)):
                if self.odata_select_errors:
                    return _error(400, "BadRequest", "Parsing OData Select and Expand failed: Term "
                                  f"'{query.get('$select')}' is not valid in a $select or $expand expression.")
                if EXTENSION_RE.match(bad):  # passes Graph's own schema; the directory behind it has no such name
                    return _error(400, "Request_BadRequest", f"Could not find a property named '{bad}' on type "
                                  "'Microsoft.DirectoryServices.User'.")
                return _error(400, "BadRequest", f"Could not find a property named '{bad}' on type "
                              "'microsoft.graph.user'.")
            if method == "GET" and seg == ["users"]:
                return self._list([self.users[u] for u in self._filter(self.users, query)], path, query)
            if method == "GET" and seg == ["groups"]:
                return self._list([self.groups[g] for g in self._filter(self.groups, query)], path, query)
            if seg[0] == "users" and len(seg) >= 2:
                uid = self._by_id_or_upn(seg[1])
                if uid is None:
                    return _not_found(seg[1])
                if len(seg) == 2 and method == "GET":
                    row = self.users[uid]
                    if "signInActivity" in query.get("$select", ""):
                        if self.sign_in_forbidden:
                            return _error(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                                          "Neither tenant is B2C or tenant doesn't have premium license")
                        row = {**row, "signInActivity": self.sign_ins.get(uid)}
                    return 200, self._project(row, query, DEFAULT_USER_FIELDS), {}
                if seg[2:] == ["manager"] and method == "GET":
                    mid = self.managers.get(uid)
                    if mid is None or mid not in self.users:
                        return _not_found("manager")
                    return 200, {"@odata.type": "#microsoft.graph.user",
                                 **self._project(self.users[mid], query, DEFAULT_USER_FIELDS)}, {}
                if seg[2:] == ["memberOf"] and method == "GET":
                    return self._member_of(uid, path, query)
                if seg[2:] == ["transitiveMemberOf"] and method == "GET":
                    items = [{"@odata.type": "#microsoft.graph.group", **self._project(self.groups[g], query,
                                                                                        ("id", "displayName"))}
                             for g in self._transitive(uid)]
                    return self._list(items, path, query, project=False)
            if seg[0] in ("servicePrincipals", "groups") and seg[2:] == ["memberOf"] and method == "GET":
                if seg[1] not in (self.principals if seg[0] == "servicePrincipals" else self.groups):
                    return _not_found(seg[1])
                return self._member_of(seg[1], path, query)
            if seg[0] == "servicePrincipals" and len(seg) == 3 and seg[2] == "owners" and method == "GET":
                if seg[1] not in self.principals:
                    return _not_found(seg[1])
                owners = [{"@odata.type": "#microsoft.graph.user", **self._project(self.users[o], query,
                                                                                   DEFAULT_USER_FIELDS)}
                          for o in self.owners.get(seg[1], []) if o in self.users]
                return self._list(owners, path, query, project=False)
            if seg[0] == "groups" and len(seg) >= 2:
                gid = seg[1]
                if gid not in self.groups:
                    return _not_found(gid)
                if len(seg) == 2 and method == "GET":
                    return 200, self.groups[gid], {}
                if seg[2:] == ["members"] and method == "GET":
                    items = [{"@odata.type": "#microsoft.graph.user", **self._project(self.users[m], query,
                                                                                       DEFAULT_USER_FIELDS)}
                             if m in self.users else
                             {"@odata.type": "#microsoft.graph.servicePrincipal",
                              **self._project(self.principals[m], query, ("id", "appId", "displayName"))}
                             if m in self.principals else {"@odata.type": "#microsoft.graph.group", **self.groups[m]}
                             for m in self.members[gid] if m in self.users or m in self.groups or m in self.principals]
                    return self._list(items, path, query, project=False)
                if seg[2:] == ["members", "$ref"] and method == "POST":
                    return self._write(lambda: self._add(gid, body))
                if len(seg) == 5 and seg[2] == "members" and seg[4] == "$ref" and method == "DELETE":
                    return self._write(lambda: self._remove(gid, seg[3]))
            return _error(400, "BadRequest", f"Unsupported request: {method} {path}")

    def _write(self, action: Any) -> Result:
        if self.quota:
            limit, window = self.quota
            now = time.monotonic()
            while self.writes and self.writes[0] <= now - window:
                self.writes.popleft()
            if len(self.writes) >= limit:
                self.throttled_writes += 1
                wait = max(0.01, self.writes[0] + window - now)
                return _error(429, "TooManyRequests", "Too many requests.", {"Retry-After": f"{wait:.3f}"})
            self.writes.append(now)
        return action()

    def _add(self, gid: str, body: Any) -> Result:
        ref = (body or {}).get("@odata.id", "")
        uid = ref.rstrip("/").rsplit("/", 1)[-1]
        if uid not in self.users and uid not in self.groups and uid not in self.principals:  # any directory object
            return _not_found(uid)
        if uid in self.members[gid]:
            return _error(400, "Request_BadRequest", ALREADY_EXISTS)
        self.members[gid].append(uid)
        return 204, None, {}

    def _remove(self, gid: str, uid: str) -> Result:
        if uid not in self.members[gid]:
            return _not_found(uid)
        self.members[gid].remove(uid)
        return 204, None, {}

    def _member_of(self, member: str, path: str, query: dict[str, str]) -> Result:
        """The groups ``member`` is a direct member of (``memberOf``), paged like any listing."""
        items = [{"@odata.type": "#microsoft.graph.group",
                  **self._project(self.groups[g], query, ("id", "displayName"))}
                 for g, members in self.members.items() if member in members]
        return self._list(items, path, query, project=False)

    def _transitive(self, member: str) -> list[str]:
        found: list[str] = []
        frontier = [member]
        while frontier:
            current = frontier.pop()
            for gid, members in self.members.items():
                if current in members and gid not in found:
                    found.append(gid)
                    frontier.append(gid)
        return found

    @staticmethod
    def _filter(table: dict[str, dict[str, Any]], query: dict[str, str]) -> list[str]:
        expr = query.get("$filter")
        if not expr:
            return list(table)
        m = FILTER_RE.match(expr)
        if not m:
            raise web.HTTPBadRequest(text=f"unsupported filter {expr}")
        field, value = m.group(1), m.group(2).replace("''", "'").lower()
        return [k for k, row in table.items() if str(row.get(field) or "").lower() == value]

    def _unknown_select(self, query: dict[str, str]) -> str | None:
        """The first name a user ``$select`` gives that no user property or registered extension has."""
        known = {n.casefold() for n in (USER_PROPERTIES - self.dropped) | self.extensions}
        for name in (f.strip() for f in query.get("$select", "").split(",") if f.strip()):
            if name.casefold() not in known:  # Graph matches property names in any case
                return name
        return None

    @staticmethod
    def _project(row: dict[str, Any], query: dict[str, str], default: tuple[str, ...]) -> dict[str, Any]:
        select = query.get("$select")
        fields = [f.strip() for f in select.split(",")] if select else list(default)
        # a name selected in another case is answered by the property's own name, as Graph answers it
        own = {k.casefold(): k for k in row}
        named = [own[f.casefold()] for f in fields if f.casefold() in own]
        return {k: row[k] for k in named}

    def _list(self, items: list[dict[str, Any]], path: str, query: dict[str, str], project: bool = True) -> Result:
        if project:
            items = [self._project(i, query, tuple(i)) for i in items]
        start = int(query.get("$skiptoken", "0") or 0)
        size = self.page_size  # Graph's default page; $top asks for more, up to max_top (999 at Graph)
        if query.get("$top", "").isdigit() and self.max_top:
            size = max(1, min(int(query["$top"]), self.max_top))
        page = items[start:start + size]
        data: dict[str, Any] = {"@odata.context": f"{self.graph_url}/$metadata#{path.strip('/')}", "value": page}
        if start + size < len(items):
            rest = {k: v for k, v in query.items() if k != "$skiptoken"}
            rest["$skiptoken"] = str(start + size)
            base = f"{self.next_base}/v1.0" if self.next_base else self.graph_url  # next_base: a link to another host
            data["@odata.nextLink"] = f"{base}{path}?{urlencode(rest)}"
        return 200, data, {}
