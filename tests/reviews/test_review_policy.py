"""The ``reviews:`` block of the policy (SPEC §7): typed objects, defaults, and `policy check`."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from handlers.policy import Step, check_policy, load_policy, parse_policy
from handlers.reviews.model import ReviewDuration, ReviewSchedule
from handlers.reviews.policy_check import parse_review_duration
from tests.support import cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "fixtures" / "policies"
EXAMPLE = ROOT / "examples" / "policy.yaml"


def test_every_review_field_parsed():
    policy = load_policy(SAMPLES / "good-reviews.yaml")
    q, monthly, by_hand = policy.reviews
    assert (q.id, q.title, q.profiles) == ("quarterly-privileged", "Quarterly privileged access review",
                                           ("prod-db-read", "prod-k8s-admin"))
    assert (q.reviewer, q.fallback) == (Step("manager"), Step("any_of", group="security"))
    assert q.schedule == ReviewSchedule(quarterly="first_business_day", at=time(8, 0), timezone="Europe/Berlin",
                                        country="DE")
    assert (q.duration, q.remind_after, q.escalate_after) == (
        ReviewDuration(business_days=10), ReviewDuration(business_days=3), ReviewDuration(business_days=5))
    assert (q.if_not_reviewed, q.inactive_days, q.keep_reason_required, q.remove_reason_required) == (
        "remove", 30, True, True)
    assert q.sign_off == (Step("any_of", group="security"),)
    # defaults: title from the id, fallback the security team, keep undecided, 5bd escalation, no sign-off
    assert (monthly.title, monthly.profiles, monthly.reviewer) == ("monthly-dba", ("prod-db-read",),
                                                                   Step("any_of", group="dba"))
    assert monthly.fallback == Step("any_of", group="security")
    assert monthly.schedule == ReviewSchedule(cron="30 7 1 * *", timezone="America/New_York", country="US",
                                              subdivision="NY")
    assert (monthly.duration, monthly.remind_after, monthly.escalate_after) == (
        ReviewDuration(span=timedelta(hours=72)), ReviewDuration(span=timedelta(days=1)),
        ReviewDuration(business_days=5))
    assert (monthly.if_not_reviewed, monthly.inactive_days, monthly.keep_reason_required,
            monthly.remove_reason_required, monthly.sign_off) == ("keep", None, False, True, ())
    assert by_hand.reviewer == Step("user", user="pat.lead@example.com") and by_hand.fallback == Step("owner")
    assert by_hand.schedule == ReviewSchedule(quarterly="first_monday", at=time(7, 30), country="DE",
                                              subdivision="BY")
    assert policy.review("Monthly-DBA") is monthly and policy.review("nope") is None


def test_example_review_is_valid_and_its_schedule_can_be_switched_on():
    policy = load_policy(EXAMPLE)
    review = policy.review("quarterly-privileged")
    assert review is not None and review.schedule.automatic is False  # started by hand until switched on
    assert review.schedule.country == "DE" and review.duration == ReviewDuration(business_days=10)
    raw = EXAMPLE.read_text().replace("      # quarterly: first_business_day", "      quarterly: first_business_day")
    switched = parse_policy(raw.encode()).review("quarterly-privileged")
    assert switched is not None and switched.schedule.quarterly == "first_business_day"
    assert switched.schedule.describe() == \
        "quarterly on the first business day at 08:00 (Europe/Berlin, holidays DE)"


@pytest.mark.parametrize(("text", "expected"), [
    ("10bd", ReviewDuration(business_days=10)), ("1 bd", ReviewDuration(business_days=1)),
    ("250bd", ReviewDuration(business_days=250)), ("48h", ReviewDuration(span=timedelta(hours=48))),
    ("2d", ReviewDuration(span=timedelta(days=2))),
])
def test_review_durations(text, expected):
    assert parse_review_duration(text) == expected
    assert parse_review_duration(expected.label()) == expected


@pytest.mark.parametrize("text", ["0bd", "-1bd", "1.5bd", "251bd", "bd", "10 business days", "99999bd", "tomorrow"])
def test_bad_review_durations(text):
    with pytest.raises(ValueError):
        parse_review_duration(text)


BASE = """version: "1"
approver_groups: {security: [sam.sec@example.com]}
profiles:
  - {id: p, title: P, owner: o@example.com, group: g, duration: {default: 1h, max: 2h}, approval: [manager]}
reviews:
  - id: r
    scope: {profiles: [p]}
    reviewer: manager
    duration: 10bd
"""


def test_a_fallback_is_needed_without_a_security_team():
    issues = check_policy(BASE.encode())
    assert len(issues) == 1
    assert str(issues[0]).startswith("line 6: reviews[0].fallback: required when the policy names no security_team")
    ok = parse_policy((BASE + "    fallback: {user: sam.sec@example.com}\n").encode())
    assert ok.reviews[0].fallback == Step("user", user="sam.sec@example.com")


@pytest.mark.parametrize(("schedule", "problem"), [
    ("{at: 8:00}", None),  # YAML reads 8:00 as the number 480: the text as written counts
    ("{at: '8:00', timezone: 'Etc/GMT+5'}", None),
    ("{timezone: '../../etc/passwd'}", "unknown time zone"),
    ("{timezone: ''}", "must name a time zone"),
    ("{cron: '0 8 * * * *'}", "6 fields"),
    ("{cron: '@quarterly'}", "1 fields"),
    ("{holidays: 42}", "must be a country code"),
    ("{holidays: {country: DE, region: BY}}", "unknown key"),
    ("[quarterly]", "must be {quarterly"),
])
def test_schedule_problems(schedule, problem):
    raw = BASE.replace("approver_groups:", "security_team: security\napprover_groups:") + f"    schedule: {schedule}\n"
    issues = check_policy(raw.encode())
    if problem is None:
        assert issues == []
        assert parse_policy(raw.encode()).reviews[0].schedule.at == time(8, 0)
    else:
        assert len(issues) == 1 and problem in str(issues[0]) and issues[0].line == 11, issues


def test_policy_check_names_the_lines_of_review_problems(tmp_path):
    result = cli("policy", "check", str(SAMPLES / "bad-reviews.yaml"))
    assert result.returncode == 1
    assert "line 21: reviews[0].schedule.timezone: unknown time zone 'Europe/Berlinn'" in result.stderr
    assert "line 22: reviews[0].schedule.holidays: the holidays calendar does not know the country 'XX'" \
        in result.stderr
    assert "line 34: reviews[1].schedule.cron: must be a 5-field cron string" in result.stderr
    ok = cli("policy", "check", str(SAMPLES / "good-reviews.yaml"))
    assert ok.returncode == 0, ok.stderr


SIGN_OFF_BASE = """version: "1"
approver_groups:
  security: [sam.sec@example.com, sasha.sec@example.com]
  dba: [sasha.sec@example.com, dana.dba@example.com]
  trio: [a@example.com, b@example.com, c@example.com]
security_team: security
profiles:
  - {id: p, title: P, owner: o@example.com, group: g, duration: {default: 1h, max: 2h}, approval: [manager]}
reviews:
  - id: q
    scope: {profiles: [p]}
    reviewer: manager
    duration: 10bd
"""


@pytest.mark.parametrize(("chain", "problem"), [
    # one person signs once: whoever signs step 1 can never count for step 2's "all of"
    ("[{any_of: security}, {all_of: security}]",
     "reviews[0].sign_off[1]: review 'q': the sign-off chain can never be completed at step 2: all_of security: "
     "its steps up to there need 3 signatures from 2 people, and one person signs once"),
    ("[{all_of: security}, {any_of: security}]", "can never be completed at step 2: any_of security"),
    ("[{n_of: 2, from: security}, {user: sam.sec@example.com}]", "at step 2: user sam.sec@example.com"),
    ("[{user: sam.sec@example.com}, {user: sam.sec@example.com}]", "need 2 signatures from 1 person"),
    # satisfiable if the right person signs first, stuck for ever if sasha signs step 1
    ("[{any_of: security}, {all_of: dba}]",
     "reviews[0].sign_off[1]: review 'q': the sign-off chain can never be completed at step 2: all_of dba once "
     "sasha.sec@example.com signs an earlier step"),
    ("[{any_of: security}, {any_of: trio}, {n_of: 2, from: dba}]",
     "at step 3: 2 of dba once sasha.sec@example.com signs an earlier step: it needs 2 of its 2 people"),
])
def test_a_sign_off_chain_that_can_be_left_incomplete_is_refused(chain, problem):
    raw = (SIGN_OFF_BASE + f"    sign_off: {chain}\n").encode()
    issues = check_policy(raw)
    assert len(issues) == 1 and problem in str(issues[0]) and issues[0].line == 14, issues


@pytest.mark.parametrize("chain", [
    "[{any_of: security}]",
    "[{all_of: dba}, {any_of: security}]",  # sasha must sign step 1; sam is left for step 2
    "[{any_of: trio}, {n_of: 2, from: trio}]",  # whoever signs step 1, two people are left
    "[{any_of: security}, {any_of: trio}, {user: dana.dba@example.com}]",
])
def test_a_sign_off_chain_every_order_of_signers_completes_is_accepted(chain):
    raw = (SIGN_OFF_BASE + f"    sign_off: {chain}\n").encode()
    assert check_policy(raw) == []


def test_policy_check_refuses_a_sign_off_nobody_may_complete(tmp_path):
    """The example review with a second step that needs every security member again: one person signs
    once, so the campaign would wait for ever; `policy check` names the review and the step."""
    text = EXAMPLE.read_text()
    assert "sign_off: [{any_of: security}]" in text
    bad = tmp_path / "policy.yaml"
    bad.write_text(text.replace("sign_off: [{any_of: security}]", "sign_off: [{any_of: security}, {all_of: security}]"))
    result = cli("policy", "check", str(bad))
    assert result.returncode == 1
    assert "reviews[0].sign_off[1]: review 'quarterly-privileged': the sign-off chain can never be completed at " \
           "step 2: all_of security" in result.stderr, result.stderr


def test_the_holiday_countries_read_from_the_registry_are_those_the_package_lists() -> None:
    """Loading a policy reads the country codes from the package's registry and imports the one country it
    names, instead of importing every country to list them: the same codes and subdivisions either way."""
    import holidays

    from handlers.reviews.policy_check import holiday_countries, holiday_subdivisions

    listed = holidays.list_supported_countries()
    assert holiday_countries() == {code.upper() for code in listed}
    for code in ("DE", "US", "GB", "UK", "CH", "FR", "IN"):
        assert sorted(holiday_subdivisions(code)) == sorted(str(s).upper() for s in listed[code])
