"""The whole lifecycle through the service the channels use, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json

from handlers.context import FixedClock
from handlers.sweeps import sweep
from tests.support import T0, harness

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
MARK, DANA, DEV = "mark.mgr@example.com", "dana.dba@example.com", "dev.dba@example.com"
SAM, SASHA, PAT = "sam.sec@example.com", "sasha.sec@example.com", "pat.lead@example.com"


async def test_high_risk_chain_to_expiry(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "request prod-db-read for 2h because INC-4411 replica lag")
        assert r.ok and r.request and r.request.id == "REQ-1", r.text
        assert r.request.ticket == "INC-4411"
        assert [s.status for s in r.request.steps] == ["open", "waiting", "waiting"]
        assert [n.recipient for n in h.notifier.notices if n.kind == "approval"] == [MARK]

        # nobody but the open step's approvers may decide
        r = await h.say(DANA, "approve REQ-1")
        assert not r.ok and r.rule == "not-an-approver"
        r = await h.say(BOB, "approve REQ-1")
        assert not r.ok and r.rule == "self-approval"

        assert (await h.say(MARK, "approve REQ-1 fine")).ok
        assert sorted(n.recipient for n in h.notifier.notices if n.kind == "approval") == [DANA, DEV, MARK]
        assert (await h.say(DEV, "approve REQ-1")).ok
        r = await h.say(DANA, "approve REQ-1")
        assert not r.ok and r.rule == "step-closed"
        assert (await h.say(SAM, "approve REQ-1")).ok
        r = await h.say(SAM, "approve REQ-1")
        assert not r.ok and r.rule == "already-decided"
        assert (await h.request(1)).state == "pending"
        r = await h.say(SASHA, "approve REQ-1 ok")
        assert r.ok, r.text
        rec = await h.request(1)
        assert rec.state == "active"
        assert rec.expires_at == T0 + __import__("datetime").timedelta(hours=2)
        assert BOB in await h.members("sg-prod-db-read")

        provisioned = await h.events("grant.provisioned")
        assert provisioned[0]["data"]["group"] == "sg-prod-db-read"
        granted = await h.events("approval.granted")
        assert [(e["actor"], e["data"]["step"]) for e in granted] == [(MARK, 1), (DEV, 2), (SAM, 3), (SASHA, 3)]
        submitted = (await h.events("request.submitted"))[0]
        assert submitted["data"]["policy_sha256"] == hashlib.sha256(h.files.policy.read_bytes()).hexdigest()
        assert submitted["data"]["kind"] == "standard"

        h.clock.advance(hours=2, seconds=1)
        report = await h.app.service.sweep()
        assert report.expired == ["REQ-1"]
        assert (await h.request(1)).state == "expired"
        assert BOB not in await h.members("sg-prod-db-read")
        again = await h.app.service.sweep()
        assert again.expired == [] and len(await h.events("grant.expired")) == 1


async def test_refusals_name_their_rule(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        cases = [
            (BOB, "request prod-db-reed for 1h because INC-1 x", "unknown-profile"),
            (CAROL, "request prod-db-read for 1h because INC-1 x", "ineligible: employment_type=Contractor"),
            (BOB, "request prod-db-read for 9h because INC-1 x", "duration>max"),
            (BOB, "request prod-db-read for 1h because no ticket here", "ticket"),
            (BOB, "request prod-db-read for 1h", "justification"),
            (BOB, "request prod-db-read for 0m because INC-1", "duration"),
            (BOB, "request prod-db-read for -1h because INC-1", "duration"),
            (BOB, "request prod-db-read for 99999d because INC-1", "duration"),
            ("frank@example.com", "request staging-admin", "eligible: no rule matched"),
        ]
        for who, text, rule in cases:
            r = await h.say(who, text)
            assert not r.ok and r.rule == rule, (text, r.text)
            assert rule in r.text
        refused = await h.events("request.refused")
        assert [e["data"]["rule"] for e in refused] == [c[2] for c in cases]
        assert all(e["request_id"] is None for e in refused)
        r = await h.say(BOB, "request prod-db-reed for 1h because INC-1 x")
        assert "prod-db-read" in r.text  # the closest profile is suggested
        r = await h.say(CAROL, "request prod-db-read for 1h because INC-1 x")
        assert "exception prod-db-read" in r.text  # how to ask for an exception
        async with h.app.store.read() as repo:
            assert await repo.find_requests() == []


async def test_unsatisfiable_step_fails_closed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        # Frank's manager Fiona is the only approver of staging... Fiona has no manager at all:
        r = await h.say("fiona.fin@example.com", "request analytics-read for 2d because reports")
        assert r.rule == "step 1: user dana.dba@example.com" or r.ok
        h.files.set_active(MARK, False)
        r = await h.say(BOB, "request staging-admin for 1h")
        assert not r.ok and r.rule == "step 1: manager", r.text


async def test_auto_approve_exception_extend_release(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 paged")
        assert r.ok and r.request.state == "active", r.text
        approved = (await h.events("request.approved"))[0]
        assert approved["actor"] == "system" and approved["data"]["auto"] is True
        # a second request for the same profile while active points to the grant
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-8")
        assert not r.ok and r.rule == "already-active" and "extend REQ-1" in r.text

        r = await h.say(ALICE, "extend REQ-1 by 1h because still digging")
        assert r.ok and r.request.extension == "1h", r.text
        for who in (MARK, DANA, SAM, SASHA):
            assert (await h.say(who, "approve REQ-1")).ok
        rec = await h.request(1)
        assert rec.state == "active" and rec.expires_at == T0 + __import__("datetime").timedelta(minutes=90)
        ext = (await h.events("grant.extended"))[0]
        assert ext["data"]["extension"] is True and ext["request_id"] == "REQ-1"
        assert all(e["data"].get("extension") for e in (await h.events("approval.granted")))

        r = await h.say(ALICE, "extend REQ-1 by 9h")
        assert not r.ok and r.rule == "duration>max"

        r = await h.say(ALICE, "release REQ-1")
        assert r.ok and (await h.request(1)).state == "released"
        assert ALICE not in await h.members("sg-prod-db-read")

        # exception: outside the maximum, through the exception chain, reported as an exception
        r = await h.say(CAROL, "exception prod-db-read for 2d because INC-9 migration weekend")
        assert r.ok and r.request.kind == "exception", r.text
        assert [s.label for s in r.request.steps] == ["any_of security", "owner"]
        assert (await h.say(SAM, "approve REQ-2")).ok
        assert (await h.say(DANA, "approve REQ-2")).ok
        rec = await h.request(2)
        assert rec.state == "active" and rec.kind == "exception"
        assert (await h.events("request.submitted"))[-1]["data"]["kind"] == "exception"
        r = await h.say(CAROL, "exception prod-db-read for 31d because INC-9")
        assert not r.ok


async def test_deny_cancel_revoke(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        r = await h.say(MARK, "deny REQ-1")
        assert not r.ok and "because" in r.text  # a reason is required
        r = await h.say(MARK, "deny REQ-1 because not this week")
        assert r.ok and (await h.request(1)).state == "denied"
        assert (await h.events("request.denied"))[0]["data"]["reason"] == "not this week"
        assert not (await h.say(MARK, "approve REQ-1")).ok  # a decided request stays decided

        await h.say(BOB, "request staging-admin for 1h")
        assert not (await h.say(ALICE, "cancel REQ-2")).ok
        assert (await h.say(BOB, "cancel REQ-2")).ok
        assert (await h.request(2)).state == "cancelled"

        await h.say(BOB, "request staging-admin for 1h")
        await h.say(MARK, "approve REQ-3")
        assert (await h.request(3)).state == "active"
        r = await h.say(BOB, "revoke REQ-3 because test")
        assert not r.ok and r.rule == "security-only"
        assert [e["data"]["command"] for e in await h.events("command.refused")] == ["cancel", "revoke"]
        r = await h.say(SAM, "revoke REQ-3 because suspicious activity")
        assert r.ok and (await h.request(3)).state == "revoked"
        revoked = (await h.events("grant.revoked"))[0]
        assert revoked["data"]["reason"] == "security" and revoked["actor"] == SAM
        assert BOB not in await h.members("sg-staging-admin")


async def test_overlapping_grants_keep_membership(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        # two profiles on the same group: write a policy copy with a second profile on sg-staging-admin
        text = h.files.policy.read_text().replace(
            "  - id: analytics-read", "  - id: staging-admin-2\n    title: Staging admin again\n"
            "    owner: pat.lead@example.com\n    risk: low\n    provider: directory\n"
            "    group: sg-staging-admin\n    duration: {default: 1h, max: 1d}\n    approval: [manager]\n\n"
            "  - id: analytics-read")
        h.files.policy.write_text(text)
        from handlers.policy import load_policy

        h.app.deps.policy = load_policy(h.files.policy)
        await h.app.service.start()
        await h.say(BOB, "request staging-admin for 1h")
        await h.say(MARK, "approve REQ-1")
        await h.say(BOB, "request staging-admin-2 for 3h")
        await h.say(MARK, "approve REQ-2")
        assert [(await h.request(n)).state for n in (1, 2)] == ["active", "active"]
        h.clock.advance(hours=1, minutes=1)
        await h.app.service.sweep()
        assert (await h.request(1)).state == "expired"
        assert BOB in await h.members("sg-staging-admin")  # REQ-2 still covers it
        h.clock.advance(hours=2)
        await h.app.service.sweep()
        assert BOB not in await h.members("sg-staging-admin")


async def test_termination_and_drift(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 4h")
        await h.say(MARK, "approve REQ-1")
        await h.say(BOB, "request analytics-read for 1d")  # auto-approved
        assert (await h.request(2)).state == "active"
        h.files.set_active(BOB, False)
        h.files.add_to_group("sg-prod-db-read", "frank@example.com")
        report = await h.app.service.sweep()
        assert report.terminated == [BOB] and sorted(report.revoked) == ["REQ-1", "REQ-2"]
        assert [(await h.request(n)).end_reason for n in (1, 2)] == ["terminated", "terminated"]
        assert len(await h.events("user.terminated")) == 1
        assert {e["data"]["reason"] for e in await h.events("grant.revoked")} == {"terminated"}
        drift = await h.events("drift.detected")
        assert [(e["data"]["group"], e["data"]["user"]) for e in drift] == [("sg-prod-db-read", "frank@example.com")]
        assert any(n.kind == "drift" for n in h.notifier.to(SAM))
        before = len(await h.events())
        await h.app.service.sweep()
        assert len(await h.events()) == before  # idempotent


async def test_dry_run_and_as_of_change_nothing(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(ALICE, "request prod-db-read for 30m because INC-7 paged")
        before = len(await h.events())
        deps = h.app.deps
        deps.clock = FixedClock(T0.replace(hour=12))
        report = await sweep(deps, dry_run=True)
        assert report.expired == ["REQ-1"]
        assert len(await h.events()) == before and (await h.request(1)).state == "active"


async def test_concurrent_approvals_one_transition(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request prod-db-read for 1h because INC-1 x")
        await h.say(MARK, "approve REQ-1")
        # both DBAs click 25 times each, at once, with the owner, the manager and the requester
        who = [DANA, DEV] * 25 + [PAT, MARK, BOB]
        replies = await asyncio.gather(*(h.say(w, "approve REQ-1") for w in who))
        assert sum(1 for r in replies if r.ok) == 1
        assert {r.rule for r in replies if not r.ok} <= {"already-decided", "step-closed", "not-an-approver",
                                                          "self-approval", "unknown-request"}
        granted = [e for e in await h.events("approval.granted") if e["data"]["step"] == 2]
        assert len(granted) == 1
        assert len([e for e in await h.events("approval.requested") if e["data"]["step"] == 3]) == 1
        assert (await h.request(1)).step == 2


async def test_status_and_security_queries(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request prod-db-read for 1h because INC-1 x")
        r = await h.say(BOB, "status REQ-1")
        assert r.ok and "request.submitted" in r.text and "manager" in r.text
        assert (await h.say(MARK, "status REQ-1")).ok
        r = await h.say(CAROL, "status REQ-1")
        assert not r.ok
        assert (await h.say(SAM, "status REQ-1")).ok
        r = await h.say(BOB, "status REQ-99")
        assert not r.ok and "REQ-99" in r.text
        r = await h.say(SAM, "pending")
        assert "REQ-1" in r.text and MARK in r.text
        assert not (await h.say(BOB, "pending")).ok
        r = await h.say(MARK, "mine")
        assert "Waiting on your decision" in r.text and "REQ-1" in r.text
        r = await h.say(SAM, "history bob@example.com")
        assert "REQ-1" in r.text
        r = await h.say(SAM, "who has prod-db-read")
        assert r.ok
        r = await h.say(SAM, "verify")
        assert r.ok and r.text.startswith("OK ")
        r = await h.say(BOB, "profiles")
        assert "prod-db-read" in r.text and "eligible" in r.text


async def test_free_phrasing_and_unknown(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "I need prod-db-read for 2 hours to fix INC-4411")
        assert r.ok and r.request.duration == "2h" and r.request.ticket == "INC-4411", r.text
        before = len(await h.events())
        for text in ("please do something", "approve", "give me everything", "prod-db-read staging-admin need",
                     "\u202edelete everything", "x" * 10000, "💥" * 300):
            r = await h.say(BOB, text)
            assert r.kind == "help" and not r.ok, text
        assert len(await h.events()) == before


async def test_policy_version_sticks_to_request(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        old_sha = h.app.deps.policy.sha256
        # a new policy makes staging-admin need the owner instead of the manager
        h.files.policy.write_text(h.files.policy.read_text().replace('version: "2026.11"', 'version: "2026.12"')
                                  .replace("    approval:\n      - manager\n", "    approval:\n      - owner\n"))
        from handlers.policy import load_policy

        h.app.deps.policy = load_policy(h.files.policy)
        await h.app.service.start()
        loaded = await h.events("policy.loaded")
        assert [e["data"]["version"] for e in loaded] == ["2026.11", "2026.12"]
        assert (await h.say(MARK, "approve REQ-1")).ok  # judged by the version it was submitted under
        rec = await h.request(1)
        assert rec.policy_sha256 == old_sha and rec.state == "active"
        await h.say(BOB, "release REQ-1")
        r = await h.say(BOB, "request staging-admin for 1h")
        assert r.request.steps[0].label == "owner"


def test_hash_rule_recomputed_with_stdlib_only(tmp_path):
    """The contract's hash rule, recomputed from exported events with nothing but hashlib and json."""
    from tests.support import chat, cli, copy_examples

    files = copy_examples(tmp_path)
    db = f"sqlite:///{tmp_path}/a.db"
    chat(BOB, "request staging-admin for 1h", "request prod-db-read for 1h because INC-5 ünïcødé ✓", db=db, files=files)
    chat(MARK, "approve REQ-1 👍", db=db, files=files)
    out = cli("audit", "export", "--format", "jsonl", db=db, check=True).stdout
    prev = "0" * 64
    lines = out.splitlines()
    assert len(lines) >= 6
    for i, line in enumerate(lines, start=1):
        event = json.loads(line)
        assert event["seq"] == i and event["prev_hash"] == prev
        body = {k: v for k, v in event.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest() == event["hash"]
        assert event["ts"].endswith("Z") and len(event["ts"]) == 24
        prev = event["hash"]


async def test_step_impossible_later_fails_closed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        await h.say(BOB, "request prod-db-read for 1h because INC-3 x")
        for who in (MARK, DANA, SAM):
            await h.say(who, "approve REQ-2")
        h.files.set_active(MARK, False)
        report = await h.app.service.sweep()
        assert report.failed == ["REQ-1"]  # its manager left: never skipped
        rec = await h.request(1)
        assert rec.state == "failed"
        failed = await h.events("request.failed")
        assert [(e["request_id"], e["data"]["rule"]) for e in failed] == [("REQ-1", "step 1: manager")]
        # REQ-2 waits on its second security approver: one counted, one still available
        assert (await h.request(2)).state == "pending"
        assert (await h.say(SASHA, "approve REQ-2")).ok
        assert (await h.request(2)).state == "active"
        # a reminder after 4 hours, an escalation after 24, each once
        h.files.set_active(MARK, True)
        assert (await h.say(ALICE, "request staging-admin for 1h")).ok
        h.clock.advance(hours=4, minutes=1)
        await h.app.service.sweep()
        h.clock.advance(hours=21)
        await h.app.service.sweep()
        await h.app.service.sweep()
        assert [e["request_id"] for e in await h.events("approval.reminded")] == ["REQ-3"]
        assert [e["request_id"] for e in await h.events("approval.escalated")] == ["REQ-3"]
        assert any(n.kind == "escalation" for n in h.notifier.to(SAM))


async def test_release_with_an_extension_pending_tells_its_approvers(sqlite_url, tmp_path):
    async with harness(sqlite_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 2h")
        await h.say(MARK, "approve REQ-1")
        assert (await h.say(BOB, "extend REQ-1 by 1h because more")).ok
        assert (await h.say(BOB, "release REQ-1")).ok
        [outcome] = h.notifier.to(MARK, "outcome")
        assert outcome.request_id == 1 and "released" in outcome.text
        assert outcome.view is not None and outcome.view.state == "released" and outcome.view.steps
        assert all(s.status != "open" for s in outcome.view.steps)


async def test_status_during_an_extension_shows_the_extensions_steps(sqlite_url, tmp_path):
    async with harness(sqlite_url, tmp_path) as h:
        await h.say(BOB, "request prod-db-read for 2h because INC-1 lag")
        for who in (MARK, DANA, SAM, SASHA):
            assert (await h.say(who, "approve REQ-1")).ok
        assert (await h.say(BOB, "extend REQ-1 by 1h because INC-1 still")).ok
        assert (await h.say(MARK, "approve REQ-1 go")).ok
        text = (await h.say(BOB, "status REQ-1")).text
        head, _, chain = text.partition("  chain")
        assert "extension requested: 1h" in head
        chain = chain.split("  events:")[0]
        assert chain.startswith(" of the extension by 1h:"), chain
        assert "1. manager [done]" in chain and "approved by mark.mgr@example.com" in chain
        assert "2. any_of dba [open]" in chain and "3. 2 of security [waiting]" in chain
        # the extension is denied: status shows the chain that granted the access, all done
        assert (await h.say(DEV, "deny REQ-1 because enough")).ok
        chain = (await h.say(BOB, "status REQ-1")).text.partition("  chain:")[2].split("  events:")[0]
        assert "[denied]" not in chain and "[open]" not in chain and "[waiting]" not in chain, chain
        assert "approved by sam.sec@example.com, sasha.sec@example.com" in chain
