"""What every handler needs, built once by the composition root and passed in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from handlers.eligibility import ask_for_attributes
from handlers.groups import GroupIds
from handlers.policy import Policy, PolicyError, parse_policy
from handlers.ports import Clock, Directory, GroupProvider, Notice, Notifier, Person
from handlers.records import RequestRecord
from handlers.repository import Store
from handlers.shared_reads import SharedReads

SYSTEM = "system"


_scope: ContextVar[dict[Any, Any] | None] = ContextVar("accessbot_scope", default=None)


_versions: ContextVar[dict[Any, Any] | None] = ContextVar("accessbot_versions", default=None)


@contextmanager
def one_version() -> Iterator[None]:
    """Within this scope every read of the policy (and the group ids resolved for it) gives the version
    the scope first read, even when a new version is installed meanwhile (bot/policy_watch.py). Opened
    by :func:`one_lookup_per_person` and by each scheduled sweep; a scope inside another is the same."""
    if _versions.get() is not None:
        yield
        return
    token = _versions.set({})
    try:
        yield
    finally:
        _versions.reset(token)


@contextmanager
def one_lookup_per_person() -> Iterator[None]:
    """Within this scope (one command, one sweep, one card refresh), each person is looked up at most
    once, and the policy is one version (:func:`one_version`). A scope opened inside another is the
    same scope."""
    if _scope.get() is not None:
        yield
        return
    token = _scope.set({})
    try:
        with one_version():
            yield
    finally:
        _scope.reset(token)


@contextmanager
def fresh_lookups() -> Iterator[None]:
    """A scope of its own, starting empty whatever encloses it (people, the overlay, the policy version): for a read
    shared by callers who all came before it started (handlers/shared_reads.py), whose answer must rest on nothing
    looked up before that, whichever caller's context it runs in. Nothing looked up inside is kept outside."""
    scope, versions = _scope.set({}), _versions.set({})
    try:
        yield
    finally:
        _versions.reset(versions)
        _scope.reset(scope)


def scope_cache() -> dict[Any, Any] | None:
    """A dict that lives as long as the current :func:`one_lookup_per_person` scope (None outside one)."""
    return _scope.get()


def known_person(person: Person) -> None:
    """``person`` was just looked up (the channel identified the one who asks): the scope's look-ups of
    them are answered with it. A command that records something and then builds its view from the
    requester does not look them up again after its commit, where a failing provider would leave the
    record made but its notices unsent and its asker told to try again."""
    scope = _scope.get()
    if scope is not None:
        scope.setdefault("people", {}).setdefault(person.email.strip().lower(), person)


def forget_person(email: str) -> None:
    """The scope's next look-up of ``email`` asks the directory again (what it said may be out of date): the
    remembered answer is dropped, and so is the scope's copy of a directory file (read again if it changed)."""
    scope = _scope.get()
    if scope is not None:
        scope.setdefault("people", {}).pop(email.strip().lower(), None)
        for key in [k for k in scope if isinstance(k, tuple) and k[:1] == ("directory-file",)]:
            del scope[key]


class MemoDirectory:
    """A ``Directory`` that answers repeated look-ups inside :func:`one_lookup_per_person` from memory."""

    def __init__(self, inner: Directory) -> None:
        self.inner = inner

    async def get_user(self, email: str) -> Person | None:
        scope = _scope.get()
        key = email.strip().lower()
        if scope is None:
            return await self.inner.get_user(key)
        cache = scope.setdefault("people", {})
        if key not in cache:
            cache[key] = await self.inner.get_user(key)
        return cache[key]

    async def find_by_slack_id(self, slack_id: str) -> Person | None:
        return await self.inner.find_by_slack_id(slack_id)

    async def find_by_aad_object_id(self, object_id: str) -> Person | None:
        return await self.inner.find_by_aad_object_id(object_id)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock stopped at one instant (the judging clock of ``sweep --as-of``, tests)."""

    def __init__(self, at: datetime) -> None:
        self.at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self.at


class NullNotifier:
    async def notify(self, notices: list[Notice]) -> None:
        return None


# clicks handlers/approvals.py answers from a read at once: each holds a read connection while its chain is
# resolved, which takes others (a burst of clicks all holding one and waiting for a second would empty the pool)
DECISION_READERS = 4


def decision_readers(connections: int) -> int:
    """How many such clicks may read at once in a store whose pool hands out ``connections`` (0: no cap). Each
    holds one connection and may wait for a second; the write lock's holder holds one and may wait for a second
    too: one connection must stay free beside them all, or every one of them waits for it until the pool gives
    up (a pool of 4 held by 4 such clicks). 0: every click goes to the write lock, as before there were any."""
    if connections <= 0:
        return DECISION_READERS
    return max(0, min(DECISION_READERS, connections - 2))


@dataclass
class Deps:
    store: Store
    directory: Directory
    providers: Mapping[str, GroupProvider]
    policy: Policy
    # ``clock`` is the real clock: every recorded time (events, provisioning, leases, retries) comes
    # from it. ``judging_clock`` (``sweep --as-of``) only says as of when timers and schedules are
    # judged: what is due to expire, be reminded or escalated. Unset, both are the same clock.
    clock: Clock = field(default_factory=SystemClock)
    judging_clock: Clock | None = None
    notifier: Notifier = field(default_factory=NullNotifier)
    observe: Callable[[str, dict[str, Any]], None] | None = None  # metrics hook
    cron: Callable[[str, str, datetime], datetime | None] | None = None  # evaluates review cron schedules
    groups: GroupIds = field(default_factory=GroupIds)  # group references resolved to ids when the policy loaded
    anchor: Any = None  # handlers.anchors.ChainAnchor: where each sweep anchors the chain's head
    # async (deps) -> int: ends the dashboard sessions of people no longer active (bot/bootstrap.py sets it)
    end_inactive_sessions: Callable[[Any], Awaitable[int]] | None = None
    _policies: dict[str, Policy] = field(default_factory=dict)
    _rounds: dict[tuple[int, int], str] = field(default_factory=dict)  # (request, round) -> policy sha256
    # handlers/approvals.py: the decisions on a request this process is taking now, and the requests a click
    # found with nothing to decide lately (their next clicks are answered from a read when that is all they get)
    _deciding: dict[int, Any] = field(default_factory=dict)
    _settled: dict[int, None] = field(default_factory=dict)
    # clicks answered from a read at once (:func:`decision_readers` of the store's pool; 0: none, all take the lock)
    decision_readers: int = DECISION_READERS
    _readers: asyncio.Semaphore = None  # type: ignore[assignment]  # (a copy by dataclasses.replace shares it)
    # a request read by many at once (a channel's card refreshing, a burst of clicks on one card): one read at a
    # time, each caller answered by one sent after it asked (handlers/shared_reads.py)
    shared_reads: SharedReads = field(default_factory=SharedReads)

    def __post_init__(self) -> None:
        if self._readers is None:
            self._readers = asyncio.Semaphore(max(1, self.decision_readers))

    def now(self) -> datetime:
        """The real now: what is recorded happens at this instant."""
        return self.clock.now()

    def judged_now(self) -> datetime:
        """The instant timers and schedules are judged as of (``--as-of``; else the real now)."""
        return (self.judging_clock or self.clock).now()

    async def policy_for(self, record: RequestRecord) -> Policy:
        """The policy version that judges a request's current round, to its end.

        Round 0 is the request itself: the version in force when it was submitted. An extension
        is a new decision: round n is judged by the version in force when extension n was asked,
        as its ``request.extension_requested`` event records.
        """
        sha = record.policy_sha256
        if record.round > 0 and record.id is not None:
            sha = await self._round_policy(record.id, record.round) or sha
        return await self._policy(sha)

    async def _round_policy(self, request_id: int, round_: int) -> str | None:
        key = (request_id, round_)
        if key not in self._rounds:
            async with self.store.read() as repo:
                events = await repo.events_for(request_id)
            asked = [e for e in events if e.type == "request.extension_requested"]
            match = [e for e in asked if e.data.get("round") == round_]
            legacy = len(asked) >= round_ and all("round" not in e.data for e in asked)
            if not match and not legacy:
                return None  # not visible from here yet: ask again next time
            # committed and append-only: it never changes ("" for extensions asked before versions
            # were recorded: they keep the request's own version)
            self._rounds[key] = str(match[-1].data.get("policy_sha256") or "") if match else ""
        return self._rounds[key] or None

    async def policy_by_sha(self, sha: str) -> Policy:
        """The stored policy version ``sha`` (the one in force when it is not stored or no longer parses)."""
        return await self._policy(sha)

    async def stored_policy(self, sha: str) -> Policy | None:
        """The stored policy version ``sha`` exactly, or None when it is not stored or no longer parses."""
        policy = await self._policy(sha)
        return policy if policy.sha256 == sha else None

    async def _policy(self, sha: str) -> Policy:
        if sha == self.policy.sha256:
            return self.policy
        if sha not in self._policies:
            async with self.store.read() as repo:
                raw = await repo.policy_raw(sha)
            try:
                self._policies[sha] = parse_policy(raw, stored=True) if raw is not None else self.policy
                ask_for_attributes(self.directory, self._policies[sha])  # its rules are judged from now on
            except PolicyError:
                # A version stored before the validator grew stricter: rather than strand its open
                # requests, judge them by the policy in force (the audit log keeps both hashes).
                self._policies[sha] = self.policy
        return self._policies[sha]

    async def person(self, email: str) -> Person | None:
        return await self.directory.get_user(email.lower())

    def provider(self, name: str) -> GroupProvider:
        try:
            return self.providers[name]
        except KeyError:
            raise LookupError(f"provider {name!r} is not configured") from None

    def is_security(self, email: str) -> bool:
        return email.lower() in self.policy.security_members()


class _PinnedPerScope:
    """A field of :class:`Deps` that may be replaced while serving (the policy file changed, and the
    group ids resolved for it): inside one scope (a command, a card refresh, a sweep: :func:`one_version`)
    every read gives what the scope first read, so nothing is judged half by one version and half by
    the next. Outside a scope a read gives the value in force."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.slot = f"_{name}_in_force"

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self.name)  # no class-level default (dataclasses asks)
        value = obj.__dict__[self.slot]
        scope = _versions.get()
        if scope is None:
            return value
        return scope.setdefault((self.slot, id(obj)), value)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value
        scope = _versions.get()
        if scope is not None:
            scope[(self.slot, id(obj))] = value  # who sets it inside a scope reads it back


Deps.policy = _PinnedPerScope("policy")  # type: ignore[assignment]
Deps.groups = _PinnedPerScope("groups")  # type: ignore[assignment]
