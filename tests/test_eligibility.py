"""Who may ask: eligible / ineligible / auto_approve rules against a person from the identity source."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from handlers.eligibility import auto_approve_rule, ineligibility, rule_matches
from handlers.policy import Profile, Rule, load_policy, parse_policy
from handlers.ports import Person

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policy.yaml"

# People as examples/directory.yaml describes them.
ALICE = Person("alice@example.com", "Alice Ng", department="Engineering", title="Site Reliability Engineer",
               employment_type="FTE", manager="mark.mgr@example.com", groups=frozenset({"oncall"}))
BOB = Person("bob@example.com", "Bob Ortiz", department="Engineering", title="Software Engineer",
             employment_type="FTE", manager="mark.mgr@example.com")
CAROL = Person("carol@example.com", "Carol Diaz", department="Engineering", title="Software Engineer",
               employment_type="Contractor", manager="mark.mgr@example.com", groups=frozenset({"oncall"}))
FRANK = Person("frank@example.com", "Frank Li", department="Finance", title="Analyst", employment_type="FTE")
OPS = Person("olga@example.com", department="Operations", employment_type="FTE", groups=frozenset({"Oncall "}))
GONE = Person("gus@example.com", department="Engineering", employment_type="FTE", active=False)


@pytest.fixture(scope="module")
def policy():
    return load_policy(EXAMPLE)


def profile(policy, pid: str) -> Profile:
    found = policy.profile(pid)
    assert found is not None
    return found


def test_contractor_refused_by_the_exact_rule(policy):
    assert ineligibility(profile(policy, "prod-db-read"), CAROL) == "ineligible: employment_type=Contractor"
    assert ineligibility(profile(policy, "prod-k8s-admin"), CAROL) == "ineligible: employment_type=Contractor"
    assert ineligibility(profile(policy, "staging-admin"), CAROL) is None  # no ineligible rule there


def test_any_eligible_rule_is_enough(policy):
    db = profile(policy, "prod-db-read")
    assert ineligibility(db, ALICE) is None  # department and oncall
    assert ineligibility(db, BOB) is None  # department only
    assert ineligibility(db, OPS) is None  # oncall member only (case and spaces do not matter)


def test_no_rule_matched(policy):
    assert ineligibility(profile(policy, "prod-db-read"), FRANK) == "eligible: no rule matched"
    assert ineligibility(profile(policy, "prod-k8s-admin"), BOB) == "eligible: no rule matched"  # title differs
    assert ineligibility(profile(policy, "prod-k8s-admin"), ALICE) is None  # department AND title
    assert ineligibility(profile(policy, "analytics-read"), FRANK) is None


def test_inactive_first(policy):
    for p in policy.profiles:
        assert ineligibility(p, GONE) == "inactive"
    gone_contractor = Person("x@example.com", employment_type="Contractor", active=False)
    assert ineligibility(profile(policy, "prod-db-read"), gone_contractor) == "inactive"


def test_empty_eligible_means_everyone():
    p = parse_policy(b"""version: "1"
profiles:
  - {id: open, title: Open, owner: o@example.com, group: g, duration: {default: 1h, max: 2h}, approval: [owner],
     ineligible: [{department: [Sales, Marketing]}]}
""").profiles[0]
    assert ineligibility(p, FRANK) is None
    assert ineligibility(p, Person("s@example.com", department="marketing")) == \
        "ineligible: department=Sales|Marketing"


def test_first_matching_ineligible_rule_is_named():
    p = parse_policy(b"""version: "1"
profiles:
  - id: p
    title: P
    owner: o@example.com
    group: g
    duration: {default: 1h, max: 2h}
    approval: [owner]
    ineligible:
      - {department: Finance, title: Analyst}
      - employment_type: Contractor
      - department: Finance
""").profiles[0]
    assert ineligibility(p, FRANK) == "ineligible: department=Finance, title=Analyst"
    assert ineligibility(p, Person("f2@example.com", department="Finance", title="Boss")) == \
        "ineligible: department=Finance"
    assert ineligibility(p, CAROL) == "ineligible: employment_type=Contractor"


@pytest.mark.parametrize(("attrs", "person", "matches"), [
    ({"department": "engineering"}, BOB, True),
    ({"department": " Engineering "}, BOB, True),
    ({"department": ("Finance", "ENGINEERING")}, BOB, True),
    ({"department": ("Finance", "Sales")}, BOB, False),
    ({"department": "Engineering", "employment_type": "Contractor"}, BOB, False),  # ALL keys must match
    ({"department": "Engineering", "employment_type": "FTE"}, BOB, True),
    ({"title": "software engineer"}, BOB, True),
    ({"manager": "Mark.Mgr@Example.com"}, BOB, True),
    ({"manager": "pat.lead@example.com"}, BOB, False),
    ({"manager": "x@example.com"}, FRANK, False),  # no manager at all
    ({"email": "BOB@example.com"}, BOB, True),
    ({"member_of": "oncall"}, ALICE, True),
    ({"member_of": "ONCALL"}, OPS, True),
    ({"member_of": "oncall"}, BOB, False),
    ({"member_of": ("dba", "oncall")}, ALICE, True),
    ({"active": True}, BOB, True),
    ({"active": False}, BOB, False),
    ({"active": False}, GONE, True),
    ({"department": "Engineering"}, Person("n@example.com"), False),  # attribute missing
    ({"cost_center": "4711"}, Person("e@example.com", extra={"cost_center": 4711}), True),
    ({"cost_center": "4711"}, Person("e@example.com", extra={"cost_center": "4712"}), False),
    ({"cost_center": "4711"}, BOB, False),  # extra attribute missing
    ({"location": "berlin"}, Person("e@example.com", extra={"location": ["Paris", "Berlin"]}), True),
    ({"location": ("Rome", "Oslo")}, Person("e@example.com", extra={"location": ["Paris", "Berlin"]}), False),
])
def test_rule_matches(attrs, person, matches):
    assert rule_matches(Rule(attrs), person) is matches


def test_rules_from_yaml_match_like_rules_built_in_code():
    p = parse_policy(b"""version: "1"
profiles:
  - id: p
    title: P
    owner: o@example.com
    group: g
    duration: {default: 1h, max: 2h}
    approval: [owner]
    eligible:
      - {department: [Engineering, Finance], active: yes}
      - {level: 7}
""").profiles[0]
    assert rule_matches(p.eligible[0], FRANK) and rule_matches(p.eligible[0], BOB)
    assert rule_matches(p.eligible[1], Person("l@example.com", extra={"level": "7"}))
    assert not rule_matches(p.eligible[1], Person("l@example.com", extra={"level": 8}))


def test_auto_approve_with_max_duration(policy):
    db = profile(policy, "prod-db-read")
    rule = auto_approve_rule(db, ALICE, timedelta(minutes=30))
    assert rule is not None and rule.describe() == "member_of=oncall, max_duration=1h"
    assert auto_approve_rule(db, ALICE, timedelta(hours=1)) is rule  # the limit itself is allowed
    assert auto_approve_rule(db, ALICE, timedelta(hours=1, minutes=1)) is None
    assert auto_approve_rule(db, BOB, timedelta(minutes=30)) is None  # not oncall
    analytics = profile(policy, "analytics-read")
    assert auto_approve_rule(analytics, BOB, timedelta(days=1)) is not None
    assert auto_approve_rule(analytics, BOB, timedelta(days=2)) is None
    assert auto_approve_rule(analytics, FRANK, timedelta(hours=1)) is None
    assert auto_approve_rule(profile(policy, "staging-admin"), ALICE, timedelta(minutes=5)) is None


def test_auto_approve_first_matching_rule_wins():
    p = parse_policy(b"""version: "1"
profiles:
  - id: p
    title: P
    owner: o@example.com
    group: g
    duration: {default: 1h, max: 8h}
    approval: [owner]
    auto_approve:
      - {member_of: oncall, max_duration: 1h}
      - {department: Engineering}
""").profiles[0]
    first, second = p.auto_approve
    assert auto_approve_rule(p, ALICE, timedelta(minutes=30)) is first
    assert auto_approve_rule(p, ALICE, timedelta(hours=4)) is second  # over the first rule's limit
    assert auto_approve_rule(p, OPS, timedelta(hours=4)) is None
    assert second.describe() == "department=Engineering"
