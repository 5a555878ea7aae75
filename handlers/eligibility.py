"""Who may ask: ``eligible`` / ``ineligible`` / ``auto_approve`` rules against the identity source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from handlers.policy import Profile, Rule
from handlers.ports import Person
from handlers.records import HOLDING_STATES

if TYPE_CHECKING:
    from handlers.context import Deps


@dataclass(frozen=True)
class Memberships:
    """How ``member_of`` rules see a person's groups.

    ``key`` maps a ``member_of`` reference to the id the identity source knows the group by (a
    display name anyone could copy proves nothing); ``granted`` holds the keys of the groups the
    person holds through an active grant of this bot. Such a membership does not count for
    ``eligible`` or ``auto_approve`` unless the rule says ``count_granted: true``: a self-service
    profile for ``oncall`` must not open every profile whose rules name ``oncall``. ``ineligible``
    rules count every membership.
    """

    key: Callable[[str], str] = field(default=lambda ref: str(ref).strip())
    granted: frozenset[str] = frozenset()


PLAIN = Memberships()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).strip().lower() == str(b).strip().lower()
    return str(a).strip().casefold() == str(b).strip().casefold()


def rule_matches(rule: Rule, person: Person, memberships: Memberships = PLAIN, *, every_membership: bool = False
                 ) -> bool:
    """ALL keys of the rule must match; a list value matches if any element does.

    Strings compare case-insensitively and trimmed; ``member_of`` looks in ``person.groups`` by
    the group's key (minus the groups held only through this bot's grants, unless the rule
    counts them or ``every_membership``); keys the person has no field for are looked up in
    ``person.extra`` (a multi-valued extra attribute matches if any of its values does). A
    missing attribute never matches.
    """
    for key, expected in rule.attrs.items():
        options = expected if isinstance(expected, list | tuple) else [expected]
        if key == "member_of":
            groups = {str(g).strip().casefold() for g in person.groups}
            if not (every_membership or rule.count_granted):
                groups -= {g.strip().casefold() for g in memberships.granted}
            if not any(memberships.key(str(o)).strip().casefold() in groups for o in options):
                return False
            continue
        actual = person.attribute(key)
        values = actual if isinstance(actual, list | tuple | set | frozenset) else [actual]
        if not any(v is not None and _same(v, o) for v in values for o in options):
            return False
    return True


def ineligibility(profile: Profile, person: Person, memberships: Memberships = PLAIN) -> str | None:
    """None when eligible, else the name of the rule that refuses (it goes into ``data.rule``).

    Inactive people are refused first, then any matching ``ineligible`` rule, then a non-empty
    ``eligible`` list that nothing matches; an empty ``eligible`` list lets everyone ask.
    """
    if not person.active:
        return "inactive"
    for rule in profile.ineligible:
        if rule_matches(rule, person, memberships, every_membership=True):
            return f"ineligible: {rule.describe()}"
    if profile.eligible and not any(rule_matches(r, person, memberships) for r in profile.eligible):
        return "eligible: no rule matched"
    return None


def auto_approve_rule(profile: Profile, person: Person, duration: timedelta, memberships: Memberships = PLAIN
                      ) -> Rule | None:
    """The first auto_approve rule that matches the person and allows this duration, if any."""
    for rule in profile.auto_approve:
        if rule_matches(rule, person, memberships) and (rule.max_duration is None or duration <= rule.max_duration):
            return rule
    return None


async def memberships_of(deps: Deps, email: str) -> Memberships:
    """How ``member_of`` rules see this person: group keys, and the groups this bot granted them."""
    groups = deps.groups
    async with deps.store.read() as repo:
        held = await repo.find_requests(requester=email.strip().lower(), states=HOLDING_STATES,
                                        provider=groups.identity)
    return Memberships(key=groups.member_key, granted=frozenset(groups.key(r.provider, r.group) for r in held))
