"""The ports through which the domain talks to the outside world.

Everything here is a ``typing.Protocol`` or a plain value type: the handlers never import a
framework, a database driver or an HTTP client. Adapters in ``provisioning/``, ``store/`` and
``bot/`` implement these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Person:
    """A person as the identity source sees them.

    ``groups`` holds every group the person belongs to (transitively), by every name the
    provider knows it by (display name and id), so that ``member_of`` rules can name either.

    ``extra`` holds the provider's other attributes by the provider's own names. ``carried`` says which
    attribute keys could be known at all: None when ``extra`` holds every attribute the provider has for the
    person (a key it lacks has no value), else the only ``extra`` keys the provider was asked for: a rule on any
    other key cannot be judged (:meth:`knows`), which is not the same as a value that is not there. ``unsupplied``
    says why of such keys when the provider knows (Graph refused to select a directory extension it does not
    know): a "could not check" answer names it.
    """

    email: str
    name: str = ""
    department: str | None = None
    title: str | None = None
    employment_type: str | None = None
    manager: str | None = None
    active: bool = True
    groups: frozenset[str] = frozenset()
    slack_id: str | None = None
    aad_object_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    carried: frozenset[str] | None = None
    unsupplied: Mapping[str, str] = field(default_factory=dict)

    def attribute(self, key: str) -> Any:
        """The value a policy rule key refers to (``department``, ``title``, …)."""
        if key in NAMED_ATTRIBUTES:
            return getattr(self, key)
        return self.extra.get(key)

    def knows(self, key: str) -> bool:
        """Whether the identity source could say what ``key`` is for this person (its value may still be none)."""
        return key in NAMED_ATTRIBUTES or self.carried is None or key in self.carried or key in self.extra


NAMED_ATTRIBUTES = frozenset({"department", "title", "employment_type", "manager", "active", "name", "email"})


class ProviderError(Exception):
    """A provider call did not reach its goal.

    ``transient`` errors (429, 5xx, time-outs, dropped connections) are retried with backoff;
    ``retry_after`` is the delay in seconds the provider asked for, if any.

    ``may_have_landed``: some try of a change this call sent may have been carried out although no
    success came back (a time-out or a connection dropped after the request went out, a 500/502/504),
    internal retries included. False when every try was refused before it was carried out (429, 503,
    another 4xx, a connection never made, a token refused) or nothing was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        retry_after: float | None = None,
        status: int | None = None,
        correlation_id: str | None = None,
        may_have_landed: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.status = status
        self.correlation_id = correlation_id
        self.may_have_landed = may_have_landed

    def landed(self, earlier: bool = True) -> ProviderError:
        """This error, saying that an earlier try of the call may have been carried out when ``earlier``: itself
        when it says so already (or ``earlier`` is False), else a copy that does (one error may be shared by
        several calls)."""
        if self.may_have_landed or not earlier:
            return self
        return ProviderError(str(self), transient=self.transient, retry_after=self.retry_after,
                             status=self.status, correlation_id=self.correlation_id, may_have_landed=True)


@runtime_checkable
class Directory(Protocol):
    """Answers for people: attributes, manager, memberships, active state."""

    async def get_user(self, email: str) -> Person | None:
        """The person with this email (case-insensitive), or None when unknown/deleted."""
        ...

    async def find_by_slack_id(self, slack_id: str) -> Person | None: ...

    async def find_by_aad_object_id(self, object_id: str) -> Person | None: ...


@runtime_checkable
class GroupProvider(Protocol):
    """Adds people to and removes them from groups at one identity provider.

    Every call is idempotent: adding a member who is already there and removing one who is
    not are successes. Failures raise :class:`ProviderError`.
    """

    name: str

    async def add_member(self, group: str, email: str) -> None: ...

    async def remove_member(self, group: str, email: str) -> None: ...

    async def list_members(self, group: str) -> list[str]:
        """Emails of the group's direct members (lower case)."""
        ...


@runtime_checkable
class OneMembersGroups(Protocol):
    """A ``GroupProvider`` that can say which groups one member belongs to without listing the groups."""

    async def member_of(self, member: str, groups: Sequence[str]) -> set[str]:
        """Those of ``groups`` (as the policy names them) that ``member`` is a direct member of, ``member`` named
        as drift names it (an address, or a ``serviceprincipal:``/``nestedgroup:`` id where the provider
        has them). Asks about the one member: the cost does not grow with the groups' sizes. Someone the
        provider does not know belongs to none."""
        ...


class MembershipOverlay(Protocol):
    """Where the embedded directory keeps the memberships provisioning added or removed."""

    async def overlay(self) -> dict[tuple[str, str], bool]:
        """(group, email) → present, for every membership provisioning changed. Not to be modified: an
        implementation may answer the same dict again while nothing changed."""
        ...

    async def overlay_for(self, *, email: str | None = None, group: str | None = None
                          ) -> dict[tuple[str, str], bool]:
        """The same, restricted to one person or one group."""
        ...

    async def set_membership(self, group: str, email: str, present: bool) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC now."""
        ...


@dataclass(frozen=True)
class Notice:
    """A message for one person that is not the reply to what they just said.

    ``kind`` tells channels how to render it: ``approval`` (an approval card with buttons),
    ``outcome`` (a decision was made on a request you were asked about), ``status`` (your own
    request moved), ``reminder``, ``escalation``, ``expiring``, ``failure``, ``drift``,
    ``drift_outcome`` (what was done about a finding: its cards are edited, not posted again),
    ``brake``, ``info``. ``view`` is a handler view-model the channel renders when it knows it (a
    review batch link, a drift finding, a paused brake); the text says the same for channels that do not.
    """

    recipient: str
    kind: str
    text: str
    request_id: int | None = None
    view: Any = None


class Notifier(Protocol):
    async def notify(self, notices: list[Notice]) -> None: ...


@dataclass(frozen=True)
class Member:
    """A member of a group as an access review sees it: attributes, manager and last sign-in.

    ``found`` is False for a member the identity source does not know (a directory file that
    lists someone with no user entry). ``kind`` is ``service`` for a non-human identity, whose
    ``owner`` answers for it. ``last_sign_in`` is None where the source does not say.
    """

    email: str
    found: bool = True
    name: str = ""
    department: str | None = None
    title: str | None = None
    employment_type: str | None = None
    manager: str | None = None
    active: bool = True
    last_sign_in: datetime | None = None
    kind: str = "user"  # user | service
    owner: str | None = None


@runtime_checkable
class MemberSource(Protocol):
    """A group provider that can list a group's members with what a review needs to know of them."""

    async def snapshot_members(self, group: str) -> list[Member]:
        """Every direct member of the group, read now (providers page through large groups and honour
        throttling); raises :class:`ProviderError` when the group cannot be read in full."""
        ...
