"""Which group a policy's group reference means, and where one profile's group feeds another's rules.

A profile's ``group`` and a rule's ``member_of`` may name a group by id or by display name. At a
provider where anyone can create a group (Entra, Okta), a display name proves nothing: the names are
resolved to ids once, when the policy loads (:mod:`handlers.group_resolution`), and from then on
groups are compared by that id. :class:`GroupIds` holds the answer; without one (the embedded
directory, ``policy check`` offline) a reference is its own key. A name Okta could not be asked
about yet is ``pending``: a check that needs it fails closed (:class:`GroupNotResolved`) until it
is resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from handlers.policy import Policy, PolicyIssue
from handlers.ports import ProviderError
from handlers.records import HOLDING_STATES, RequestRecord
from handlers.repository import Repository


class CannotJudge(ProviderError):
    """A rule could not be judged for want of what the identity source says (a group name not resolved yet, an
    attribute it does not supply): nobody is judged by the rule, neither eligible nor a mover, while that lasts."""


class GroupNotResolved(CannotJudge):
    """A check needed a group name the provider has not resolved yet (it did not answer): nobody is judged by
    it, neither eligible nor a mover, until it is."""


GroupKey = tuple[str, str]  # (provider, group id, or the reference as written when it has none)


@dataclass
class GroupIds:
    """(provider, reference as written) → the id the provider knows the group by; ``pending``: references
    the provider could not be asked about yet (see :func:`handlers.group_resolution.resolve_pending`)."""

    identity: str = "directory"  # the provider people's attributes and memberships come from
    ids: Mapping[tuple[str, str], str] = field(default_factory=dict)
    pending: dict[tuple[str, str], str] = field(default_factory=dict)  # reference → why it is not resolved

    def key(self, provider: str, ref: str) -> str:
        ref = str(ref).strip()
        return self.ids.get((provider, ref), ref)

    def ident(self, provider: str, ref: str) -> GroupKey:
        """(provider, the id the provider knows the group by): what a grant's recorded group and a membership
        are matched by, so a group the policy named by name when the grant was made and by id now (or the
        reverse) is one group. A reference that was never resolved (the embedded directory, whose groups have
        no other name; a name the provider could not be asked about) falls back to its text as written."""
        return (provider, self.key(provider, ref))

    def spellings(self, provider: str, ref: str) -> set[str]:
        """Every reference known to mean the same group as ``ref`` at ``provider`` (itself, its id, and the
        names resolved to that id): what a look-up by the recorded text must try."""
        ref = str(ref).strip()
        gid = self.key(provider, ref)
        return {ref, gid} | {r for (p, r), i in self.ids.items() if p == provider and i == gid}

    def member_key(self, ref: str) -> str:
        """The key of a ``member_of`` reference: groups at the identity source. A pending name raises
        :class:`GroupNotResolved` (the provider did not answer): the check cannot be made."""
        ref = str(ref).strip()
        why = self.pending.get((self.identity, ref))
        if why is not None:
            raise GroupNotResolved(f"could not check: {self.identity} group {ref!r} is not resolved yet ({why})",
                                   transient=True)
        return self.key(self.identity, ref)

    def settle(self, provider: str, ref: str, gid: str) -> None:
        """A pending reference resolved (at its first use after the provider answered again)."""
        self.ids = {**self.ids, (provider, ref): gid}
        self.pending.pop((provider, ref), None)


async def stored_groups(repo: Repository, identity: str = "directory") -> GroupIds:
    """The ids the store keeps for the policy's group references (as :func:`handlers.group_resolution.
    resolve_groups` installed them): for matching groups by identity where only the store is at hand."""
    return GroupIds(identity=identity, ids=await repo.group_ids())


async def holding_group(repo: Repository, email: str, provider: str, group: str) -> list[RequestRecord]:
    """``email``'s holding grants of ``group`` however the policy named the group when each was made (by name or
    by id: matched by the id the store resolved them to; a reference never resolved, by its text)."""
    groups = await stored_groups(repo)
    wanted = groups.ident(provider, group)
    return [r for r in await repo.find_requests(requester=email, states=HOLDING_STATES, provider=provider)
            if groups.ident(r.provider, r.group) == wanted]


def _fold(value: str) -> str:
    return value.strip().casefold()


def overlap_warnings(policy: Policy, key: Callable[[str, str], str] | None = None,
                     identity: str | None = None) -> list[PolicyIssue]:
    """Rules of one profile that name a group another profile grants (issue: granted memberships).

    Such a membership may be held only through a grant of this bot; it does not count for
    ``eligible``/``auto_approve`` unless the rule says ``count_granted: true``. ``key`` maps
    (provider, reference) to a comparable id (raw text when omitted); with ``identity`` only
    profiles provisioning at the identity source are considered (their grants show up as
    memberships there), else every profile is.
    """
    key = key or (lambda _provider, ref: ref)
    granted: dict[str, list[str]] = {}
    for p in policy.profiles:
        if identity is None or p.provider == identity:
            granted.setdefault(_fold(key(p.provider, p.group)), []).append(p.id)
    out: list[PolicyIssue] = []
    for i, profile in enumerate(policy.profiles):
        for kind, rules in (("eligible", profile.eligible), ("auto_approve", profile.auto_approve)):
            for j, rule in enumerate(rules):
                if "member_of" not in rule.attrs:
                    continue
                values = rule.attrs["member_of"]
                for value in values if isinstance(values, list | tuple) else [values]:
                    grantors = [g for g in granted.get(_fold(key(identity or profile.provider, str(value))), [])
                                if g != profile.id]
                    if not grantors:
                        continue
                    via = ", ".join(grantors)
                    if rule.count_granted:
                        text = (f"warning: {value!r} is granted by profile {via}: with count_granted: true, a "
                                f"grant of {via} satisfies this rule of {profile.id}")
                    else:
                        text = (f"warning: {value!r} is granted by profile {via}: a membership held only "
                                f"through a grant of {via} does not count here (count_granted: true counts it)")
                    out.append(PolicyIssue(rule.line, f"profiles[{i}].{kind}[{j}].member_of", text))
    return out
