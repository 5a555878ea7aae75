"""Microsoft Entra ID through Microsoft Graph: people (``Directory``) and group membership
(``GroupProvider``).

App-only tokens come from msal (client secret or certificate), cached by msal and refreshed
once when Graph answers 401. Graph is called over aiohttp through the shared retry loop
(:mod:`provisioning.http`). Adding an existing member (400 "…already exist…") and removing a
non-member (404) are successes (SPEC §3.4).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import msal
import requests
import structlog

from handlers.eligibility import rule_places
from handlers.policy import Policy, PolicyIssue
from handlers.ports import NAMED_ATTRIBUTES, Member, Person, ProviderError
from provisioning.graph_batch import GraphBatches, _graph_error, _judge
from provisioning.http import (
    Reply,
    RetryPolicy,
    parse_retry_after,
    read_reply,
    same_origin,
    ssl_context,
    with_retries,
)

# Members and memberships a page: Graph's largest (its default is 100), so a group of 10,000 is 11 requests, not 100
MEMBER_PAGE = "999"
MEMBER_LISTING = {"$select": "id,mail,userPrincipalName", "$top": MEMBER_PAGE}
MICROSOFT_AUTHORITY_HOSTS = frozenset({
    "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
    "login.microsoftonline.us", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn",
})
USER_SELECT = "id,mail,userPrincipalName,displayName,department,jobTitle,employeeType,accountEnabled"
# Graph answers only the properties ``$select`` names, and refuses (400) a name the user type does not have. A
# policy rule may name any of these user properties, by Graph's own name, and it is selected for it:
GRAPH_USER_PROPERTIES = frozenset({
    "accountEnabled", "ageGroup", "businessPhones", "city", "companyName", "country", "creationType", "department",
    "displayName", "employeeId", "employeeType", "externalUserState", "givenName", "id", "jobTitle", "mail",
    "mailNickname", "mobilePhone", "officeLocation", "onPremisesDistinguishedName", "onPremisesDomainName",
    "onPremisesSamAccountName", "onPremisesSyncEnabled", "onPremisesUserPrincipalName", "otherMails", "postalCode",
    "preferredLanguage", "proxyAddresses", "state", "streetAddress", "surname", "usageLocation", "userPrincipalName",
    "userType",
})
# …and these, read from inside the complex property that holds them
NESTED_PROPERTIES = {
    **{f"extensionAttribute{n}": "onPremisesExtensionAttributes" for n in range(1, 16)},
    "costCenter": "employeeOrgData", "division": "employeeOrgData",
}
# a directory extension registered by an app: extension_<app id without dashes>_<name>
EXTENSION_RE = re.compile(r"^extension_[0-9a-fA-F]{32}_[A-Za-z0-9_]+$")
# Graph refuses a whole user $select (400 Request_BadRequest, "Could not find a property named
# 'extension_…_costCentre' on type 'Microsoft.DirectoryServices.User'.") when one directory extension in it is not
# registered in the tenant: misspelt, another tenant's app id, deleted since. The name it gives, when it gives one:
UNKNOWN_PROPERTY_RE = re.compile(r"property named '([^']+)'", re.I)
# …and a 400 that is about the $select without naming a property we asked for
ABOUT_SELECT_RE = re.compile(r"propert|select", re.I)
# how long a directory extension Graph refused is left out of lookups before it is asked for again (sooner when a
# policy is put in force): registering it at the tenant needs no restart
REFUSED_EXTENSION_SECONDS = 600.0


def graph_property(key: str) -> str | None:
    """What to ``$select`` for the policy attribute ``key`` (a user property, the complex property holding a
    nested one, a directory extension's own name), or None when a Graph user has no such attribute."""
    if key in GRAPH_USER_PROPERTIES or EXTENSION_RE.match(key):
        return key
    return NESTED_PROPERTIES.get(key)
PRINCIPAL = "serviceprincipal:"  # how a review names a service principal member: by its object id
NESTED = "nestedgroup:"  # how drift names a group nested into a managed group: by its object id
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PRIVATE_KEY_RE = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S)

log = structlog.get_logger("accessbot")


def attribute_warnings(policy: Policy) -> list[PolicyIssue]:
    """A warning, with its line, for each rule key no Graph user has (``accessbot policy check`` with Entra as
    the identity source): it is never selected, so a request that rule would decide is answered "could not
    check". A key that is a property spelled in another case names the spelling Graph has."""
    named = NAMED_ATTRIBUTES | {"member_of"}
    by_fold = {k.casefold(): k for k in (*GRAPH_USER_PROPERTIES, *NESTED_PROPERTIES)}
    out = []
    for rule, place, key in rule_places(policy):
        if key in named or graph_property(key) is not None:
            continue
        spelled = by_fold.get(key.casefold())
        hint = f" (Graph spells it `{spelled}`)" if spelled else \
            " (a user property by Graph's name, extensionAttribute1..15, costCenter, division, or " \
            "extension_<app id>_<name>)"
        out.append(PolicyIssue(rule.line, place, f"Entra (Graph) does not supply `{key}`{hint}: a request this "
                               "rule would decide is answered 'could not check'"))
    return out


def _odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class EntraProvider(GraphBatches):
    """Implements ``Directory`` and ``GroupProvider`` against Microsoft Graph."""

    name = "entra"

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str | None = None,
        certificate_path: str | None = None,
        certificate_thumbprint: str | None = None,
        graph_url: str = "https://graph.microsoft.com/v1.0",
        authority_url: str = "https://login.microsoftonline.com",
        session: aiohttp.ClientSession | None = None,
        max_attempts: int = 5,
        max_retry_wait: float = 30.0,
        backoff_base: float = 0.5,
        request_timeout: float = 30.0,
    ) -> None:
        if not client_secret and not certificate_path:
            raise ValueError("Entra needs a client secret or a certificate (a PEM with the private key)")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self._certificate = (certificate_path, certificate_thumbprint)
        self.graph_url = graph_url.rstrip("/")
        origin = urlsplit(self.graph_url)
        self.scopes = [f"{origin.scheme}://{origin.netloc}/.default"]
        self.authority = f"{authority_url.rstrip('/')}/{tenant_id}"
        self._instance_discovery = urlsplit(authority_url).hostname in MICROSOFT_AUTHORITY_HOSTS
        self.policy = RetryPolicy(max_attempts=max_attempts, max_retry_wait=max_retry_wait,
                                  backoff_base=backoff_base, request_timeout=request_timeout)
        self._session = session
        self._owns_session = session is None
        self._ssl = ssl_context()
        self._app: msal.ConfidentialClientApplication | None = None
        self._token_lock = asyncio.Lock()
        self._group_ids: dict[str, str] = {}
        self._pinned = False  # True once the names the policy uses were resolved: no name is looked up again
        self._user_ids: dict[str, str] = {}
        self._wanted: frozenset[str] = frozenset()  # attribute keys policy rules name that Graph can supply
        # directory extensions Graph refused to select: name -> (time.monotonic() of the refusal, why)
        self._refused: dict[str, tuple[float, str]] = {}

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # ----- tokens ----------------------------------------------------------------------------

    def _client_app(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            credential: Any = self._secret
            if not credential:
                path, thumbprint = self._certificate
                pem = Path(str(path)).read_text()
                key = PRIVATE_KEY_RE.search(pem)
                if key is None:
                    raise ProviderError(f"Entra certificate {path}: no private key in the file", transient=False)
                credential = {"private_key": key.group(0)}
                if thumbprint:  # an SHA-1 thumbprint, as the portal shows it
                    credential["thumbprint"] = thumbprint
                if "-----BEGIN CERTIFICATE-----" in pem:  # lets msal send x5c and an SHA-256 thumbprint
                    credential["public_certificate"] = pem[pem.index("-----BEGIN CERTIFICATE-----"):]
            self._app = msal.ConfidentialClientApplication(
                self.client_id, client_credential=credential, authority=self.authority,
                token_cache=msal.TokenCache(), timeout=self.policy.request_timeout,
                **({} if self._instance_discovery else {"instance_discovery": False}),
            )
        return self._app

    def _acquire(self, stale: str | None) -> dict[str, Any]:
        app = self._client_app()
        result = app.acquire_token_for_client(scopes=self.scopes)
        if stale is not None and result.get("access_token") == stale:
            cache = app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(item)
            result = app.acquire_token_for_client(scopes=self.scopes)
        return result

    async def access_token(self) -> str:
        """An app-only token for Graph (other Graph clients of the same app registration share its cache)."""
        return await self._token()

    def http_session(self) -> aiohttp.ClientSession:
        """The HTTP session Graph calls go through (shared with other Graph clients of this provider)."""
        return self._http()

    # ----- a person's sign-in (OpenID Connect) -------------------------------------------------

    async def begin_sign_in(self, redirect_uri: str, state: str) -> dict[str, Any]:
        """Start a person's sign-in with this app registration: OpenID Connect, authorization code with PKCE.

        The answer is msal's flow (``state``, ``nonce``, the PKCE verifier, ``auth_uri`` to send the browser
        to); keep it server side until the browser comes back to ``redirect_uri``.
        """
        app = await asyncio.to_thread(self._client_app)
        return dict(await asyncio.to_thread(app.initiate_auth_code_flow, [], redirect_uri=redirect_uri,
                                            state=state, response_mode="query"))

    async def finish_sign_in(self, flow: dict[str, Any], response: dict[str, str]) -> dict[str, Any]:
        """Redeem the code the browser brought back (``response``: the callback's query) at the token endpoint.

        msal checks the state and the nonce (and raises ``ValueError`` when they do not match); the answer holds
        ``id_token`` or ``error``. No token of the person stays in the cache: the app needs none after sign-in.
        """
        def redeem() -> dict[str, Any]:
            app = self._client_app()
            try:
                return dict(app.acquire_token_by_auth_code_flow(flow, response))
            finally:
                for account in app.get_accounts():
                    app.remove_account(account)

        return await asyncio.to_thread(redeem)

    async def ping(self) -> None:
        """Reachability for ``/healthz``: an app-only token can be had."""
        await self._token()

    async def _token(self, stale: str | None = None) -> str:
        """A valid app-only token; ``stale`` is one Graph refused, which must not come back."""
        async with self._token_lock:
            try:
                result = await asyncio.to_thread(self._acquire, stale)
            except requests.RequestException as exc:
                raise ProviderError(f"Entra token: {exc}", transient=True) from None
            except ValueError as exc:  # authority discovery refused
                raise ProviderError(f"Entra token: {exc}", transient=False) from None
        token = result.get("access_token")
        if not token:
            error = str(result.get("error") or "")
            raise ProviderError(
                f"Entra token: {error}: {result.get('error_description', '')}".strip(),
                transient=error in ("temporarily_unavailable", "server_error"),
                correlation_id=result.get("correlation_id"),
            )
        return str(token)

    # ----- Graph calls -----------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _send(self, method: str, url: str, token: str, request_id: str, params: dict[str, str] | None,
                    body: Any) -> Reply:
        headers = {"Authorization": f"Bearer {token}", "client-request-id": request_id,
                   "return-client-request-id": "true", "Accept": "application/json"}
        async with self._http().request(method, url, params=params, json=body, headers=headers, ssl=self._ssl,
                                        timeout=aiohttp.ClientTimeout(total=self.policy.request_timeout)) as resp:
            data, text = await read_reply(resp)
            return Reply(resp.status, resp.headers, data, text,
                         correlation_id=resp.headers.get("request-id") or resp.headers.get("client-request-id")
                         or request_id,
                         retry_after=parse_retry_after(resp.headers.get("Retry-After")))

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                    what: str, changes: bool | None = None) -> Reply:
        """One Graph request through the retry loop; a 401 refreshes the token once. ``changes`` (by default:
        anything but a GET) says whether a try may change something at Graph (``may_have_landed``)."""
        url = path if path.startswith(("https://", "http://")) else self.graph_url + path
        if not same_origin(url, self.graph_url):  # a next link to another host: the token never goes there
            raise ProviderError(f"Graph {what}: a reply sent the next page to another host ({urlsplit(url).netloc}); "
                                "not followed", transient=False)
        request_id = str(uuid.uuid4())
        refreshed = False

        async def attempt() -> Reply:
            nonlocal refreshed
            token = await self._token()
            reply = await self._send(method, url, token, request_id, params, body)
            if reply.status == 401 and not refreshed:
                refreshed = True
                token = await self._token(stale=token)
                reply = await self._send(method, url, token, request_id, params, body)
            return reply

        return await with_retries(attempt, self.policy, what=f"Graph {what}", correlation_id=request_id,
                                  changes=method != "GET" if changes is None else changes)

    def _error(self, reply: Reply, what: str) -> ProviderError:
        code, message = _graph_error(reply)
        return ProviderError(f"Graph {what}: HTTP {reply.status} {code}: {message}", transient=False,
                             status=reply.status, correlation_id=reply.correlation_id,
                             may_have_landed=reply.may_have_landed)

    async def _pages(self, path: str, params: dict[str, str], what: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        query: dict[str, str] | None = params
        while url:
            reply = await self._call("GET", url, params=query, what=what)
            if not reply.ok:
                raise self._error(reply, what)
            items.extend(reply.data.get("value") or [])
            url, query = reply.data.get("@odata.nextLink"), None
        return items

    # ----- Directory -------------------------------------------------------------------------

    def want_attributes(self, keys: Iterable[str]) -> None:
        """Select these policy attribute keys too, from now on (added to those asked for before); a key no Graph
        user has is left out, and a rule on it cannot be judged (``Person.carried`` does not hold it). A policy
        being put in force also has the directory extensions Graph refused asked for again (one may have been
        registered since)."""
        self._wanted = self._wanted | {k for k in keys if graph_property(k) is not None}
        self._refused.clear()

    @staticmethod
    def _select(wanted: frozenset[str]) -> str:
        extra = sorted({str(graph_property(k)) for k in wanted} - set(USER_SELECT.split(",")))
        return ",".join([USER_SELECT, *extra])

    def _left_out(self, wanted: frozenset[str]) -> dict[str, str]:
        """The attributes of ``wanted`` Graph refused to select lately (directory extensions, user properties), each
        with why: not asked for again until ``REFUSED_EXTENSION_SECONDS`` have passed (or a policy is put in
        force)."""
        now = time.monotonic()
        for name, (since, _) in list(self._refused.items()):
            if now - since >= REFUSED_EXTENSION_SECONDS:
                del self._refused[name]
        return {k: self._refused[k][1] for k in wanted if k in self._refused}

    def _refused_by(self, reply: Reply, asked: frozenset[str]) -> tuple[frozenset[str], bool]:
        """The policy attributes of ``asked`` a 400 to a user ``$select`` is about, and whether Graph named them:
        those whose selected name its message names (a directory extension, or a user property this tenant's
        Graph lacks, as a national cloud may); else, when it names no property we selected and is about the select
        (or a property), every directory extension asked for. None of them when it names a property selected for
        the bot itself (``USER_SELECT``: an error as before), or is about something else."""
        own = {p.casefold() for p in USER_SELECT.split(",")}
        optional = {k: str(graph_property(k)) for k in asked if str(graph_property(k)).casefold() not in own}
        if reply.status != 400 or not optional:
            return frozenset(), False
        extensions = frozenset(k for k in optional if EXTENSION_RE.match(k))
        _, message = _graph_error(reply)
        named = UNKNOWN_PROPERTY_RE.search(message)
        if named:
            name = named.group(1).casefold()
            hit = frozenset(k for k, selected in optional.items() if selected.casefold() == name)
            if hit:
                return hit, True
            if name in {p.casefold() for p in self._select(asked).split(",")}:
                return frozenset(), False
        if extensions and (named or ABOUT_SELECT_RE.search(message)):
            return extensions, False
        return frozenset(), False

    def _remember_refused(self, names: Iterable[str], reply: Reply) -> dict[str, str]:
        code, message = _graph_error(reply)
        said = f"HTTP {reply.status} {code}: {message}".rstrip(": ")[:240]

        def unknown(name: str) -> str:
            if EXTENSION_RE.match(name):
                return f"the directory extension `{name}`"
            selected = graph_property(name)
            return f"the user property `{selected}`" + (f" that holds `{name}`" if selected != name else "")

        why = {name: f"Graph does not know {unknown(name)} (a user $select naming it was answered "
                     f"{said}); it is asked for again within {REFUSED_EXTENSION_SECONDS / 60:g} minutes or when a "
                     "policy is put in force" for name in names}
        now = time.monotonic()
        for name, text in why.items():
            self._refused[name] = (now, text)
            log.warning("Graph refused to select an attribute a policy rule names: rules on it answer "
                        "'could not check'", attribute=name, answer=said, correlation_id=reply.correlation_id)
        return why

    async def _get_selecting(self, path: str, params: dict[str, str], wanted: frozenset[str], what: str
                             ) -> tuple[Reply, frozenset[str], dict[str, str]]:
        """GET a user (or users) with the policy attributes ``wanted`` selected beside ``USER_SELECT``; returns the
        reply, the keys it selected, and those left out with why.

        Graph refuses the whole ``$select`` (400) for one directory extension it does not know (or a user property
        this tenant's Graph lacks): one policy rule naming it would fail every lookup of everyone. Such an attribute
        is left out and the GET asked again (once for each one Graph names; once without every extension when it
        names none we asked for, and only when that answer is no 400 too are they taken as the cause). Left-out ones
        are remembered (:meth:`_left_out`); a rule on one is answered "could not check", naming it and why."""
        left = self._left_out(wanted)
        while True:
            asked = frozenset(wanted - left.keys())
            reply = await self._call("GET", path, params={**params, "$select": self._select(asked)}, what=what)
            refused, named = self._refused_by(reply, asked)
            if not refused:
                return reply, asked, left
            if named:
                left = {**left, **self._remember_refused(sorted(refused), reply)}
                continue
            # Graph named none we asked for: asked again without every extension, which were the cause only if
            # that answer is no 400 too (else the first answer is the error, as before)
            fewer = frozenset(asked - refused)
            again = await self._call("GET", path, params={**params, "$select": self._select(fewer)}, what=what)
            if again.status == 400:
                return reply, asked, left
            return again, fewer, {**left, **self._remember_refused(sorted(refused), reply)}

    async def _find_user(self, key: str, wanted: frozenset[str] = frozenset()
                         ) -> tuple[dict[str, Any] | None, frozenset[str], dict[str, str]]:
        """The user with this object id, UPN or mail, or None; the policy attributes of ``wanted`` Graph was asked
        for with it; those left out, with why (a directory extension Graph does not know)."""
        key = key.strip()
        if not key:
            return None, frozenset(), {}
        reply, asked, left = await self._get_selecting(f"/users/{quote(key, safe='@')}", {}, wanted, f"user {key}")
        if reply.ok:
            return dict(reply.data), asked, left
        if reply.status != 404:
            raise self._error(reply, f"user {key}")
        if "@" not in key:
            return None, asked, left
        found, asked, left = await self._get_selecting("/users", {"$filter": f"mail eq {_odata_literal(key)}"},
                                                       wanted, f"user {key}")
        if not found.ok:
            raise self._error(found, f"user {key}")
        values = found.data.get("value") or []
        return (dict(values[0]) if values else None), asked, left

    async def _manager(self, user_id: str) -> str | None:
        reply = await self._call("GET", f"/users/{user_id}/manager", params={"$select": "id,mail,userPrincipalName"},
                                 what="manager")
        if reply.status == 404:
            return None
        if not reply.ok:
            raise self._error(reply, "manager")
        address = reply.data.get("mail") or reply.data.get("userPrincipalName")
        return str(address).lower() if address else None

    async def _memberships(self, user_id: str) -> frozenset[str]:
        names: set[str] = set()
        for group in await self._pages(f"/users/{user_id}/transitiveMemberOf",
                                       {"$select": "id,displayName", "$top": MEMBER_PAGE},
                                       "memberships"):
            names.update(str(v) for v in (group.get("id"), group.get("displayName")) if v)
        return frozenset(names)

    async def _person(self, user: dict[str, Any], asked: frozenset[str], left: dict[str, str]) -> Person:
        """The person of a user Graph answered with ``asked`` selected: it carries those attributes and no others
        (a policy reloaded meanwhile may want more; they were not asked for this answer), and says why of those
        ``left`` out (a directory extension Graph refused)."""
        uid = str(user["id"])
        manager, groups = await asyncio.gather(self._manager(uid), self._memberships(uid))
        email = str(user.get("mail") or user.get("userPrincipalName") or "").lower()
        self._user_ids[email] = uid
        return Person(
            email=email, name=str(user.get("displayName") or email), department=user.get("department"),
            title=user.get("jobTitle"), employment_type=user.get("employeeType"), manager=manager,
            active=user.get("accountEnabled") is not False, groups=groups, aad_object_id=uid,
            extra={**self._attributes(user, asked), "user_principal_name": user.get("userPrincipalName")},
            carried=frozenset({*asked, "user_principal_name"}), unsupplied=dict(left),
        )

    @staticmethod
    def _attributes(user: dict[str, Any], wanted: frozenset[str]) -> dict[str, Any]:
        """The selected attributes policy rules name, by the policy's key: ``extensionAttributeN`` from
        ``onPremisesExtensionAttributes``, ``costCenter``/``division`` from ``employeeOrgData``.

        Graph matches a selected name in any case and answers it by its own spelling (a directory extension's app
        id in small letters, its name as registered): a key is found in the answer in any case, or a rule on
        ``extension_<APP ID>_…`` would take a value Graph gave for no value at all."""
        out: dict[str, Any] = {}
        own = {k.casefold(): k for k in user}
        for key in wanted:
            holder = NESTED_PROPERTIES.get(key)
            value = user.get(own.get((holder or key).casefold(), holder or key))
            if holder:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                out[key] = value
        return out

    async def get_user(self, email: str) -> Person | None:
        # one set for the question and the answer: a reload may add to it meanwhile
        user, asked, left = await self._find_user(email, self._wanted)
        return await self._person(user, asked, left) if user else None

    async def find_by_aad_object_id(self, object_id: str) -> Person | None:
        user, asked, left = await self._find_user(object_id, self._wanted)
        return await self._person(user, asked, left) if user else None

    async def find_by_slack_id(self, slack_id: str) -> Person | None:
        return None

    # ----- GroupProvider ---------------------------------------------------------------------

    async def find_groups(self, ref: str) -> list[str]:
        """The ids of every group this reference could mean: an object id that exists, or each group
        whose display name is exactly ``ref`` (anyone in the tenant can create one)."""
        ref = ref.strip()
        if GUID_RE.match(ref):
            reply = await self._call("GET", f"/groups/{ref}", params={"$select": "id"}, what=f"group {ref}")
            if reply.status == 404:
                return []
            if not reply.ok:
                raise self._error(reply, f"group {ref}")
            return [str(reply.data.get("id") or ref)]
        groups = await self._pages("/groups", {"$filter": f"displayName eq {_odata_literal(ref)}",
                                               "$select": "id,displayName"}, f"group {ref}")
        return sorted({str(g["id"]) for g in groups if g.get("id")})

    def pin_groups(self, ids: dict[str, str]) -> None:
        """Use these ids (resolved when the policy loaded) for every group named by display name, and
        refuse a display name that is not among them rather than look it up again."""
        self._group_ids = dict(ids)
        self._pinned = True

    async def _group_id(self, group: str) -> str:
        group = group.strip()
        if GUID_RE.match(group):
            return group
        if group in self._group_ids:
            return self._group_ids[group]
        if self._pinned:
            raise ProviderError(f"Graph group {group}: not resolved when the policy loaded; name the group by its "
                                "object id", transient=False)
        reply = await self._call("GET", "/groups", params={"$filter": f"displayName eq {_odata_literal(group)}",
                                                           "$select": "id,displayName"}, what=f"group {group}")
        if not reply.ok:
            raise self._error(reply, f"group {group}")
        ids = [str(g["id"]) for g in reply.data.get("value") or []]
        if len(ids) != 1:
            problem = "no group is" if not ids else f"{len(ids)} groups are"
            raise ProviderError(f"Graph group {group}: {problem} named so; name the group by its object id",
                                transient=False, status=reply.status, correlation_id=reply.correlation_id)
        self._group_ids[group] = ids[0]
        return ids[0]

    async def _user_id(self, email: str) -> str | None:
        key = email.strip().lower()
        for prefix in (PRINCIPAL, NESTED):  # a service principal or a nested group, as a review or drift names
            if key.startswith(prefix):  # them: by its object id
                object_id = key.removeprefix(prefix)
                return object_id if GUID_RE.match(object_id) else None
        if key not in self._user_ids:
            user, _, _ = await self._find_user(key)
            if user is None:
                return None
            self._user_ids[key] = str(user["id"])
        return self._user_ids[key]

    def _request(self, kind: str, gid: str, uid: str) -> tuple[str, str, Any]:
        if kind == "add":
            return "POST", f"/groups/{gid}/members/$ref", {"@odata.id": f"{self.graph_url}/directoryObjects/{uid}"}
        if kind == "remove":
            return "DELETE", f"/groups/{gid}/members/{uid}/$ref", None
        raise ValueError(f"unknown membership operation {kind!r}")

    async def _change(self, kind: str, group: str, email: str) -> None:
        gid = await self._group_id(group)
        uid = await self._user_id(email)
        what = f"{kind} {email} {'to' if kind == 'add' else 'from'} {group}"
        if uid is None and kind == "remove":
            # not found by address (renamed, or not yet searchable): the group's own list names its id
            uid = await self._member_id(gid, group, email)
            if uid is None:
                return  # not in the group: nothing left to remove
        if uid is None:
            raise ProviderError(f"Graph {what}: no such user", transient=False, status=404)
        method, path, body = self._request(kind, gid, uid)
        reply = await self._call(method, path, body=body, what=what)
        if kind == "add" and reply.status == 404:  # the cached id may belong to a user since re-created
            earlier = reply.may_have_landed  # a try of the first request may have added the old id
            try:
                self._user_ids.pop(email.strip().lower(), None)
                fresh = await self._user_id(email)
                if fresh is not None and fresh != uid:
                    method, path, body = self._request(kind, gid, fresh)
                    reply = await self._call(method, path, body=body, what=what)
            except ProviderError as exc:
                raise exc.landed(earlier) from exc.__cause__
            reply.may_have_landed |= earlier
        if kind == "remove" and reply.status == 404:
            await self._removal_gone(gid, group, email, uid)
            return
        code, message = _graph_error(reply)
        error = _judge(kind, reply.status, code, message, f"Graph {what}", reply.correlation_id,
                       may_have_landed=reply.may_have_landed)
        if error is not None:
            raise error

    async def _removal_gone(self, gid: str, group: str, email: str, uid: str) -> None:
        """A removal of ``uid`` answered 404: that id is no member (or no user) now. It may be a stale id of this
        address (the account re-created, and the new one added by another process or by hand): the group's own
        list names the member with this address, which is removed. Only someone not in it is taken as removed."""
        self._user_ids.pop(email.strip().lower(), None)
        other = await self._member_id(gid, group, email)
        if other is None or other == uid:
            return
        what = f"remove {email} from {group}"
        method, path, body = self._request("remove", gid, other)
        reply = await self._call(method, path, body=body, what=what)
        code, message = _graph_error(reply)
        error = _judge("remove", reply.status, code, message, f"Graph {what}", reply.correlation_id,
                       may_have_landed=reply.may_have_landed)
        if error is not None:
            raise error

    async def _add_again(self, group: str, email: str, uid: str) -> bool:
        """An add of ``uid`` through ``$batch`` answered 404: the cached id may belong to a user since re-created,
        as a single add finds (:meth:`_change`); the add is made again, in one call, for the id the address names
        now. False (nothing done) when it names the same id still, or nobody."""
        self._user_ids.pop(email.strip().lower(), None)
        fresh = await self._user_id(email)
        if fresh is None or fresh == uid:
            return False
        await self._change("add", group, email)
        return True

    async def _member_id(self, gid: str, group: str, email: str) -> str | None:
        """The object id of the member of ``group`` whose mail or user principal name is ``email``."""
        key = email.strip().lower()
        for member in await self._pages(f"/groups/{gid}/members", dict(MEMBER_LISTING),
                                        f"members of {group}"):
            if key in (str(member.get("mail") or "").lower(), str(member.get("userPrincipalName") or "").lower()):
                return str(member["id"])
        return None

    async def add_member(self, group: str, email: str) -> None:
        await self._change("add", group, email)

    async def remove_member(self, group: str, email: str) -> None:
        await self._change("remove", group, email)

    async def review_members(self, group: str) -> list[str]:
        """The group's direct members as a review's snapshot names them: users by address, service principals
        as ``serviceprincipal:<object id>`` (one listing, as ``list_members``)."""
        return [m for m in await self.drift_members(group) if not m.startswith(NESTED)]

    async def drift_members(self, group: str) -> list[str]:
        """Every direct member of the group, as drift names them: users by address, service principals as
        ``serviceprincipal:<object id>``, a group nested into it as ``nestedgroup:<object id>`` (its members
        hold the access through it, with no grant behind them). One listing, as ``list_members``."""
        gid = await self._group_id(group)
        names = []
        for member in await self._pages(f"/groups/{gid}/members", dict(MEMBER_LISTING),
                                        f"members of {group}"):
            kind = member.get("@odata.type", "#microsoft.graph.user")
            if kind == "#microsoft.graph.servicePrincipal":
                names.append(f"{PRINCIPAL}{member['id']}".lower())
            elif kind == "#microsoft.graph.group":
                names.append(f"{NESTED}{member['id']}".lower())
            elif kind == "#microsoft.graph.user" and (member.get("mail") or member.get("userPrincipalName")):
                names.append(str(member.get("mail") or member.get("userPrincipalName")).lower())
        return names

    async def list_members(self, group: str) -> list[str]:
        gid = await self._group_id(group)
        emails = []
        for member in await self._pages(f"/groups/{gid}/members", dict(MEMBER_LISTING),
                                        f"members of {group}"):
            if member.get("@odata.type", "#microsoft.graph.user") != "#microsoft.graph.user":
                continue
            address = member.get("mail") or member.get("userPrincipalName")
            if address:
                emails.append(str(address).lower())
        return emails

    async def member_of(self, member: str, groups: Sequence[str]) -> set[str]:
        """Those of ``groups`` that ``member`` is a direct member of, from the member's own ``memberOf`` (one
        request a 999 groups it belongs to), never from the groups' member lists."""
        wanted = {group: (await self._group_id(group)).lower() for group in groups}
        key = member.strip().lower()
        for attempt in range(2):
            oid = await self._user_id(key)
            if oid is None:
                return set()
            try:
                ids = await self._memberships_of(key, oid)
            except ProviderError as exc:
                if exc.status != 404:
                    raise
                if attempt or key.startswith((PRINCIPAL, NESTED)):
                    return set()  # no such object: a member of nothing
                self._user_ids.pop(key, None)  # the cached id may belong to a user since deleted
                continue
            return {group for group, gid in wanted.items() if gid in ids}
        return set()

    async def _memberships_of(self, key: str, oid: str) -> set[str]:
        """The ids of the groups the object ``oid`` (named ``key`` as drift names it) is a direct member of."""
        kind = "servicePrincipals" if key.startswith(PRINCIPAL) else "groups" if key.startswith(NESTED) else "users"
        listed = await self._pages(f"/{kind}/{quote(oid, safe='')}/memberOf", {"$select": "id", "$top": MEMBER_PAGE},
                                   f"memberships of {key}")
        return {str(g.get("id") or "").lower() for g in listed
                if g.get("@odata.type", "#microsoft.graph.group") == "#microsoft.graph.group"}

    async def snapshot_members(self, group: str) -> list[Member]:
        """The group's direct members with attributes, manager and last sign-in (``signInActivity``, which
        Graph gives only per user and only with AuditLog.Read.All: unknown where it is refused), read
        through ``$batch``; service principals come with their first owner."""
        gid = await self._group_id(group)
        what = f"members of {group}"
        listed = await self._pages(f"/groups/{gid}/members", {"$select": USER_SELECT + ",appId", "$top": MEMBER_PAGE},
                                   what)
        users = [m for m in listed if m.get("@odata.type", "#microsoft.graph.user") == "#microsoft.graph.user"]
        principals = [m for m in listed if m.get("@odata.type") == "#microsoft.graph.servicePrincipal"]
        asks: list[tuple[str, str]] = []
        for user in users:
            asks.append((f"s:{user['id']}", f"/users/{user['id']}?$select=id,signInActivity"))
            asks.append((f"m:{user['id']}", f"/users/{user['id']}/manager?$select=id,mail,userPrincipalName"))
        asks += [(f"o:{sp['id']}", f"/servicePrincipals/{sp['id']}/owners?$select=id,mail,userPrincipalName")
                 for sp in principals]
        answers = await self._batch_get(asks, what)
        members = []
        for user in users:
            uid = str(user["id"])
            email = str(user.get("mail") or user.get("userPrincipalName") or "").lower()
            status, body = answers[f"s:{uid}"]
            if status >= 400 and status != 403:  # 403: no licence or permission for sign-in activity
                raise ProviderError(f"Graph sign-in activity of {email}: HTTP {status}", transient=False, status=status)
            seen = last_sign_in((body or {}).get("signInActivity")) if status < 300 else None
            status, body = answers[f"m:{uid}"]
            if status >= 400 and status != 404:
                raise ProviderError(f"Graph manager of {email}: HTTP {status}", transient=False, status=status)
            manager = (body or {}).get("mail") or (body or {}).get("userPrincipalName") if status < 300 else None
            members.append(Member(
                email=email, name=str(user.get("displayName") or email), department=user.get("department"),
                title=user.get("jobTitle"), employment_type=user.get("employeeType"),
                manager=str(manager).lower() if manager else None, active=user.get("accountEnabled") is not False,
                last_sign_in=seen))
        for sp in principals:
            status, body = answers[f"o:{sp['id']}"]
            if status >= 400:
                raise ProviderError(f"Graph owners of {sp.get('displayName')}: HTTP {status}", transient=False,
                                    status=status)
            owners = sorted(str(o.get("mail") or o.get("userPrincipalName")).lower()
                            for o in (body or {}).get("value") or [] if o.get("mail") or o.get("userPrincipalName"))
            members.append(Member(email=f"{PRINCIPAL}{sp['id']}", name=str(sp.get("displayName") or sp["id"]),
                                  kind="service", owner=owners[0] if owners else None,
                                  active=sp.get("accountEnabled") is not False))
        return sorted(members, key=lambda m: m.email)



def _graph_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def last_sign_in(activity: Any) -> datetime | None:
    """The latest sign-in Graph's ``signInActivity`` records (interactive or not), or None."""
    if not isinstance(activity, dict):
        return None
    found = [_graph_time(activity.get(k)) for k in ("lastSignInDateTime", "lastNonInteractiveSignInDateTime",
                                                   "lastSuccessfulSignInDateTime")]
    return max((f for f in found if f is not None), default=None)
