"""Approval chains that can never finish, found when a policy is checked (SPEC §2.1).

One person counts once per request, and the requester never counts: a chain whose steps draw on the
same few people can be left short of approvers whoever decides (``{all_of: dba}`` then
``{all_of: leads}`` where both name dana). At run time the request is refused naming the step, or an
approval that would leave a later step short is refused (``needed-later``); this module tells the
policy author when the file is checked, by the same rule (each step gets ``need`` distinct people from its pool,
a person once across the chain: a bipartite matching, here by augmenting paths between the steps, so that a group
of thousands costs no more than its size).

Only the people the policy names are known: the approver groups (fixed lists), ``{user: EMAIL}``
steps and the profile's ``owner``. The requester's manager is not: the check takes the manager for one
person (every ``manager`` step of a chain is that same person) other than the requester and other
than everyone the policy names, and it takes every email the policy names for a distinct, active
person. That is the best case for a chain: one that cannot finish even then can finish for nobody
(an error). A chain that passes can still be refused for a requester whose manager is one of its
approvers too, or when people have left; the request then names the step.

The standard chain and the exception chain are checked; an extension runs through the chain of its
request's kind (SPEC §3.4), so it has none of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from handlers.chains import ResolvedStep
from handlers.policy import Policy, PolicyIssue, Profile, Step

MANAGER = "the requester's manager"  # never an email (it has spaces): nobody the policy names


def chains_of(profile: Profile) -> list[tuple[str, tuple[Step, ...]]]:
    """The profile's approval chains, each with the field that holds it."""
    out = [("approval", profile.approval)]
    if profile.exception is not None:
        out.append(("exception.approval", profile.exception.approval))
    return out


def _resolved(steps: Sequence[Step], owner: str, groups: Mapping[str, tuple[str, ...]],
              requester: str | None) -> list[ResolvedStep]:
    """The chain as :func:`handlers.chains.resolve_chain` would resolve it for ``requester`` (None: someone the
    policy does not name), every named person active and the manager someone else again."""
    out = []
    for i, step in enumerate(steps):
        if step.kind == "manager":
            people = {MANAGER}
        elif step.kind == "owner":
            people = {owner.lower()}
        elif step.kind == "user":
            people = {(step.user or "").lower()}
        else:
            people = {e.lower() for e in groups.get(step.group or "", ())}
        pool = frozenset(people - {requester})
        need = step.n if step.kind == "n_of" else max(len(pool), 1) if step.kind == "all_of" else 1
        out.append(ResolvedStep(step=step, index=i, pool=pool, need=need))
    return out


def _augment(chain: Sequence[ResolvedStep], start: int, held: dict[str, int], count: list[int],
             order: Sequence[Sequence[str]]) -> set[int] | None:
    """Give step ``start`` one more person, moving people between steps when that frees one it may use (an
    augmenting path, breadth first over the steps). None when it did; else the steps searched: between them they
    already hold every person any of them may use."""
    parent: dict[int, tuple[int, str]] = {}  # step -> (the step that takes a person from it, that person)
    queue, seen = [start], {start}
    for step in queue:
        for person in order[step]:  # each pool sorted once (a group of thousands, asked for thousands)
            owner = held.get(person)
            if owner is None:
                held[person], at = step, step
                while at != start:  # each step on the way gives one person and gets another
                    taker, moved = parent[at]
                    held[moved], at = taker, taker
                count[start] += 1
                return None
            if owner not in seen:
                seen.add(owner)
                parent[owner] = (step, person)
                queue.append(owner)
    return seen


def _first_short(chain: Sequence[ResolvedStep]) -> tuple[ResolvedStep, list[int], list[str], int] | None:
    """The chain's steps given their people in order, one person once (as :func:`handlers.chains.first_unsatisfiable`
    judges a chain): the first step that cannot get all it needs, with the steps competing for its people, those
    people, and how many approvals those steps need from them at least. None when every step gets its people."""
    held: dict[str, int] = {}
    count = [0] * len(chain)
    order = [sorted(step.pool) for step in chain]
    for step in chain:
        for _ in range(step.need):
            competing = _augment(chain, step.index, held, count, order)
            if competing is not None:
                people = sorted(set().union(*(chain[i].pool for i in competing)))
                return step, sorted(competing), people, sum(count[i] for i in competing) + 1
    return None


def _names(people: Sequence[str], limit: int = 10) -> str:
    """The people, the first ``limit`` of them by name when there are more (a group may have thousands)."""
    shown = ", ".join(people[:limit])
    return shown if len(people) <= limit else f"{shown} and {len(people) - limit} more"


def _explain(chain: Sequence[ResolvedStep], steps: list[int], people: list[str], approvals: int) -> str:
    names = [f"step {i + 1} ({chain[i].label})" for i in steps]
    named = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    among = f"only {len(people)} {'person' if len(people) == 1 else 'people'} ({_names(people)})" if people \
        else "nobody"
    return f"{named} {'needs' if len(names) == 1 else 'need'} at least {approvals} approvals from {among}"


def never_finishes(steps: Sequence[Step], owner: str, groups: Mapping[str, tuple[str, ...]],
                   what: str = "approval chain") -> tuple[int, str] | None:
    """The step (0-based) at which the chain can finish for no requester, and why; None when some can."""
    chain = _resolved(steps, owner, groups, None)
    short = _first_short(chain)
    if short is None:
        return None
    bad, *why = short
    return bad.index, (f"the {what} can never finish at {bad.rule}: {_explain(chain, *why)}, and one person counts "
                       "once per request: no request can be approved")


def _alone_short(step: ResolvedStep) -> bool:
    """A step short of people on its own (the requester is its only approver, or one of too few): the plain rule
    that a requester never approves their own request, which the request names when refused; not warned about."""
    return not step.pool or len(step.pool) < step.need


def chain_warnings(policy: Policy) -> list[PolicyIssue]:
    """Chains that finish for most requesters but not for some of the people they name: for those, leaving
    the requester out leaves the steps competing for too few people (each step on its own still has enough)."""
    out: list[PolicyIssue] = []
    for i, profile in enumerate(policy.profiles):
        for key, steps in chains_of(profile):
            generic = _resolved(steps, profile.owner, policy.approver_groups, None)
            # two people whom the same steps name are alike: leaving out either leaves the same chain but for that name
            alike: dict[frozenset[int], list[str]] = {}
            for person in sorted(set().union(*(s.pool for s in generic)) - {MANAGER}):
                alike.setdefault(frozenset(s.index for s in generic if person in s.pool), []).append(person)
            failing: dict[int, list[str]] = {}
            explained: dict[int, str] = {}
            for people in alike.values():
                chain = _resolved(steps, profile.owner, policy.approver_groups, people[0])
                short = _first_short(chain)
                if short is None or any(_alone_short(s) for s in chain):
                    continue
                bad, *why = short
                failing.setdefault(bad.index, []).extend(people)
                explained.setdefault(bad.index, f"when {people[0]} asks, {_explain(chain, *why)}")
            for at, people in sorted(failing.items()):
                asks = "asks" if len(people) == 1 else "ask"
                text = (f"warning: profile {profile.id!r}: the {'exception ' if key != 'approval' else ''}chain "
                        f"cannot finish at step {at + 1} ({steps[at].label()}) when {_names(sorted(people))} "
                        f"{asks}: a requester never approves their own request and one person counts once per "
                        f"request ({explained[at]}); other requesters are not affected")
                out.append(PolicyIssue(steps[at].line, f"profiles[{i}].{key}[{at}]", text))
    return out
