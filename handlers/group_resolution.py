"""Resolving the policy's group references to ids once, when the policy loads (issue 9, item 4).

Every group a profile provisions into and every ``member_of`` group at the identity source is
looked up at a provider that can find groups (``find_groups``: Entra, Okta). The first answer is
kept in the store for good: a group someone creates later with the same display name changes
nothing, across restarts. A reference that is unknown, or ambiguous when first resolved, refuses
the start, naming the profile and the group; so does one group spelled two ways by two
profiles (grants of both must be seen as one membership).

A provider that says ``resolve_later`` (Okta) does not refuse the start when it cannot be reached
for names only ``member_of`` rules use: they stay pending (:attr:`handlers.groups.GroupIds.pending`)
and are resolved at their next use (:func:`resolve_pending`, before each command and sweep);
meanwhile a check that needs one fails closed ("could not check"). A profile's group named by
name still refuses the start (its grants would go nowhere). A reference the provider marks as an
id (``group_id``) is its own key and is not looked up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import structlog

from handlers.context import SYSTEM, Deps
from handlers.eligibility import ask_for_attributes
from handlers.groups import GroupIds, overlap_warnings
from handlers.policy import Policy, PolicyIssue
from handlers.ports import ProviderError
from handlers.records import HOLDING_STATES

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)

log = structlog.get_logger("accessbot")


@runtime_checkable
class GroupFinder(Protocol):
    """A provider that can say which groups a reference (an id or a display name) could mean."""

    async def find_groups(self, ref: str) -> list[str]: ...


class GroupResolutionError(Exception):
    """``problems`` name every reference that failed; ``unreachable`` those among them the provider did not
    answer for (worth asking again), as opposed to names that match no group or several."""

    def __init__(self, problems: list[str], unreachable: list[str] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.unreachable = unreachable or []


@dataclass
class Resolution:
    ids: dict[tuple[str, str], str]
    new: list[tuple[str, str, str]] = field(default_factory=list)  # (provider, ref, id) resolved this time
    warnings: list[PolicyIssue] = field(default_factory=list)  # overlaps, compared by id
    stale: list[str] = field(default_factory=list)  # references in the store that could not be resolved
    pending: dict[tuple[str, str], str] = field(default_factory=dict)  # left for later: the provider did not answer


def policy_refs(policy: Policy, identity: str) -> dict[tuple[str, str], list[str]]:
    """(provider, reference) → who names it (``profile X``), for every group the policy names."""
    refs: dict[tuple[str, str], list[str]] = {}
    for p in policy.profiles:
        refs.setdefault((p.provider, p.group.strip()), []).append(f"profile {p.id}")
        for rules in (p.eligible, p.ineligible, p.auto_approve):
            for rule in rules:
                values = rule.attrs.get("member_of")
                if values is None:
                    continue
                for value in values if isinstance(values, list | tuple) else [values]:
                    who = refs.setdefault((identity, str(value).strip()), [])
                    if f"profile {p.id} (member_of)" not in who:
                        who.append(f"profile {p.id} (member_of)")
    return refs


async def _stored_refs(deps: Deps) -> set[tuple[str, str]]:
    """Groups the store still acts on: open grants and unfinished provider calls (older versions' names)."""
    async with deps.store.read() as repo:
        holding = await repo.find_requests(states=HOLDING_STATES)
        ops = await repo.due_ops(FAR_FUTURE, limit=10_000)
    return {(r.provider, r.group.strip()) for r in holding} | {(o.provider, o.group.strip()) for o in ops}


def _problem(who: Iterable[str], provider: str, ref: str, ids: list[str]) -> str:
    names = ", ".join(who)
    if not ids:
        return f"{names}: no {provider} group is named {ref!r}"
    return (f"{names}: {len(ids)} {provider} groups are named {ref!r} ({', '.join(ids)}); name the group by its "
            "object id in the policy")


async def resolve_groups(deps: Deps, *, persist: bool = True) -> Resolution:
    """Resolve, keep and install the ids; raises :class:`GroupResolutionError` naming every problem. The policy
    is being put in force: the identity source is also told which attributes its rules name."""
    ask_for_attributes(deps.directory, deps.policy)
    identity = deps.groups.identity
    finders = {name: p for name, p in deps.providers.items() if isinstance(p, GroupFinder)}
    if not finders:
        return Resolution(ids={}, warnings=overlap_warnings(deps.policy, identity=identity))
    wanted = {k: v for k, v in policy_refs(deps.policy, identity).items() if k[0] in finders}
    async with deps.store.read() as repo:
        known = {k: v for k, v in (await repo.group_ids()).items() if k[0] in finders}
    extra = {k for k in await _stored_refs(deps) if k[0] in finders and k not in wanted}
    result = Resolution(ids=dict(known))
    problems: list[str] = []
    unreachable: list[str] = []
    for (provider, ref), who in [*wanted.items(), *((k, []) for k in sorted(extra))]:
        if (provider, ref) in known or _is_id(finders[provider], ref):
            continue
        try:
            ids = await finders[provider].find_groups(ref)  # type: ignore[attr-defined]
        except ProviderError as exc:
            if who and exc.transient and getattr(finders[provider], "resolve_later", False) \
                    and all(w.endswith("(member_of)") for w in who):
                # only a check can wait (it fails closed meanwhile); a profile's group by name cannot: its adds
                # and removes would go to the name as if it were an id
                result.pending[(provider, ref)] = f"{provider} did not answer: {str(exc)[:200]}"
                continue
            problem = f"{', '.join(who) or 'a grant'}: {provider} group {ref!r} could not be resolved ({exc})"
            (problems if who else result.stale).append(problem)
            if who:
                unreachable.append(problem)
            continue
        if len(ids) == 1:
            result.ids[(provider, ref)] = ids[0]
            result.new.append((provider, ref, ids[0]))
        else:
            (problems if who else result.stale).append(_problem(who or ["a grant"], provider, ref, ids))
    problems += _spelled_twice(deps.policy, result.ids)
    if problems:
        raise GroupResolutionError(problems, unreachable)
    if persist and result.new:
        now = deps.now()
        async with deps.store.write() as repo:
            for provider, ref, gid in result.new:
                await repo.save_group_id(provider, ref, gid, now)
                await repo.append("group.resolved", actor=SYSTEM, ts=now,
                                  data={"provider": provider, "group": ref, "id": gid})
    result.stale += _respelled(deps.policy, result.ids, extra)
    deps.groups = GroupIds(identity=identity, ids=result.ids, pending=dict(result.pending))
    _pin(finders, result.ids)
    result.warnings = overlap_warnings(deps.policy, key=deps.groups.key, identity=identity)
    result.warnings += await alias_warnings(deps)
    return result


async def alias_warnings(deps: Deps) -> list[PolicyIssue]:
    """The security team's members the policy names by another of their addresses (a UPN beside the mail, an
    Okta login): who is security is decided by the address the identity source knows a person by, so such a
    member is not treated as security (it fails safe: they cannot run the security team's commands). Said at
    load, naming the address to write instead; a look-up that fails says nothing."""
    issues: list[PolicyIssue] = []
    team = deps.policy.security_team or ""
    for spelled in sorted(deps.policy.security_members()):
        try:
            person = await deps.directory.get_user(spelled)
        except Exception:  # the source is down: the members are checked again at the next load
            continue
        known = (person.email or "").strip().lower() if person is not None else ""
        if known and known != spelled.strip().lower():
            issues.append(PolicyIssue(None, f"approver_groups.{team}", (
                f"{spelled} is known to the identity source as {known}: the security team is matched by that "
                f"address, so {spelled} is not treated as security; write {known}")))
    return issues


def _is_id(finder: object, ref: str) -> bool:
    """The provider knows ``ref`` as an id already (Okta: ``00g…``): it is its own key, nothing to look up."""
    group_id = getattr(finder, "group_id", None)
    return group_id is not None and group_id(ref) is not None


def _pin(finders: dict[str, object], ids: Mapping[tuple[str, str], str]) -> None:
    for name, provider in finders.items():
        pin = getattr(provider, "pin_groups", None)
        if pin is not None:
            pin({ref: gid for (p, ref), gid in ids.items() if p == name})


async def resolve_pending(deps: Deps, *, persist: bool = True) -> list[str]:
    """Resolve the references left pending when the policy loaded (their provider did not answer), as the
    load would have: one group of that name is kept for good (stored, ``group.resolved``); none or several
    leave it pending, so checks needing it still fail closed, and are logged as the policy error they are.
    Returns what is still pending, each with why. Called outside any store transaction (it writes, unless
    not ``persist``: a dry run)."""
    groups = deps.groups
    if not groups.pending:
        return []
    async with deps.store.read() as repo:
        known = await repo.group_ids()
    found: list[tuple[str, str, str]] = []
    for provider, ref in sorted(groups.pending):
        if (provider, ref) in known:  # resolved meanwhile by another process: its answer stands
            groups.settle(provider, ref, known[(provider, ref)])
            continue
        finder = deps.providers.get(provider)
        if not isinstance(finder, GroupFinder):
            continue
        try:
            ids = await finder.find_groups(ref)
        except ProviderError as exc:
            groups.pending[(provider, ref)] = f"{provider} did not answer: {str(exc)[:200]}"
            continue
        if len(ids) == 1:
            found.append((provider, ref, ids[0]))
        else:
            who = policy_refs(deps.policy, groups.identity).get((provider, ref)) or ["the policy"]
            problem = _problem(who, provider, ref, ids)
            if groups.pending.get((provider, ref)) != problem:
                log.error("policy group reference cannot be resolved; checks needing it fail closed",
                          problem=problem)
            groups.pending[(provider, ref)] = problem
    if found and not persist:
        for provider, ref, gid in found:
            groups.settle(provider, ref, gid)
    elif found:
        now = deps.now()
        async with deps.store.write() as repo:
            stored = await repo.group_ids()
            for provider, ref, gid in found:
                if (provider, ref) in stored:
                    gid = stored[(provider, ref)]
                else:
                    await repo.save_group_id(provider, ref, gid, now)
                    await repo.append("group.resolved", actor=SYSTEM, ts=now,
                                      data={"provider": provider, "group": ref, "id": gid})
                groups.settle(provider, ref, gid)
        _pin({n: p for n, p in deps.providers.items() if isinstance(p, GroupFinder)}, groups.ids)
    return [f"{provider} group {ref!r}: {why}" for (provider, ref), why in sorted(groups.pending.items())]


def _respelled(policy: Policy, ids: dict[tuple[str, str], str], stored: set[tuple[str, str]]) -> list[str]:
    """Open grants of an older version naming a group of this one another way: said (their records and events
    keep the older spelling); they are matched to the group by its id, as every membership is."""
    current = {(p.provider, ids.get((p.provider, p.group.strip()))): p.group.strip() for p in policy.profiles}
    return [f"open grants name {provider} group {ids[(provider, ref)]} as {ref!r} while the policy names it "
            f"{current[(provider, ids[(provider, ref)])]!r}; they are matched to the group by that id"
            for provider, ref in sorted(stored)
            if (provider, ref) in ids and current.get((provider, ids[(provider, ref)])) not in (None, ref)]


def _spelled_twice(policy: Policy, ids: dict[tuple[str, str], str]) -> list[str]:
    """Profiles naming one group two ways (name and id): grants of both would not be seen as one."""
    spellings: dict[tuple[str, str], dict[str, list[str]]] = {}
    for p in policy.profiles:
        gid = ids.get((p.provider, p.group.strip()))
        if gid is not None:
            spellings.setdefault((p.provider, gid), {}).setdefault(p.group.strip(), []).append(p.id)
    out = []
    for (provider, gid), by_ref in sorted(spellings.items()):
        if len(by_ref) > 1:
            ways = "; ".join(f"profile {', '.join(ps)} as {ref!r}" for ref, ps in sorted(by_ref.items()))
            out.append(f"one {provider} group ({gid}) is named two ways ({ways}): name it the same way in every "
                       "profile")
    return out
