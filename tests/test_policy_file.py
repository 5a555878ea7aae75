"""The policy file: every error with its line and field, all at once; durations; eligibility."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from handlers.durations import DurationError, format_duration, parse_duration
from handlers.eligibility import auto_approve_rule, ineligibility
from handlers.policy import PolicyError, load_policy, parse_policy
from handlers.ports import Person

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policy.yaml"


def test_example_loads_with_its_hash():
    policy = load_policy(EXAMPLE)
    assert policy.version == "2026.11"
    assert policy.sha256 == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    p = policy.profile("prod-db-read")
    assert [s.label() for s in p.approval] == ["manager", "any_of dba", "2 of security"]
    assert p.max_duration == timedelta(hours=8) and p.ticket.pattern == "^(INC|CHG)-[0-9]+$"
    assert p.exception.max_duration == timedelta(days=30)
    assert policy.security_members() == {"sam.sec@example.com", "sasha.sec@example.com"}
    assert policy.closest_profiles("prod-db-reed")[0] == "prod-db-read"


def issues(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text.encode())
    return [str(i) for i in info.value.issues]


BASE = """version: "1"
approver_groups:
  sec: [a@example.com, b@example.com]
security_team: sec
profiles:
  - id: p
    title: P
    owner: o@example.com
    group: g
    duration: {default: 1h, max: 2h}
    approval: [manager]
"""


@pytest.mark.parametrize(("change", "expected"), [
    (("    approval: [manager]", "    aproval: [manager]"), "line 11: profiles[0].aproval: unknown key (did you mean"),
    (("default: 1h", "default: 3h"), "line 10: profiles[0].duration.default: is longer than max"),
    (("max: 2h", "max: two hours"), "line 10: profiles[0].duration.max: must be a duration"),
    (("[manager]", "[{any_of: nobody}]"), "line 11: profiles[0].approval[0].any_of: no approver group 'nobody'"),
    (("[manager]", "[{n_of: 3, from: sec}]"), "line 11: profiles[0].approval[0].n_of: 3 is more than the 2"),
    (("[manager]", "[boss]"), "line 11: profiles[0].approval[0]: unknown step 'boss'"),
    (("[manager]", "[]"), "line 11: profiles[0].approval: must be a non-empty list"),
    (("  - id: p", "  - id: P!"), "line 6: profiles[0].id: 'P!' must match"),
    (("security_team: sec", "security_team: nope"), "line 4: security_team: no approver group 'nope'"),
    (('version: "1"\n', ""), "version: required"),
    (("    group: g\n", "    group: g\n    risk: extreme\n"), "line 10: profiles[0].risk: must be low, medium or high"),
    (("    group: g\n", "    group: g\n    ticket: {required: true, pattern: '[unclosed'}\n"),
     "line 10: profiles[0].ticket.pattern: not a valid regular expression"),
    (("    group: g\n", "    group: g\n    auto_approve: [{member_of: x, max_duration: 1d}]\n"),
     "line 10: profiles[0].auto_approve[0].max_duration: is above the profile's max duration"),
])
def test_each_error_names_line_and_field(change, expected):
    found = issues(BASE.replace(*change))
    assert any(expected in i for i in found), found


def test_all_errors_at_once_and_duplicates():
    text = BASE.replace("max: 2h", "max: x").replace("[manager]", "[boss]") + BASE.split("profiles:\n")[1]
    found = issues(text)
    assert len(found) >= 3
    assert any("already used at line 6" in i for i in found)


@pytest.mark.parametrize("raw", [b"version: [1,\n", b"- a\n- b\n", b"\xff\xfe\x00", b""])
def test_not_a_policy(raw):
    with pytest.raises(PolicyError):
        parse_policy(raw)


def test_missing_file():
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy("/nonexistent/policy.yaml")


@pytest.mark.parametrize(("text", "expected"), [
    ("15m", timedelta(minutes=15)), ("4h", timedelta(hours=4)), ("2d", timedelta(days=2)),
    ("1h30m", timedelta(minutes=90)), ("2 hours", timedelta(hours=2)), ("90 Minutes", timedelta(minutes=90)),
    ("1w", timedelta(days=7)), ("3 d", timedelta(days=3)),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0m", "-1h", "99999d", "1", "soon", "4h later", "9" * 10000, "1x"])
def test_bad_durations(text):
    with pytest.raises(DurationError):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(timedelta(seconds=s)) for s in (2700, 5400, 172800, 187200, 30)] == \
        ["45m", "1h30m", "2d", "2d4h", "30s"]


def test_eligibility_rules():
    policy = load_policy(EXAMPLE)
    p = policy.profile("prod-db-read")
    alice = Person("alice@example.com", department="Engineering", employment_type="FTE", groups=frozenset({"oncall"}))
    carol = Person("carol@example.com", department="Engineering", employment_type="Contractor")
    frank = Person("frank@example.com", department="Finance", employment_type="FTE")
    gone = Person("x@example.com", department="Engineering", active=False)
    assert ineligibility(p, alice) is None
    assert ineligibility(p, carol) == "ineligible: employment_type=Contractor"
    assert ineligibility(p, frank) == "eligible: no rule matched"
    assert ineligibility(p, gone) == "inactive"
    assert auto_approve_rule(p, alice, timedelta(minutes=30)).describe() == "member_of=oncall, max_duration=1h"
    assert auto_approve_rule(p, alice, timedelta(hours=2)) is None
    assert auto_approve_rule(p, carol, timedelta(minutes=30)) is None
