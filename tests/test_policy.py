"""The policy file (SPEC §2.1): the model, the loader, and a validator that names lines.

The ``bad-*.yaml`` samples in ``fixtures/policies`` carry their expected issues as
``# expect: FIELD: MESSAGE`` comments on the line each issue must name; every sample must report
exactly those issues, all at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest

from handlers.policy import (
    Policy,
    PolicyError,
    PolicyIssue,
    Reminders,
    Rule,
    Schedule,
    Step,
    check_policy,
    load_policy,
    parse_policy,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "policy.yaml"
SAMPLES = Path(__file__).resolve().parent / "fixtures" / "policies"
BAD = sorted(SAMPLES.glob("bad-*.yaml"))
GOOD = sorted(SAMPLES.glob("good-*.yaml"))


def expected_issues(text: str) -> list[tuple[int, str]]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        for part in line.split("# expect: ")[1:]:
            out.append((number, part.strip()))
    return out


# -- the example and the good samples ------------------------------------------------------------
def test_example_loads():
    policy = load_policy(EXAMPLE)
    raw = EXAMPLE.read_bytes()
    assert isinstance(policy, Policy)
    assert policy.version == "2026.11"
    assert policy.raw == raw
    assert policy.sha256 == hashlib.sha256(raw).hexdigest()
    assert [p.id for p in policy.profiles] == ["prod-db-read", "prod-k8s-admin", "staging-admin", "analytics-read"]
    assert policy.security_team == "security"
    assert policy.security_members() == frozenset({"sam.sec@example.com", "sasha.sec@example.com"})
    assert policy.reminders == Reminders(timedelta(hours=4), timedelta(hours=24))
    assert policy.schedule == Schedule()
    assert check_policy(raw) == []


def test_example_profile_in_full():
    p = load_policy(EXAMPLE).profile("prod-db-read")
    assert p is not None
    assert (p.title, p.owner, p.risk, p.provider, p.group) == (
        "Production database, read-only", "dana.dba@example.com", "high", "directory", "sg-prod-db-read")
    assert p.eligible == (Rule({"department": "Engineering"}), Rule({"member_of": "oncall"}))
    assert p.ineligible == (Rule({"employment_type": "Contractor"}),)
    assert (p.default_duration, p.max_duration) == (timedelta(hours=4), timedelta(hours=8))
    assert p.justification_required is True
    assert p.ticket is not None and p.ticket.required and re.fullmatch(p.ticket.pattern or "", "INC-42")
    assert p.approval == (Step("manager"), Step("any_of", group="dba"), Step("n_of", group="security", n=2))
    assert [s.label() for s in p.approval] == ["manager", "any_of dba", "2 of security"]
    assert p.auto_approve == (Rule({"member_of": "oncall"}, max_duration=timedelta(hours=1)),)
    assert p.exception is not None
    assert p.exception.approval == (Step("any_of", group="security"), Step("owner"))
    assert p.exception.max_duration == timedelta(days=30)


def test_example_other_profiles():
    policy = load_policy(EXAMPLE)
    staging = policy.profile("staging-admin")
    assert staging is not None and staging.justification_required is False and staging.ticket is None
    assert staging.max_duration == timedelta(days=3) and staging.exception is None and staging.auto_approve == ()
    analytics = policy.profile("analytics-read")
    assert analytics is not None and [s.label() for s in analytics.approval] == ["user dana.dba@example.com"]
    k8s = policy.profile("prod-k8s-admin")
    assert k8s is not None
    assert k8s.eligible == (Rule({"department": "Engineering", "title": "Site Reliability Engineer"}),)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_samples_load(path):
    policy = load_policy(path)
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert check_policy(path.read_bytes()) == []


def test_every_feature_once():
    policy = load_policy(SAMPLES / "good-full.yaml")
    assert policy.version == "2026.10"  # a number in YAML, kept as written (not 2026.1)
    assert policy.approver_groups["security"] == ("sam.sec@example.com", "sasha.sec@example.com",
                                                  "sid.sec@example.com")
    assert policy.reminders == Reminders(timedelta(hours=2), timedelta(days=1))
    assert policy.schedule == Schedule(sweep_interval=timedelta(seconds=10), drift_cron="30 5 * * mon-fri",
                                       expiry_warning=timedelta(minutes=15), termination_sla=timedelta(hours=12),
                                       retry_budget=timedelta(minutes=5))
    write, read = policy.profiles
    assert write.provider == "okta" and write.default_duration == timedelta(minutes=90)
    assert [s.label() for s in write.approval] == [
        "manager", "owner", "any_of dba", "all_of leads", "3 of security", "user pat.lead@example.com"]
    assert write.eligible[0] == Rule({"department": ("Engineering", "Finance"), "active": True})
    assert write.eligible[0].describe() == "department=Engineering|Finance, active=True"
    assert write.ineligible[1].attrs == {"cost_center": "4711"}
    assert write.ticket is not None and write.ticket.required is False
    assert write.auto_approve[1].max_duration is None
    assert write.exception is not None and write.exception.max_duration == timedelta(weeks=2)
    # the second profile merges the first (`<<: *billing`) and overrides some keys
    assert (read.id, read.group, read.risk, read.owner, read.provider) == (
        "billing-db-read", "00g1billingro", "low", "dana.dba@example.com", "okta")
    assert read.approval == (Step("any_of", group="dba"),)
    assert read.eligible == write.eligible


def test_minimal_defaults():
    policy = load_policy(SAMPLES / "good-minimal.yaml")
    p = policy.profiles[0]
    assert p.owner == "olive.owner@example.com"  # emails are lower-cased
    assert (p.risk, p.provider, p.justification_required, p.ticket, p.exception) == (
        "medium", "directory", False, None, None)
    assert (p.eligible, p.ineligible, p.auto_approve) == ((), (), ())
    assert policy.security_team is None and policy.security_members() == frozenset()
    assert policy.reminders == Reminders() and policy.schedule == Schedule()


# -- the model -------------------------------------------------------------------------------------
def test_model_is_frozen_and_uses_tuples():
    policy = load_policy(EXAMPLE)
    p = policy.profiles[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.id = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.version = "2"  # type: ignore[misc]
    assert isinstance(policy.profiles, tuple) and isinstance(p.approval, tuple) and isinstance(p.eligible, tuple)
    assert all(isinstance(m, tuple) for m in policy.approver_groups.values())


def test_profile_lookup_and_closest():
    policy = load_policy(EXAMPLE)
    assert policy.profile(" Prod-DB-Read ") is policy.profiles[0]
    assert policy.profile("nope") is None
    assert policy.closest_profiles("prod-db-reed")[0] == "prod-db-read"
    assert policy.closest_profiles("prod-db", n=1) == ["prod-db-read"]
    assert policy.closest_profiles("zzzzzz") == []
    assert policy.closest_profiles("x" * 100_000) == []


def test_labels_and_descriptions():
    assert Step("owner").label() == "owner"
    assert Step("all_of", group="dba").label() == "all_of dba"
    assert Step("n_of", group="security", n=2).label() == "2 of security"
    assert Step("user", user="x@example.com").label() == "user x@example.com"
    assert Rule({"employment_type": "Contractor"}).describe() == "employment_type=Contractor"
    assert Rule({"member_of": "oncall"}, timedelta(hours=1)).describe() == "member_of=oncall, max_duration=1h"
    assert Rule({"department": "Eng", "title": "SRE"}, timedelta(minutes=90)).describe() == \
        "department=Eng, title=SRE, max_duration=1h30m"


def test_issue_and_error_text():
    issue = PolicyIssue(12, "profiles[0].duration.max", "must be a duration like 4h")
    assert str(issue) == "line 12: profiles[0].duration.max: must be a duration like 4h"
    assert str(PolicyIssue(None, "version", "required")) == "version: required"
    error = PolicyError([issue, PolicyIssue(3, "security_team", "no approver group 'x'")])
    assert str(error).splitlines() == [str(issue), "line 3: security_team: no approver group 'x'"]
    assert len(error.issues) == 2


# -- the validator -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_samples_report_every_issue_with_its_line(path):
    raw = path.read_bytes()
    expected = expected_issues(raw.decode())
    assert expected, f"{path.name} names no expected issue"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    found = info.value.issues
    shown = "\n".join(map(str, found))
    for line, text in expected:
        assert any(i.line == line and f"{i.field}: {i.message}".startswith(text) for i in found), \
            f"missing line {line}: {text}\nfound:\n{shown}"
    assert len(found) == len(expected), f"unexpected issues:\n{shown}"
    assert check_policy(raw) == found
    assert str(info.value) == shown


def test_issues_come_sorted_by_line():
    with pytest.raises(PolicyError) as info:
        load_policy(SAMPLES / "bad-steps.yaml")
    lines = [i.line or 0 for i in info.value.issues]
    assert lines == sorted(lines)


BASE = b"""version: "1"
profiles:
  - id: p
    title: P
    owner: o@example.com
    group: g
    duration: {default: 1h, max: 2h}
    approval: [manager]
"""


@pytest.mark.parametrize(("raw", "expected"), [
    (b"", "line 1: policy: the file must be a mapping"),
    (b"just text\n", "line 1: policy: the file must be a mapping"),
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (b"a: [1,\n", "line 2: yaml: invalid YAML"),
    (b"a: !!python/object:os.system {}\n", "invalid YAML"),
    (b"\t- tab\n", "line 1: yaml: invalid YAML"),
])
def test_not_a_policy_at_all(raw, expected):
    with pytest.raises(PolicyError) as info:
        parse_policy(raw)
    assert len(info.value.issues) == 1
    assert expected in str(info.value.issues[0])


@pytest.mark.parametrize(("version", "expected"), [
    (b'"2026.11"', "2026.11"), (b"2026.10", "2026.10"), (b"7", "7"), (b"v3-beta", "v3-beta")])
def test_version_is_text_as_written(version, expected):
    assert parse_policy(BASE.replace(b'"1"', version)).version == expected


@pytest.mark.parametrize("version", [b"", b"true", b"[1]", b'""'])
def test_version_must_be_a_label(version):
    issues = check_policy(BASE.replace(b'"1"', version))
    assert [i.field for i in issues] == ["version"] and issues[0].line == 1


def test_hash_is_of_the_exact_bytes():
    a = parse_policy(BASE)
    b = parse_policy(BASE + b"# a comment changes the bytes, not the meaning\n")
    assert a.sha256 == hashlib.sha256(BASE).hexdigest()
    assert a.sha256 != b.sha256 and a.profiles == b.profiles


def test_crlf_and_bom_files_load():
    raw = BASE.replace(b"\n", b"\r\n")
    assert parse_policy(raw).profiles[0].id == "p"
    assert parse_policy(b"\xef\xbb\xbf" + BASE).version == "1"


@pytest.mark.parametrize("cron", ["0 6 * * *", "*/15 * * * *", "0 8-18/2 * * mon-fri", "0,30 6 1 jan,jul sun"])
def test_cron_accepted_is_accepted_by_the_scheduler(cron):
    from apscheduler.triggers.cron import CronTrigger

    policy = parse_policy(BASE + f"schedule: {{drift_cron: '{cron}'}}\n".encode())
    assert policy.schedule.drift_cron == cron
    CronTrigger.from_crontab(cron, timezone="UTC")


@pytest.mark.parametrize("cron", ["0 6 * *", "0 6 * * * *", "61 * * * *", "0 24 * * *", "0 6 0 * *", "0 6 * 13 *",
                                  "0 6 * * 7", "0 6 * * funday", "*/0 * * * *", "@daily", "5"])
def test_cron_refused_is_refused_by_the_scheduler(cron):
    from apscheduler.triggers.cron import CronTrigger

    issues = check_policy(BASE + f"schedule: {{drift_cron: '{cron}'}}\n".encode())
    assert [(i.line, i.field) for i in issues] == [(9, "schedule.drift_cron")]
    with pytest.raises(ValueError):
        CronTrigger.from_crontab(cron, timezone="UTC")


def test_many_errors_at_once_across_the_file():
    raw = (SAMPLES / "bad-steps.yaml").read_bytes().replace(b'version: "1"\n', b"")
    raw += b"reminders: {remind_after: never}\n"
    issues = check_policy(raw)
    fields = {i.field for i in issues}
    assert {"version", "reminders.remind_after", "profiles[0].approval[1]", "profiles[1].approval"} <= fields


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "missing.yaml")
    assert "cannot read the policy file" in str(info.value)
    assert info.value.issues[0].line is None
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path)


def test_step_groups_are_checked_in_exception_chains():
    raw = BASE + b"    exception: {approval: [{any_of: ghosts}], max_duration: 30d}\n"
    issues = check_policy(raw)
    assert [str(i) for i in issues] == ["line 9: profiles[0].exception.approval[0].any_of: no approver group 'ghosts'"]
