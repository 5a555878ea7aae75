"""Who may ask: ``eligible`` / ``ineligible`` / ``auto_approve`` rules against the identity source."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from handlers.groups import CannotJudge
from handlers.policy import Policy, Profile, Rule
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


class AttributeNotSupplied(CannotJudge):
    """A rule that would decide names an attribute the identity source does not supply for the person (Graph
    returns only what was selected): the rule cannot be judged, so nobody is judged by it. Not a passing
    outage: the policy (or the provider's settings) must change, so the message names the rule and the key, and
    why when the source said (``Person.unsupplied``: Graph does not know a directory extension)."""

    def __init__(self, kind: str, rule: Rule, keys: list[str], why: Mapping[str, str] | None = None) -> None:
        self.rule = f"{kind}: {rule.describe()}"
        self.keys = keys
        why = why or {}
        plain = [k for k in keys if k not in why]
        said = [why[k] for k in keys if k in why]
        if plain:
            said.insert(0, "the identity source does not supply " + ", ".join(f"`{k}`" for k in plain))
        super().__init__(f"could not check `{self.rule}`: {'; '.join(said)}", transient=False)


def _not_supplied(kind: str, rule: Rule, person: Person) -> AttributeNotSupplied:
    return AttributeNotSupplied(kind, rule, _unknown(rule, person), person.unsupplied)


def _unknown(rule: Rule, person: Person) -> list[str]:
    return [k for k in rule.attrs if k != "member_of" and not person.knows(k)]


def _judge(kind: str, rule: Rule, person: Person, memberships: Memberships, *, every_membership: bool = False
           ) -> bool | None:
    """Whether the rule matches: True, False, or None when only keys the source cannot know stand in between
    (every key it can know matches)."""
    unknown = _unknown(rule, person)
    if not unknown:
        return rule_matches(rule, person, memberships, every_membership=every_membership)
    known = replace(rule, attrs={k: v for k, v in rule.attrs.items() if k not in unknown})
    if known.attrs and not rule_matches(known, person, memberships, every_membership=every_membership):
        return False  # decided without the unknown keys
    return None


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

    A rule naming an attribute the identity source does not supply (``Person.knows``) fails closed: when it
    would decide (an ``ineligible`` rule whose other keys match; ``eligible`` rules of which none matches and
    one could), :class:`AttributeNotSupplied` is raised naming it, as a group name not resolved is.
    """
    if not person.active:
        return "inactive"
    undecided = None
    for rule in profile.ineligible:
        judged = _judge("ineligible", rule, person, memberships, every_membership=True)
        if judged:
            return f"ineligible: {rule.describe()}"
        if judged is None and undecided is None:
            undecided = rule
    if undecided is not None:
        raise _not_supplied("ineligible", undecided, person)
    if profile.eligible:
        for rule in profile.eligible:
            judged = _judge("eligible", rule, person, memberships)
            if judged:
                return None
            if judged is None and undecided is None:
                undecided = rule
        if undecided is not None:
            raise _not_supplied("eligible", undecided, person)
        return "eligible: no rule matched"
    return None


def auto_approve_rule(profile: Profile, person: Person, duration: timedelta, memberships: Memberships = PLAIN
                      ) -> Rule | None:
    """The first auto_approve rule that matches the person and allows this duration, if any."""
    for rule in profile.auto_approve:  # a rule the source cannot judge does not skip the chain
        if _judge("auto_approve", rule, person, memberships) and (rule.max_duration is None
                                                                  or duration <= rule.max_duration):
            return rule
    return None


def rule_keys(policy: Policy) -> frozenset[str]:
    """Every attribute key the policy's ``eligible``, ``ineligible`` and ``auto_approve`` rules name (not
    ``member_of``): what the identity source must hand over for them to be judged."""
    return frozenset(k for p in policy.profiles for rules in (p.eligible, p.ineligible, p.auto_approve)
                     for rule in rules for k in rule.attrs if k != "member_of")


def rule_places(policy: Policy) -> Iterator[tuple[Rule, str, str]]:
    """Each attribute key a rule names (``member_of`` included), with its rule and its place in the policy
    (``profiles[i].<kind>[j].<key>``), for a check that names the line and the place of what it warns of."""
    for i, profile in enumerate(policy.profiles):
        for kind, rules in (("eligible", profile.eligible), ("ineligible", profile.ineligible),
                            ("auto_approve", profile.auto_approve)):
            for j, rule in enumerate(rules):
                for key in rule.attrs:
                    yield rule, f"profiles[{i}].{kind}[{j}].{key}", key


def ask_for_attributes(directory: object, policy: Policy) -> None:
    """Tell the identity source (unwrapped from a memo) which attributes ``policy``'s rules name, when it hands
    over only what it is asked for (Graph's ``$select``). Additive: versions still judging requests keep theirs."""
    source = getattr(directory, "inner", directory)
    want = getattr(source, "want_attributes", None)
    if want is not None:
        want(rule_keys(policy))


def sees_grants(profile: Profile) -> bool:
    """Whether judging ``profile``'s rules may need the groups this bot granted the person: a ``member_of`` rule
    that does not count them (they are taken out of the person's groups)."""
    return any("member_of" in rule.attrs and not rule.count_granted
               for rule in (*profile.eligible, *profile.ineligible, *profile.auto_approve))


async def memberships_of(deps: Deps, email: str, profile: Profile | None = None) -> Memberships:
    """How ``member_of`` rules see this person: group keys, and the groups this bot granted them (not read when
    ``profile``'s rules cannot need them: :func:`sees_grants`)."""
    groups = deps.groups
    if profile is not None and not sees_grants(profile):
        return Memberships(key=groups.member_key)
    async with deps.store.read() as repo:
        held = await repo.find_requests(requester=email.strip().lower(), states=HOLDING_STATES,
                                        provider=groups.identity)
    return Memberships(key=groups.member_key, granted=frozenset(groups.key(r.provider, r.group) for r in held))
