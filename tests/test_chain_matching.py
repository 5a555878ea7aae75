"""Whether a chain can still finish (one person counts once per request) for steps that need many approvals.

``first_unsatisfiable`` matches approvals to people; a step over a large group (``n_of: 1200`` of a 1,500-person
group, an ``all_of`` over a big team) used to recurse once per approval and crash the submission with
``RecursionError``. The answers are compared with an exhaustive search on small random chains.
"""

from __future__ import annotations

import itertools
import random

from handlers.chains import ResolvedStep, first_unsatisfiable
from handlers.policy import Step


def _step(i: int, kind: str, pool: set[str], need: int) -> ResolvedStep:
    return ResolvedStep(step=Step(kind=kind, group="g", n=need), index=i, pool=frozenset(pool), need=need)


def _exhaustive(steps: list[ResolvedStep]) -> int | None:
    """Index of the first prefix no assignment of distinct people satisfies (None: all can finish)."""
    for k in range(1, len(steps) + 1):
        slots = [s.pool for s in steps[:k] for _ in range(s.need)]
        if any(s.step.kind == "all_of" and not s.pool for s in steps[:k]):
            return k - 1
        people = sorted(set().union(*slots)) if slots else []
        ok = any(all(p in slot for p, slot in zip(pick, slots, strict=True))
                 for pick in itertools.permutations(people, len(slots))) if len(slots) <= len(people) else False
        if not ok:
            return k - 1
    return None


def test_a_step_needing_many_approvals_is_judged_without_recursion() -> None:
    group = {f"p{i}@example.com" for i in range(1500)}
    steps = [_step(0, "any_of", {"p0@example.com", "p1@example.com"}, 1), _step(1, "n_of", group, 1200),
             _step(2, "all_of", {f"p{i}@example.com" for i in range(1300, 1500)}, 200)]
    assert first_unsatisfiable(steps) is None
    short = [_step(0, "n_of", group, 1200), _step(1, "n_of", group, 301)]
    assert first_unsatisfiable(short) is short[1]


def test_the_matching_agrees_with_an_exhaustive_search_on_small_chains() -> None:
    rng = random.Random(13)
    people = [f"u{i}" for i in range(6)]
    for _ in range(400):
        steps = []
        for i in range(rng.randint(1, 4)):
            pool = set(rng.sample(people, rng.randint(1, 4)))
            need = rng.randint(1, min(2, len(pool)))
            steps.append(_step(i, "n_of", pool, need))
        bad = first_unsatisfiable(steps)
        assert (None if bad is None else bad.index) == _exhaustive(steps), steps


def test_long_chains_take_the_augmenting_paths_and_agree_too() -> None:
    """Past ten steps the matching is by augmenting paths (iterative): the same answers, and no recursion on a
    thousand-approval step."""
    rng = random.Random(7)
    people = [f"u{i}" for i in range(5)]
    for _ in range(40):
        steps = [_step(i, "n_of", set(rng.sample(people, rng.randint(1, 3))), 1) for i in range(11)]
        bad = first_unsatisfiable(steps)
        assert (None if bad is None else bad.index) == _exhaustive(steps), steps
    group = {f"p{i}@example.com" for i in range(1500)}
    many = [_step(i, "any_of", {f"q{i}@example.com"}, 1) for i in range(10)] + [_step(10, "n_of", group, 1200)]
    assert first_unsatisfiable(many) is None
