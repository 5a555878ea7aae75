"""The snapshot of a campaign: every member of every group in scope, read from the IdP now.

Its SHA-256 is taken over its canonical JSON (the audit chain's canonical form), so that the
hash recorded in ``review.started`` can be checked against the snapshot kept in the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.audit import canonical_json, format_ts
from handlers.context import Deps
from handlers.ports import Member, MemberSource, ProviderError
from handlers.reviews.model import Review


class SnapshotError(Exception):
    """The snapshot could not be read or is not valid: the campaign does not start."""


@dataclass(frozen=True)
class GroupSnapshot:
    profile: str
    provider: str
    group: str
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Snapshot:
    review: str
    taken_at: datetime
    policy_version: str
    policy_sha256: str
    groups: tuple[GroupSnapshot, ...]

    def as_json(self) -> dict[str, Any]:
        def member(m: Member) -> dict[str, Any]:
            out = dataclasses.asdict(m)
            out["last_sign_in"] = format_ts(m.last_sign_in) if m.last_sign_in else None
            return out

        return {"review": self.review, "taken_at": format_ts(self.taken_at), "policy_version": self.policy_version,
                "policy_sha256": self.policy_sha256,
                "groups": [{"profile": g.profile, "provider": g.provider, "group": g.group,
                            "members": [member(m) for m in g.members]} for g in self.groups]}

    def canonical(self) -> str:
        return canonical_json(self.as_json())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()


async def read_snapshot(deps: Deps, review: Review, now: datetime) -> Snapshot:
    """Every member of every group in scope, with attributes, manager and last sign-in.

    Raises :class:`SnapshotError` when a group cannot be read in full: a partial snapshot would
    certify less than is there.
    """
    groups = []
    for pid in review.profiles:
        profile = deps.policy.profile(pid)
        if profile is None:
            raise SnapshotError(f"profile {pid} is not in the policy in force")
        provider = deps.providers.get(profile.provider)
        if provider is None:
            raise SnapshotError(f"{profile.provider}/{profile.group}: provider {profile.provider} is not configured")
        if not isinstance(provider, MemberSource):
            raise SnapshotError(f"{profile.provider}/{profile.group}: the provider cannot list members for a review")
        try:
            members = await provider.snapshot_members(profile.group)
        except ProviderError as exc:
            where = f" (correlation id {exc.correlation_id})" if exc.correlation_id else ""
            raise SnapshotError(f"{profile.provider}/{profile.group}: {exc}{where}") from None
        except Exception as exc:  # a file that does not parse, an unexpected answer: nothing starts
            raise SnapshotError(f"{profile.provider}/{profile.group}: {type(exc).__name__}: {exc}") from None
        groups.append(GroupSnapshot(profile=profile.id, provider=profile.provider, group=profile.group,
                                    members=tuple(sorted(members, key=lambda m: m.email))))
    return Snapshot(review=review.id, taken_at=now, policy_version=deps.policy.version,
                    policy_sha256=deps.policy.sha256, groups=tuple(groups))
