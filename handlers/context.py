"""What every handler needs, built once by the composition root and passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from handlers.policy import Policy, parse_policy

from handlers.ports import Clock, Directory, GroupProvider, Notice, Notifier, Person
from handlers.records import RequestRecord
from handlers.repository import Store

SYSTEM = "system"


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
            self._policies[sha] = parse_policy(raw) if raw is not None else self.policy
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
