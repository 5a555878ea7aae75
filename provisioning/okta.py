"""Okta through its management API: people (``Directory``) and group membership
(``GroupProvider``).

A profile names its group by id (Okta group names are not unique); a ``member_of`` condition may name a
group by its name, which is resolved to the group's id when the policy loads (``find_groups``,
:mod:`handlers.group_resolution`): a person's groups are read as ids only, so a second group given the
same name later proves nothing. Okta paces clients with
``X-Rate-Limit-Remaining`` / ``X-Rate-Limit-Reset`` (epoch seconds): when none remain, the next
call waits for the reset, and a 429 is retried once the reset has passed (SPEC §2.4). Retries go
through the shared loop in :mod:`provisioning.http`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import structlog

from handlers.eligibility import rule_places
from handlers.policy import Policy, PolicyIssue
from handlers.ports import NAMED_ATTRIBUTES, Member, Person, ProviderError
from provisioning.http import (
    Reply,
    RetryPolicy,
    parse_retry_after,
    read_reply,
    same_origin,
    ssl_context,
    with_retries,
)
from provisioning.okta_auth import OktaCredentials, SswsToken

INACTIVE_STATUSES = frozenset({"SUSPENDED", "DEPROVISIONED"})
AMBIGUOUS = 409  # the status of the error naming an email that several live accounts carry
GROUP_ID_RE = re.compile(r"^00g[0-9A-Za-z]+$")  # Okta group ids: ``00g`` and letters and digits
# the user profile schema: ``definitions.base.properties`` and ``definitions.custom.properties``, each property keyed
# by its variable name, the name a user's ``profile`` carries it by
USER_SCHEMA = "/meta/schemas/user/default"
# keys a person carries that are not profile properties: the account's status and id
OWN_KEYS = frozenset({"status", "okta_id"})
# how long the bot goes without a user profile schema Okta would not give before asking for it again (sooner when a
# policy is put in force)
SCHEMA_RETRY_SECONDS = 600.0

log = structlog.get_logger("accessbot")


def attribute_warnings(policy: Policy, properties: Iterable[str]) -> list[PolicyIssue]:
    """A warning, with its line, for each rule key that is neither an attribute the bot names nor a property of
    the Okta user profile schema (``properties``): no Okta user has it, so a rule on it reads "no value", and an
    ``ineligible`` rule on it refuses nobody. A key that is a property spelled in another case names Okta's
    spelling (Okta's profile names are case-sensitive)."""
    known = set(properties)
    named = NAMED_ATTRIBUTES | OWN_KEYS | {"member_of"}
    by_fold = {k.casefold(): k for k in sorted(known)}
    out = []
    for rule, place, key in rule_places(policy):
        if key in named or key in known:
            continue
        spelled = by_fold.get(key.casefold())
        hint = f" (Okta spells it `{spelled}`)" if spelled else ""
        out.append(PolicyIssue(rule.line, place, f"the Okta user profile has no `{key}`{hint}: no person has a "
                               "value for it"))
    return out


def _okta_error(reply: Reply) -> str:
    if isinstance(reply.data, dict) and reply.data.get("errorCode"):
        return f"{reply.data.get('errorCode')}: {reply.data.get('errorSummary', '')}"
    return reply.text[:200]


def _okta_time(value: object) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OktaProvider:
    """Implements ``Directory`` and ``GroupProvider`` against the Okta management API."""

    name = "okta"
    # a group name the policy uses that cannot be resolved because Okta does not answer is resolved at its next
    # use (checks needing it fail closed meanwhile) rather than refusing the start (handlers.group_resolution)
    resolve_later = True

    def __init__(
        self,
        *,
        org_url: str,
        token: str = "",
        credentials: OktaCredentials | None = None,
        session: aiohttp.ClientSession | None = None,
        max_attempts: int = 5,
        max_retry_wait: float = 30.0,
        backoff_base: float = 0.5,
        request_timeout: float = 30.0,
    ) -> None:
        base = org_url.rstrip("/")
        self.api = (base if base.endswith("/api/v1") else base + "/api/v1")
        if credentials is None and not token:
            raise ValueError("Okta needs an API token or a service app's credentials")
        self.credentials: OktaCredentials = credentials or SswsToken(token)
        self.policy = RetryPolicy(max_attempts=max_attempts, max_retry_wait=max_retry_wait,
                                  backoff_base=backoff_base, request_timeout=request_timeout)
        self._session = session
        self._owns_session = session is None
        self._ssl = ssl_context()
        self._paused_until = 0.0
        self._user_ids: dict[str, str] = {}
        self._group_ids: dict[str, str] = {}  # names the policy uses → the ids resolved when it loaded
        self._properties: frozenset[str] | None = None  # the user profile schema's properties, once read
        self._schema_due = 0.0  # the monotonic time from which the schema is to be read (again)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # ----- HTTP ------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _seconds_until(self, reset: float, headers: Any) -> float:
        """Seconds until the epoch ``reset``, measured on the server's clock when ours is far off."""
        now = time.time()
        try:
            server_now = parsedate_to_datetime(headers.get("Date")).timestamp() if headers.get("Date") else now
        except (TypeError, ValueError, IndexError):
            server_now = now
        if abs(server_now - now) > 2:
            now = server_now
        return max(0.0, reset - now)

    async def _send(self, method: str, url: str, params: dict[str, str] | None, authorization: str) -> Reply:
        pause = self._paused_until - time.time()
        if pause > 0:
            await asyncio.sleep(min(pause, self.policy.max_retry_wait))
        headers = {"Authorization": authorization, "Accept": "application/json"}
        async with self._http().request(method, url, params=params, headers=headers, ssl=self._ssl,
                                        timeout=aiohttp.ClientTimeout(total=self.policy.request_timeout)) as resp:
            data, text = await read_reply(resp)
            reset = _float(resp.headers.get("X-Rate-Limit-Reset"))
            wait = self._seconds_until(reset, resp.headers) if reset is not None else None
            if wait is not None and resp.headers.get("X-Rate-Limit-Remaining", "").strip() == "0":
                self._paused_until = max(self._paused_until, time.time() + wait)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if resp.status == 429 and wait is not None:
                retry_after = wait
            links = {str(rel): str(link["url"]) for rel, link in resp.links.items() if "url" in link}
            return Reply(resp.status, resp.headers, data, text, correlation_id=resp.headers.get("X-Okta-Request-Id"),
                         retry_after=retry_after, links=links)

    async def ping(self) -> None:
        """Reachability for ``/healthz``: the API answers with this token."""
        reply = await self._call("GET", "/users", params={"limit": "1"}, what="ping")
        if reply.status >= 400:
            raise self._error(reply, "ping")

    async def profile_properties(self) -> frozenset[str]:
        """The variable names of the user profile schema's properties, base and custom
        (``GET /meta/schemas/user/default``): the only keys an Okta user's ``profile`` can carry."""
        reply = await self._call("GET", USER_SCHEMA, what="user profile schema")
        if not reply.ok:
            raise self._error(reply, "user profile schema")
        definitions = reply.data.get("definitions") if isinstance(reply.data, dict) else None
        names: set[str] = set()
        for part in ("base", "custom"):
            section = definitions.get(part) if isinstance(definitions, dict) else None
            properties = section.get("properties") if isinstance(section, dict) else None
            if isinstance(properties, dict):
                names.update(str(k) for k in properties)
        if not names:  # every Okta org has base properties (login, email…): an answer without any is not a schema
            raise ProviderError("Okta user profile schema: the answer names no properties", transient=False,
                                status=reply.status, correlation_id=reply.correlation_id)
        return frozenset(names)

    def want_attributes(self, keys: Iterable[str]) -> None:
        """A policy is being put in force: the user profile schema is read again at the next lookup (a property may
        have been added in the Profile Editor since). Okta answers with the whole profile: nothing more to ask."""
        self._schema_due = 0.0

    async def _carried(self) -> frozenset[str] | None:
        """The keys a person can carry at all (``Person.carried``): the user profile schema's properties and the
        bot's own keys. The schema is read once, and again when a policy is put in force; while it has never been
        read (refused, unreachable), None: every key is judged on the profile as answered, a key it lacks having
        no value. A re-read that fails keeps the properties read before."""
        if time.monotonic() >= self._schema_due:
            try:
                properties = await self.profile_properties()
            except ProviderError as exc:
                log.warning("okta.schema_unread", error=str(exc), status=exc.status)
                self._schema_due = time.monotonic() + SCHEMA_RETRY_SECONDS
            else:
                self._properties = properties | OWN_KEYS
                self._schema_due = float("inf")
        return self._properties

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None, what: str) -> Reply:
        url = path if path.startswith(("https://", "http://")) else self.api + path
        if not same_origin(url, self.api):  # a next link to another host: the token never goes there
            raise ProviderError(f"Okta {what}: a reply sent the next page to another host ({urlsplit(url).netloc}); "
                                "not followed", transient=False)
        used: list[str] = []

        async def attempt() -> Reply:
            used.append(await self.credentials.authorization(self._http(), self._ssl))
            return await self._send(method, url, params, used[-1])

        changes = method != "GET"
        reply = await with_retries(attempt, self.policy, what=f"Okta {what}", changes=changes)
        if reply.status == 401 and self.credentials.invalidate(used[-1]):
            # an access token revoked or expired early: one new token, one more try
            earlier = reply.may_have_landed
            try:
                reply = await with_retries(attempt, self.policy, what=f"Okta {what}", changes=changes)
            except ProviderError as exc:
                raise exc.landed(earlier) from exc.__cause__
            reply.may_have_landed |= earlier
        return reply

    def _error(self, reply: Reply, what: str) -> ProviderError:
        return ProviderError(f"Okta {what}: HTTP {reply.status} {_okta_error(reply)}", transient=False,
                             status=reply.status, correlation_id=reply.correlation_id,
                             may_have_landed=reply.may_have_landed)

    async def _pages(self, path: str, params: dict[str, str] | None, what: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = path
        while url:
            reply = await self._call("GET", url, params=params, what=what)
            if not reply.ok:
                raise self._error(reply, what)
            items.extend(reply.data or [])
            url, params = reply.links.get("next"), None
        return items

    # ----- Directory -------------------------------------------------------------------------

    async def _find_user(self, key: str) -> dict[str, Any] | None:
        key = key.strip()
        if not key:
            return None
        user = await self._by_login(key)
        if user is not None and ("@" not in key or self._email(user) == key.lower()):
            return user
        if "@" not in key:
            return None
        # that address may be an account's login but another email (Okta keeps a login when the email changes):
        # people are known by email, so an account whose email it is is the person; else the login's
        return await self._by_email(key) or user

    async def _by_login(self, key: str) -> dict[str, Any] | None:
        """The account with this id or login (``GET /users/{key}``), or None."""
        reply = await self._call("GET", f"/users/{quote(key, safe='@')}", what=f"user {key}")
        if reply.ok:
            return dict(reply.data)
        if reply.status != 404:
            raise self._error(reply, f"user {key}")
        return None

    async def _by_email(self, key: str) -> dict[str, Any] | None:
        literal = key.replace("\\", "\\\\").replace('"', '\\"')
        found = await self._call("GET", "/users", params={"search": f'profile.email eq "{literal}"'},
                                 what=f"user {key}")
        if not found.ok:
            raise self._error(found, f"user {key}")
        return self._one_by_email(key, [dict(u) for u in found.data or [] if isinstance(u, dict)])

    @staticmethod
    def _one_by_email(key: str, users: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The account an email names. Okta emails are not unique: an old account Okta keeps (``DEPROVISIONED``)
        may share one with the live account, which is the person; several live accounts with one email are
        never guessed between (the wrong one would be judged a leaver, or removed in the person's place)."""
        if len(users) <= 1:
            return users[0] if users else None
        live = [u for u in users if str(u.get("status") or "").upper() != "DEPROVISIONED"]
        if len(live) == 1:
            return live[0]
        raise ProviderError(f"Okta user {key}: {len(users)} Okta users have this email; give each person their own",
                            transient=False, status=AMBIGUOUS)

    @staticmethod
    def _email(user: dict[str, Any]) -> str:
        profile = user.get("profile") or {}
        return str(profile.get("email") or profile.get("login") or "").lower()

    async def _manager(self, profile: dict[str, Any]) -> str | None:
        manager_id = profile.get("managerId")
        if manager_id:
            manager = await self._find_user(str(manager_id))
            if manager:
                return self._email(manager)
        login = str(profile.get("manager") or "").strip()
        if not login:
            return None
        # a login, even one shaped like an email: the manager is the account signing in with it, whose email may
        # differ (and belong to someone else since a rename)
        manager = await self._by_login(login)
        return self._email(manager) if manager else login.lower()

    async def _memberships(self, user_id: str) -> frozenset[str]:
        """The ids of the person's groups; never their names, which anyone who may create a group can copy."""
        groups = await self._pages(f"/users/{user_id}/groups", None, "memberships")
        return frozenset(str(g["id"]) for g in groups if g.get("id"))

    async def _person(self, user: dict[str, Any]) -> Person:
        profile = user.get("profile") or {}
        manager, groups, carried = await asyncio.gather(self._manager(profile), self._memberships(str(user["id"])),
                                                        self._carried())
        email = self._email(user)
        self._user_ids[email] = str(user["id"])
        name = " ".join(str(p) for p in (profile.get("firstName"), profile.get("lastName")) if p) or email
        return Person(
            email=email, name=name, department=profile.get("department"), title=profile.get("title"),
            employment_type=profile.get("userType"), manager=manager,
            active=str(user.get("status") or "").upper() not in INACTIVE_STATUSES, groups=groups,
            # every attribute of the Okta profile, base and custom, by Okta's own name (``costCenter``,
            # ``employeeNumber``, ``division``…): a rule may name any of them, and one a person has no value for
            # is simply not there (Okta answers with the whole profile). A key the profile schema does not have
            # (a misspelling) is not "no value" but an attribute Okta cannot supply: a rule on it is never judged
            extra={**{str(k): v for k, v in profile.items() if v is not None},
                   "okta_id": user["id"], "login": profile.get("login"), "status": user.get("status")},
            carried=carried,
        )

    async def get_user(self, email: str) -> Person | None:
        user = await self._find_user(email)
        return await self._person(user) if user else None

    async def find_by_slack_id(self, slack_id: str) -> Person | None:
        return None

    async def find_by_aad_object_id(self, object_id: str) -> Person | None:
        return None

    # ----- GroupProvider ---------------------------------------------------------------------

    @staticmethod
    def group_id(ref: str) -> str | None:
        """``ref`` itself when it is a group id (no look-up needed: an id names one group), else None."""
        ref = ref.strip()
        return ref if GROUP_ID_RE.match(ref) else None

    async def find_groups(self, ref: str) -> list[str]:
        """The ids of every group this name could mean: each group whose ``profile.name`` is ``ref``
        (``GET /groups?search=profile.name eq "…"``, paged by the ``Link`` header; names compare
        case-insensitively, as Okta's ``eq`` does). An id is itself."""
        ref = ref.strip()
        if (gid := self.group_id(ref)) is not None:
            return [gid]
        literal = ref.replace("\\", "\\\\").replace('"', '\\"')
        groups = await self._pages("/groups", {"search": f'profile.name eq "{literal}"', "limit": "200"},
                                   f"group {ref}")
        wanted = ref.casefold()
        return sorted({str(g["id"]) for g in groups
                       if g.get("id") and str((g.get("profile") or {}).get("name") or "").strip().casefold() == wanted})

    def pin_groups(self, ids: dict[str, str]) -> None:
        """Use these ids (resolved when the policy loaded) for groups a profile names by name."""
        self._group_ids = dict(ids)

    def _gid(self, group: str) -> str:
        group = group.strip()
        return self._group_ids.get(group, group)

    async def _user_id(self, email: str) -> str | None:
        key = email.strip().lower()
        if key not in self._user_ids:
            user = await self._find_user(key)
            if user is None:
                return None
            self._user_ids[key] = str(user["id"])
        return self._user_ids[key]

    async def add_member(self, group: str, email: str) -> None:
        group = self._gid(group)
        uid = await self._user_id(email)
        what = f"add {email} to {group}"
        if uid is None:
            raise ProviderError(f"Okta {what}: no such user", transient=False, status=404)
        reply = await self._call("PUT", f"/groups/{quote(group, safe='')}/users/{uid}", what=what)
        if reply.status == 404:  # the cached id may belong to a user since re-created
            earlier = reply.may_have_landed  # a try of the first PUT may have added the old id
            try:
                self._user_ids.pop(email.strip().lower(), None)
                fresh = await self._user_id(email)
                if fresh is not None and fresh != uid:
                    reply = await self._call("PUT", f"/groups/{quote(group, safe='')}/users/{fresh}", what=what)
            except ProviderError as exc:
                raise exc.landed(earlier) from exc.__cause__
            reply.may_have_landed |= earlier
        if not reply.ok:
            raise self._error(reply, what)

    async def remove_member(self, group: str, email: str) -> None:
        group = self._gid(group)
        what = f"remove {email} from {group}"
        try:
            uid = await self._user_id(email)
        except ProviderError as exc:
            if exc.status != AMBIGUOUS:
                raise
            uid = None  # several accounts carry this email: the group's list says which of them to remove
        if uid is not None:
            reply = await self._call("DELETE", f"/groups/{quote(group, safe='')}/users/{uid}", what=what)
            if reply.ok:
                return
            if reply.status != 404:
                raise self._error(reply, what)
            # that id is gone: the account now carrying the email (re-created) may be a member
            self._user_ids.pop(email.strip().lower(), None)
        # not found by login or email (renamed, or deactivated out of search), found several times, or by an id
        # Okta no longer knows: the group's own list names the members' ids; only someone not in it is removed
        key = email.strip().lower()
        users = await self._pages(f"/groups/{quote(group, safe='')}/users", {"limit": "200"}, f"members of {group}")
        for member_id in sorted({str(u["id"]) for u in users if self._email(u) == key}):
            reply = await self._call("DELETE", f"/groups/{quote(group, safe='')}/users/{member_id}", what=what)
            if not reply.ok and reply.status != 404:
                raise self._error(reply, what)

    async def list_members(self, group: str) -> list[str]:
        group = self._gid(group)
        users = await self._pages(f"/groups/{quote(group, safe='')}/users", {"limit": "200"}, f"members of {group}")
        return [email for email in (self._email(u) for u in users) if email]

    async def member_of(self, member: str, groups: Sequence[str]) -> set[str]:
        """Those of ``groups`` (as the policy names them: ids, or names resolved when it loaded) that the account
        with this email is in, from the account's own groups (``GET /users/{id}/groups``), never from the groups'
        member lists. An email several live accounts carry, none of them with it as its login, is answered as
        ``list_members`` names members: from the groups' lists. One that is an account's login is that account's
        alone here, where a group's list names every account carrying it (the dashboard's person page, which asks
        this, may then show another account's membership as not held)."""
        key = member.strip().lower()
        for attempt in range(2):
            try:
                uid = await self._user_id(key)
            except ProviderError as exc:
                if exc.status != AMBIGUOUS:
                    raise
                return {group for group in groups if key in await self.list_members(group)}
            if uid is None:
                return set()
            try:
                listed = await self._pages(f"/users/{quote(uid, safe='')}/groups", None, f"groups of {key}")
            except ProviderError as exc:
                if exc.status != 404 or attempt:
                    raise
                self._user_ids.pop(key, None)  # the cached id may belong to an account since deleted
                continue
            ids = {str(g.get("id") or "") for g in listed}
            return {group for group in groups if self._gid(group) in ids}  # a name: the id it was resolved to
        return set()

    async def snapshot_members(self, group: str) -> list[Member]:
        """The group's members with attributes, manager (``managerId`` looked up once per manager, else
        ``manager`` as a login) and last sign-in (``lastLogin``), paged by the ``Link`` header."""
        group = self._gid(group)
        users = await self._pages(f"/groups/{quote(group, safe='')}/users", {"limit": "200"}, f"members of {group}")
        by_id = {str(u.get("id")): u for u in users}
        managers: dict[str, str | None] = {}
        members = []
        for user in users:
            profile = user.get("profile") or {}
            manager_id = str(profile.get("managerId") or "")
            if manager_id and manager_id in by_id:
                manager: str | None = self._email(by_id[manager_id])
            elif manager_id or profile.get("manager"):
                key = manager_id or str(profile.get("manager"))
                if key not in managers:
                    managers[key] = await self._manager(profile)
                manager = managers[key]
            else:
                manager = None
            email = self._email(user)
            name = " ".join(str(p) for p in (profile.get("firstName"), profile.get("lastName")) if p) or email
            members.append(Member(
                email=email, name=name, department=profile.get("department"), title=profile.get("title"),
                employment_type=profile.get("userType"), manager=manager,
                active=str(user.get("status") or "").upper() not in INACTIVE_STATUSES,
                last_sign_in=_okta_time(user.get("lastLogin"))))
        return sorted(members, key=lambda m: m.email)

    async def apply_batch(self, ops: list[tuple[str, str, str]]) -> list[ProviderError | None]:
        """Apply ("add"|"remove", group, email) operations one after another; one result per op."""
        results: list[ProviderError | None] = []
        for kind, group, email in ops:
            try:
                if kind == "add":
                    await self.add_member(group, email)
                elif kind == "remove":
                    await self.remove_member(group, email)
                else:
                    raise ProviderError(f"unknown membership operation {kind!r}", transient=False)
            except ProviderError as exc:
                results.append(exc)
            else:
                results.append(None)
        return results
