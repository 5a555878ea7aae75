"""Approval chains: who may decide each step, and whether a chain can be satisfied at all.

The requester never counts as an approver of their own request, and one person counts once per
request (per round): a step's pool excludes both. A step that cannot be satisfied fails closed.
The people an ``all_of`` or ``n_of`` step asked are fixed when it opens (:func:`pin_step`): someone
who disappears from the directory afterwards makes it wait (until the leaver sweep confirms them gone: then it
fails closed if it cannot do without them), never need fewer people.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from handlers.policy import Policy, Profile, Step
from handlers.ports import Directory, Person


@dataclass(frozen=True)
class ResolvedStep:
    step: Step
    index: int  # 0-based
    pool: frozenset[str]  # active people who may decide, requester excluded
    need: int
    asked: frozenset[str] | None = None  # pinned: the people the open step asked when it opened
    # a ``manager`` step whose re-route the safety brake holds: the manager(s) the provider names now, who may
    # not decide it while it stays with those it asked (handlers/compliance/reroute_brake.py)
    held_for: frozenset[str] | None = None

    @property
    def pinned(self) -> bool:
        return self.asked is not None

    @property
    def label(self) -> str:
        return self.step.label()

    @property
    def rule(self) -> str:
        return f"step {self.index + 1}: {self.label}"


async def _active(directory: Directory, emails: set[str]) -> set[str]:
    """The active people among ``emails``, each by the address the identity source knows them by: a
    policy may name someone by another of their addresses (a UPN beside the mail, an Okta login), and
    a decision is made by the person as they sign in, never by the spelling the policy used."""
    out = set()
    for email in emails:
        person = await directory.get_user(email)
        if person is not None and person.active:
            out.add((person.email or email).strip().lower())
    return out


async def resolve_step(step: Step, index: int, *, policy: Policy, profile: Profile,
                       requester: Person, directory: Directory) -> ResolvedStep:
    """The people who may decide ``step`` for this requester, as the identity source says now."""
    if step.kind == "manager":
        candidates = {requester.manager.lower()} if requester.manager else set()
    elif step.kind == "owner":
        candidates = {profile.owner.lower()}
    elif step.kind == "user":
        candidates = {(step.user or "").lower()}
    else:
        candidates = {e.lower() for e in policy.approver_groups.get(step.group or "", ())}
    # the requester is left out by who they are, however the policy or the directory spells them
    pool = frozenset(await _active(directory, candidates) - {requester.email.strip().lower()})
    if step.kind == "n_of":
        need = step.n
    elif step.kind == "all_of":
        need = max(len(pool), 1)
    else:
        need = 1
    return ResolvedStep(step=step, index=index, pool=pool, need=need)


async def resolve_chain(steps: Sequence[Step], *, policy: Policy, profile: Profile,
                        requester: Person, directory: Directory) -> list[ResolvedStep]:
    return [await resolve_step(s, i, policy=policy, profile=profile, requester=requester,
                               directory=directory) for i, s in enumerate(steps)]


PINNED_KINDS = ("all_of", "n_of")


def pin_step(step: ResolvedStep, asked: frozenset[str] | None, available: frozenset[str] | None = None
             ) -> ResolvedStep:
    """The open ``step`` as it was asked when it opened: only the people it asked may decide (those of
    them ``available``, by default the step's active pool), and an ``all_of`` step still needs every one
    of them. Other kinds, and a step with no record of whom it asked, are returned unchanged."""
    if asked is None or step.step.kind not in PINNED_KINDS:
        return step
    pool = asked & (step.pool if available is None else available)
    need = len(asked) if step.step.kind == "all_of" else step.need
    return ResolvedStep(step=step.step, index=step.index, pool=frozenset(pool), need=max(need, 1), asked=asked)


def waiting_for(step: ResolvedStep, missing: frozenset[str]) -> ResolvedStep:
    """The open ``step`` as it can still be satisfied when the people it asked who are ``missing`` from the
    directory come back (a half-written directory file, a renamed login): they count as able to decide, whatever
    the step's kind, so the step waits for them rather than fail closed. A pinned step counts them already."""
    if not missing or step.pinned:
        return step
    return ResolvedStep(step=step.step, index=step.index, pool=step.pool | missing, need=step.need, asked=step.asked)


def step_need(step: ResolvedStep, earlier: set[str] | frozenset[str]) -> int:
    """How many approvals ``step`` needs, given who approved earlier steps of the round."""
    if step.step.kind == "all_of" and not step.pinned:
        return len(step.pool - earlier)
    return step.need


def _assignable(steps: Sequence[ResolvedStep], used: frozenset[str]) -> bool:
    """Can every step get ``need`` distinct people, nobody counted twice? (bipartite matching)"""
    pools: list[frozenset[str]] = []
    needs: list[int] = []
    for s in steps:
        pool = s.pool - used
        if s.step.kind == "all_of" and (s.pool & used or not pool):
            return False  # all_of needs every member, and a member already counted cannot count
        if s.need > 0:
            pools.append(pool)
            needs.append(s.need)
    if len(pools) <= _HALL_STEPS:
        # Hall's condition: every set of steps together has at least as many people as they need approvals
        # (the usual chain: a few steps, whatever the size of their groups)
        unions: list[frozenset[str]] = [frozenset()]
        totals = [0]
        for mask in range(1, 1 << len(pools)):
            low = (mask & -mask).bit_length() - 1
            unions.append(unions[mask & (mask - 1)] | pools[low])
            totals.append(totals[mask & (mask - 1)] + needs[low])
            if len(unions[mask]) < totals[mask]:
                return False
        return True
    slots = [pool for pool, need in zip(pools, needs, strict=True) for _ in range(need)]
    owner: dict[str, int] = {}
    return all(_place(slots, owner, i) for i in range(len(slots)))


_HALL_STEPS = 10  # up to this many steps, every set of them is checked (2**10 sets at most)


def _place(slots: list[frozenset[str]], owner: dict[str, int], start: int) -> bool:
    """Find ``start`` a person by an augmenting path (Kuhn), without recursion: a step that needs a thousand
    approvals makes paths a thousand slots long, past Python's recursion limit. Each slot reached first looks
    for someone nobody counts yet, then tries to move those who are counted elsewhere."""
    seen: set[str] = set()
    stack: list[tuple[int, Iterator[str]]] = []
    path: list[tuple[int, str]] = []  # (slot, person it takes if the person's owner finds another)
    slot = start
    while True:
        free = next((p for p in slots[slot] if p not in owner), None)
        if free is not None:  # the path ends here: each slot on it takes the person it reached through
            owner[free] = slot
            for taker, taken in reversed(path):
                owner[taken] = taker
            return True
        stack.append((slot, iter(slots[slot])))
        while stack:
            slot, people = stack[-1]
            person = next((p for p in people if p not in seen), None)
            if person is not None:
                seen.add(person)
                path.append((slot, person))
                slot = owner[person]  # reached: look for a free person there, or go deeper
                break
            stack.pop()
            if path:
                path.pop()
        else:
            return False


def first_unsatisfiable(steps: Sequence[ResolvedStep], used: frozenset[str] = frozenset()
                        ) -> ResolvedStep | None:
    """The first step at which the chain (from its start) can no longer be satisfied."""
    for k in range(1, len(steps) + 1):
        if not _assignable(steps[:k], used):
            return steps[k - 1]
    return None


def open_step_unsatisfiable(chain: Sequence[ResolvedStep], step: int, earlier: set[str],
                            approved_here: set[str]) -> ResolvedStep | None:
    """Like :func:`first_unsatisfiable` for a chain already at ``step``, counting the approvals
    the open step has so far: they stay counted, and only the rest of its quota must be found."""
    current = chain[step]
    pool = current.pool - earlier
    if current.pinned:  # approvals given stay counted even if their author has since disappeared
        need = current.need - len(approved_here)
    else:
        need = (len(pool) if current.step.kind == "all_of" else current.need) - len(approved_here & pool)
    rest = [ResolvedStep(current.step, current.index, frozenset(pool - approved_here), max(need, 0)),
            *chain[step + 1:]]
    if need <= 0:
        rest = rest[1:]
    return first_unsatisfiable(rest, frozenset(earlier | approved_here)) if rest else None
