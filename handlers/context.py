"""What every handler needs, built once by the composition root and passed in."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from handlers.policy import Policy, PolicyError, parse_policy
from handlers.ports import Clock, Directory, GroupProvider, Notice, Notifier, Person
from handlers.records import RequestRecord
from handlers.repository import Store

SYSTEM = "system"


_scope: ContextVar[dict[Any, Any] | None] = ContextVar("accessbot_scope", default=None)


@contextmanager
def one_lookup_per_person() -> Iterator[None]:
    """Within this scope (one command, one sweep), each person is looked up at most once."""
    token = _scope.set({})
    try:
        yield
    finally:
        _scope.reset(token)


def scope_cache() -> dict[Any, Any] | None:
    """A dict that lives as long as the current :func:`one_lookup_per_person` scope (None outside one)."""
    return _scope.get()


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
    """A clock stopped at one instant (``sweep --as-of``, tests)."""

    def __init__(self, at: datetime) -> None:
        self.at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self.at


class NullNotifier:
    async def notify(self, notices: list[Notice]) -> None:
        return None


@dataclass
class Deps:
    store: Store
    directory: Directory
    providers: Mapping[str, GroupProvider]
    policy: Policy
    clock: Clock = field(default_factory=SystemClock)
    notifier: Notifier = field(default_factory=NullNotifier)
    observe: Callable[[str, dict[str, Any]], None] | None = None  # metrics hook
    anchor: Any = None  # handlers.anchors.ChainAnchor: where each sweep anchors the chain's head
    _policies: dict[str, Policy] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock.now()

    async def policy_for(self, record: RequestRecord) -> Policy:
        """The policy version a request was submitted under: it is judged by it to its end."""
        sha = record.policy_sha256
        if sha == self.policy.sha256:
            return self.policy
        if sha not in self._policies:
            async with self.store.read() as repo:
                raw = await repo.policy_raw(sha)
            try:
                self._policies[sha] = parse_policy(raw) if raw is not None else self.policy
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
