"""Who may ask: ``eligible`` / ``ineligible`` / ``auto_approve`` rules against the identity source."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from handlers.policy import Profile, Rule
from handlers.ports import Person


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).strip().lower() == str(b).strip().lower()
    return str(a).strip().casefold() == str(b).strip().casefold()


def rule_matches(rule: Rule, person: Person) -> bool:
    """ALL keys of the rule must match; a list value matches if any element does.

    Strings compare case-insensitively and trimmed; ``member_of`` looks in ``person.groups``;
    keys the person has no field for are looked up in ``person.extra`` (a multi-valued extra
    attribute matches if any of its values does). A missing attribute never matches.
    """
    for key, expected in rule.attrs.items():
        options = expected if isinstance(expected, list | tuple) else [expected]
        if key == "member_of":
            groups = {str(g).strip().casefold() for g in person.groups}
            if not any(str(o).strip().casefold() in groups for o in options):
                return False
            continue
        actual = person.attribute(key)
        values = actual if isinstance(actual, list | tuple | set | frozenset) else [actual]
        if not any(v is not None and _same(v, o) for v in values for o in options):
            return False
    return True


def ineligibility(profile: Profile, person: Person) -> str | None:
    """None when eligible, else the name of the rule that refuses (it goes into ``data.rule``).

    Inactive people are refused first, then any matching ``ineligible`` rule, then a non-empty
    ``eligible`` list that nothing matches; an empty ``eligible`` list lets everyone ask.
    """
    if not person.active:
        return "inactive"
    for rule in profile.ineligible:
        if rule_matches(rule, person):
            return f"ineligible: {rule.describe()}"
    if profile.eligible and not any(rule_matches(r, person) for r in profile.eligible):
        return "eligible: no rule matched"
    return None


def auto_approve_rule(profile: Profile, person: Person, duration: timedelta) -> Rule | None:
    """The first auto_approve rule that matches the person and allows this duration, if any."""
    for rule in profile.auto_approve:
        if rule_matches(rule, person) and (rule.max_duration is None or duration <= rule.max_duration):
            return rule
    return None
