"""``member_of`` rules do not count memberships this bot itself granted, unless the policy says so
(issue 9, item 9).

A self-service profile for ``oncall`` must not become a back door into every profile whose
``eligible`` or ``auto_approve`` rules name ``oncall``; ``policy check`` warns where one profile's
group feeds another profile's rules, and ``count_granted: true`` on a rule is the explicit opt-in.
"""

from __future__ import annotations

import re

from handlers.policy import check_policy, load_policy
from tests.support import EXAMPLES, cli, copy_examples, harness

ALICE, BOB, FRANK = "alice@example.com", "bob@example.com", "frank@example.com"
ONCALL_SELF = """
  - id: oncall-self
    title: On-call rota, self-service
    owner: pat.lead@example.com
    risk: low
    provider: directory
    group: oncall
    duration: {default: 8h, max: 1d}
    approval: [owner]
    auto_approve:
      - {active: true, max_duration: 1d}
"""


def with_self_service(text: str) -> str:
    return text + ONCALL_SELF


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_policy_check_warns_where_a_granted_group_feeds_another_profile(tmp_path):
    text = with_self_service((EXAMPLES / "policy.yaml").read_text())
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    assert check_policy(text.encode()) == []  # a warning, not an error
    out = cli("policy", "check", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    eligible_line = line_of(text, "- member_of: oncall")
    auto_line = line_of(text, "{member_of: oncall, max_duration: 1h}")
    assert len(warnings) == 2, out.stderr
    assert f"line {eligible_line}: profiles[0].eligible[1].member_of" in warnings[0] and "oncall-self" in warnings[0]
    assert f"line {auto_line}: profiles[0].auto_approve[0].member_of" in warnings[1]
    assert "2 warning(s)" in out.stdout
    # without the self-service profile nothing is said
    clean = cli("policy", "check", str(EXAMPLES / "policy.yaml"))
    assert clean.returncode == 0 and "warning" not in clean.stderr + clean.stdout


def test_count_granted_is_validated():
    base = (EXAMPLES / "policy.yaml").read_text()
    bad = (re.sub(r"(?m)^      - member_of: oncall.*$", "      - {member_of: oncall, count_granted: yes-please}", base)
           .replace("      - employment_type: Contractor\n",
                    "      - {employment_type: Contractor, count_granted: true}\n", 1)
           .replace("      - {department: Engineering, max_duration: 1d}",
                    "      - {department: Engineering, max_duration: 1d, count_granted: true}"))
    issues = {(i.line, i.field, i.message) for i in check_policy(bad.encode())}
    assert (line_of(bad, "yes-please"), "profiles[0].eligible[1].count_granted", "must be true or false") in issues
    assert (line_of(bad, "{employment_type: Contractor, count_granted"), "profiles[0].ineligible[0].count_granted",
            "ineligible rules count every membership; count_granted is for eligible and auto_approve") in issues
    assert (line_of(bad, "max_duration: 1d, count_granted"), "profiles[3].auto_approve[0].count_granted",
            "only a rule with member_of can count granted memberships") in issues
    good = base.replace("{member_of: oncall, max_duration: 1h}", "{member_of: oncall, max_duration: 1h, "
                        "count_granted: true}")
    policy = load_policy_text(good)
    rule = policy.profile("prod-db-read").auto_approve[0]  # type: ignore[union-attr]
    assert rule.count_granted is True and "count_granted" not in rule.attrs
    assert rule.describe() == "member_of=oncall, max_duration=1h"


def load_policy_text(text: str):  # type: ignore[no-untyped-def]
    from handlers.policy import parse_policy

    return parse_policy(text.encode())


async def test_a_self_granted_oncall_membership_opens_nothing_else(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.policy.write_text(with_self_service(h.files.policy.read_text()))
        h.app.deps.policy = load_policy(h.files.policy)
        await h.app.service.start()
        # Frank (Finance) makes himself on call, then is no more eligible for prod-db-read than before
        r = await h.say(FRANK, "request oncall-self for 8h")
        assert r.ok and r.request.state == "active", r.text
        assert FRANK in await h.members("oncall")
        r = await h.say(FRANK, "request prod-db-read for 30m because INC-7 paged")
        assert not r.ok and r.rule == "eligible: no rule matched", r.text
        # Bob (Engineering, eligible) does the same: the auto_approve rule does not count it either
        assert (await h.say(BOB, "request oncall-self for 8h")).ok
        r = await h.say(BOB, "request prod-db-read for 30m because INC-7 paged")
        assert r.ok and r.request.state == "pending", r.text
        assert not [e for e in await h.events("request.approved") if e["request_id"] == r.request.id]
        # Alice is on call by the directory itself: she is still auto-approved
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-8 paged")
        assert r.ok and r.request.state == "active", r.text
        # once Frank's grant of oncall ends, nothing changes for him either
        assert (await h.say(FRANK, "release REQ-1")).ok
        r = await h.say(FRANK, "request prod-db-read for 30m because INC-9 paged")
        assert not r.ok and r.rule == "eligible: no rule matched", r.text


async def test_count_granted_opts_in(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        text = with_self_service(h.files.policy.read_text()).replace(
            "{member_of: oncall, max_duration: 1h}", "{member_of: oncall, max_duration: 1h, count_granted: true}")
        h.files.policy.write_text(text)
        h.app.deps.policy = load_policy(h.files.policy)
        await h.app.service.start()
        assert (await h.say(BOB, "request oncall-self for 8h")).ok
        r = await h.say(BOB, "request prod-db-read for 30m because INC-7 paged")
        assert r.ok and r.request.state == "active", r.text
        approved = [e for e in await h.events("request.approved") if e["request_id"] == r.request.id]
        assert approved[0]["data"]["auto"] is True
        # the `profiles` listing judges the same way
        r = await h.say(FRANK, "profiles")
        assert "prod-db-read" in r.text and "not eligible" in r.text.split("prod-db-read", 1)[1].splitlines()[0]


def test_example_files_still_check_clean(tmp_path):
    files = copy_examples(tmp_path)
    assert cli("policy", "check", str(files.policy)).returncode == 0


def test_only_a_member_of_rule_that_does_not_count_grants_needs_them_read() -> None:
    """The groups this bot granted are read (a query of the person's grants) only for a profile a rule of which
    takes them out of the person's groups: not for one judged by attributes alone, nor by rules that count them."""
    from handlers.eligibility import sees_grants

    policy = load_policy(EXAMPLES / "policy.yaml")
    assert sees_grants(policy.profile("prod-db-read"))  # eligible: member_of oncall, grants not counted
    assert not sees_grants(policy.profile("staging-admin"))
    counted = load_policy(EXAMPLES / "policy.yaml").profile("prod-db-read")
    assert counted is not None
    from dataclasses import replace

    rules = tuple(replace(r, count_granted=True) for r in counted.eligible)
    auto = tuple(replace(r, count_granted=True) for r in counted.auto_approve)
    assert not sees_grants(replace(counted, eligible=rules, auto_approve=auto, ineligible=()))
    assert sees_grants(replace(counted, eligible=rules, auto_approve=auto, ineligible=counted.eligible))


async def test_a_last_approval_judged_on_attributes_alone_reads_no_grants(database_url, tmp_path) -> None:
    from sqlalchemy import event

    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h because INC-2 deploy")).ok
        sent: list[str] = []

        def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            sent.append(" ".join(statement.split()))

        engine = h.app.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            assert (await h.say("mark.mgr@example.com", "approve REQ-1")).ok
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert (await h.request(1)).state == "active"
        assert not [s for s in sent if "FROM requests WHERE requests.requester" in s], sent
