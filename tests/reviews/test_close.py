"""Campaign timers and close (SPEC §7) through the sweep: reminders, escalation to the reviewer's manager
who may then decide, close at duration with defaults, the sign-off chain, removals through the
provisioning intents (membership.removed / grant.revoked reason review), a denied sign-off, a sign-off
nobody can complete any more (it fails closed), review close RV-n, and kept standing memberships that are
no longer drift; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.reviews.test_decisions import started
from tests.reviews.test_start import REVIEW, staff
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples, harness


def at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 8, 0, tzinfo=UTC)


async def test_reminders_escalation_defaults_signoff_and_removals(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        n = {u.split("@")[0]: i.number for u, i in items.items()}
        assert (await h.say("mark.mgr@example.com", f"keep RV-1 {n['alice']}")).ok
        assert (await h.say("sam.sec@example.com", f"keep RV-1 {n['orphan']} {n['pat.lead']}")).ok
        assert (await h.say("pat.lead@example.com", f"keep RV-1 {n['deploy-bot']}")).ok

        h.clock.at = at(25)  # 2 business days: nothing yet
        report = await h.app.service.sweep()
        assert report.reviews_reminded == [] and report.reviews_escalated == []
        h.clock.at = at(26)  # 3bd after Monday 23rd: the two batches with undecided items are reminded
        report = await h.app.service.sweep()
        assert sorted(report.reviews_reminded) == ["RV-1 mark.mgr@example.com", "RV-1 pat.lead@example.com"]
        again = await h.app.service.sweep()
        assert again.reviews_reminded == []  # once per remind_after
        reminded = await h.events("review.reminded")
        assert {(e["data"]["reviewer"], tuple(e["data"]["items"])) for e in reminded} == {
            ("mark.mgr@example.com", (n["bob"],)), ("pat.lead@example.com", (n["sam.sec"],))}
        assert any("Reminder: RV-1" in t for t in (x.text for x in h.notifier.to("mark.mgr@example.com")))

        h.clock.at = at(30)  # 5bd: escalation to the reviewer's manager (pat.lead has none: security)
        report = await h.app.service.sweep()
        escalated = {e["data"]["reviewer"]: e["data"] for e in await h.events("review.escalated")}
        assert escalated["mark.mgr@example.com"]["to"] == "pat.lead@example.com"
        assert escalated["pat.lead@example.com"]["to"] == "group:security"
        assert escalated["mark.mgr@example.com"]["items"] == [n["bob"]]
        # the manager may now decide the escalated item; the security team may decide pat.lead's
        reply = await h.say("pat.lead@example.com", f"remove RV-1 {n['bob']} because no sign-in since January")
        assert reply.ok, reply.text
        reply = await h.say("carol@example.com", f"keep RV-1 {n['sam.sec']}")
        assert not reply.ok

        h.clock.at = at(7, 12)  # duration 10bd: close; sam.sec's item defaults to remove; sign-off asked
        report = await h.app.service.sweep()
        assert report.reviews_closed == ["RV-1 waits for sign-off of 2 removal(s)"], report.lines()
        system = [e for e in await h.events("review.decided") if e["actor"] == "system"]
        assert [(e["data"]["item"], e["data"]["decision"]) for e in system] == [(n["sam.sec"], "remove")]
        assert await h.members("sg-prod-db-read") == sorted(await h.members("sg-prod-db-read"))
        assert "bob@example.com" in await h.members("sg-prod-db-read")  # nothing removed before sign-off
        reply = await h.say("mark.mgr@example.com", f"keep RV-1 {n['alice']}")
        assert not reply.ok and reply.rule == "closed"
        reply = await h.say("carol@example.com", "approve RV-1")
        assert not reply.ok and reply.rule == "not-approver"
        reply = await h.say("sasha.sec@example.com", "approve RV-1")
        assert reply.ok and "removed 2" in reply.text and "failed 0" in reply.text, reply.text
        assert "bob@example.com" not in await h.members("sg-prod-db-read")
        assert "sam.sec@example.com" not in await h.members("sg-prod-k8s-admin")
        removed = await h.events("membership.removed")
        assert sorted((e["data"]["user"], e["data"]["reason"]) for e in removed) == [
            ("bob@example.com", "review"), ("sam.sec@example.com", "review")]
        (closed,) = await h.events("review.closed")
        assert {k: closed["data"][k] for k in ("review_id", "kept", "removed", "defaulted", "gone", "failed")} == {
            "review_id": "RV-1", "kept": 4, "removed": 2, "defaulted": 1, "gone": 0, "failed": 0}
        reply = await h.say("sam.sec@example.com", "approve RV-1")
        assert not reply.ok  # closed: nothing more to sign
        # kept standing memberships are no longer drift
        async with h.app.store.read() as repo:
            kept = await repo.kept_memberships()
            assert await repo.latest_closed_item_state("directory", "sg-prod-db-read", "orphan@example.com") == "kept"
        assert ("directory", "sg-prod-db-read", "orphan@example.com") in kept
        report = await h.app.service.sweep()
        assert not any("orphan@example.com" in d for d in report.drift), report.drift
        assert report.reviews_closed == []


async def test_security_closes_now_grant_revoked_by_review_and_denied_signoff(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice = items["alice@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {alice} because not on call any more")).ok
        reply = await h.say("mark.mgr@example.com", "review close RV-1")
        assert not reply.ok and reply.rule == "security-only"
        reply = await h.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok and "sign-off of 6 removal(s)" in reply.text, reply.text  # if_not_reviewed: remove
        reply = await h.say("sam.sec@example.com", "deny RV-1 because the defaults were not meant")
        assert not reply.ok and reply.rule == "self-approval"  # sam's own membership is on the list
        reply = await h.say("sasha.sec@example.com", "deny RV-1")
        assert not reply.ok and reply.rule == "reason"
        reply = await h.say("sasha.sec@example.com", "deny RV-1 because the defaults were not meant")
        assert reply.ok and "nothing is removed" in reply.text, reply.text
        (closed,) = await h.events("review.closed")
        assert closed["data"]["signoff"] == "denied" and closed["data"]["removed"] == 6
        assert (await h.request(1)).state == "active"
        assert "bob@example.com" in await h.members("sg-prod-db-read")
        assert await h.events("membership.removed") == []


async def test_an_approved_removal_ends_the_grant_with_reason_review(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice = items["alice@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {alice} because not on call any more")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 1 2")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all because needed")).ok
        assert (await h.say("mark.mgr@example.com", "keep RV-1 4")).ok
        reply = await h.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok and "sign-off of 1 removal(s)" in reply.text, reply.text
        reply = await h.say("sasha.sec@example.com", "approve RV-1")
        assert reply.ok and "removed 1" in reply.text, reply.text
        (revoked,) = await h.events("grant.revoked")
        assert revoked["data"]["reason"] == "review" and revoked["data"]["review_id"] == "RV-1"
        assert (await h.request(1)).state == "revoked"
        assert "alice@example.com" not in await h.members("sg-prod-db-read")


async def test_two_replicas_close_once_and_remove_each_item_once(pg_url, tmp_path):
    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text().replace("    sign_off: [{any_of: security}]", ""))
    staff(files)
    settings = Settings(database_url=pg_url, policy=str(files.policy), directory=str(files.directory))
    clock = MutableClock()
    async with build_app(settings, clock=clock) as app:
        sam = await app.service.identify("sam.sec@example.com")
        assert sam is not None
        assert (await app.service.handle_text(sam, f"review start {REVIEW}")).ok
    clock.at = at(7, 12)
    async with build_app(settings, clock=clock) as one, build_app(settings, clock=clock) as two:
        reports = await asyncio.gather(*(a.service.sweep() for a in (one, two, one, two)))
    assert sum(len(r.reviews_closed) for r in reports) == 1
    async with build_app(settings, clock=clock) as app:
        events = [e async for e in app.store.audit_events()]
        members = await app.deps.providers["directory"].list_members("sg-prod-db-read")
    assert len([e for e in events if e.type == "review.closed"]) == 1
    removed = sorted(e.data["user"] for e in events if e.type == "membership.removed")
    assert removed == sorted(["bob@example.com", "deploy-bot@example.com", "orphan@example.com",
                              "pat.lead@example.com", "sam.sec@example.com"])  # every item defaulted to remove
    assert members == []


async def test_undo_needs_a_second_security_member_and_re_adds(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice, bob = items["alice@example.com"].number, items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {alice} because not on call any more")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 1 2")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all because needed")).ok
        assert (await h.say("mark.mgr@example.com", f"keep RV-1 {bob}")).ok
        assert (await h.say("sam.sec@example.com", "review close RV-1")).ok
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok
        assert "alice@example.com" not in await h.members("sg-prod-db-read")
        reply = await h.say("mark.mgr@example.com", f"review undo RV-1 {alice} because mistaken")
        assert not reply.ok and reply.rule == "security-only"
        reply = await h.say("sam.sec@example.com", f"review undo RV-1 {bob} because kept anyway")
        assert not reply.ok and reply.rule == "not-removed"
        reply = await h.say("sam.sec@example.com", f"review undo RV-1 {alice}")
        assert (not reply.ok and reply.rule == "syntax") or reply.rule == "reason", reply.text
        reply = await h.say("sam.sec@example.com", f"review undo RV-1 {alice} because she is on call again")
        assert reply.ok, reply.text
        reply = await h.say("sam.sec@example.com", f"approve RV-1 {alice}")
        assert not reply.ok and reply.rule == "second-approver"
        assert "alice@example.com" not in await h.members("sg-prod-db-read")
        reply = await h.say("sasha.sec@example.com", f"approve RV-1 {alice}")
        assert reply.ok, reply.text
        assert "alice@example.com" in await h.members("sg-prod-db-read")
        (added,) = await h.events("membership.added")
        assert (added["data"]["user"], added["data"]["reason"]) == ("alice@example.com", "review undo")
        (undone,) = await h.events("review.undone")
        assert (undone["actor"], undone["data"]["requested_by"]) == ("sasha.sec@example.com", "sam.sec@example.com")
        assert len(await h.events("review.undo_requested")) == 1
        reply = await h.say("sasha.sec@example.com", f"approve RV-1 {alice}")
        assert not reply.ok and reply.rule == "not-pending"


async def test_a_member_an_undo_added_back_is_no_drift(database_url, tmp_path):
    """The review stands behind a membership it restored on two security members' word (SPEC §3.6: drift is a
    member with no grant and no review behind them), as behind one it kept: the next sweep leaves it alone."""
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number  # a standing member, reviewed by mark.mgr
        assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left the team")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        assert (await h.say("sam.sec@example.com", "review close RV-1")).ok
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok
        assert "bob@example.com" not in await h.members("sg-prod-db-read")
        assert (await h.say("sam.sec@example.com", f"review undo RV-1 {bob} because he is back on the team")).ok
        assert (await h.say("sasha.sec@example.com", f"approve RV-1 {bob}")).ok
        assert "bob@example.com" in await h.members("sg-prod-db-read")
        h.clock.at = h.clock.at + timedelta(hours=1)
        report = await h.app.service.sweep()
        assert not any("bob@example.com" in d for d in report.drift), report.drift
        assert [e for e in await h.events("drift.detected") if e["data"]["user"] == "bob@example.com"] == []
        assert "bob@example.com" in await h.members("sg-prod-db-read")


async def test_an_escalation_hands_over_the_undecided_items_only(database_url, tmp_path):
    """The reviewer's manager "may then decide those items too" (SPEC §7): the ones listed in
    ``review.escalated``, undecided then, not those the reviewer had decided, whose decisions stand."""
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice, bob = items["alice@example.com"].number, items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"keep RV-1 {alice} because on call")).ok
        h.clock.at = at(30)  # 5bd: mark's batch escalates to his manager, pat.lead
        await h.app.service.sweep()
        (esc,) = [e for e in await h.events("review.escalated") if e["data"]["reviewer"] == "mark.mgr@example.com"]
        assert esc["data"]["to"] == "pat.lead@example.com" and esc["data"]["items"] == [bob]

        reply = await h.say("pat.lead@example.com", f"remove RV-1 {alice} because I say so")
        assert not reply.ok and reply.rule == "not-your-item", reply.text
        reply = await h.say("pat.lead@example.com", "review RV-1")
        assert reply.ok and "bob@example.com" in reply.text and "alice@example.com" not in reply.text, reply.text
        assert (await h.say("pat.lead@example.com", f"keep RV-1 {bob} because still needed")).ok
        async with h.app.store.read() as repo:
            final = await repo.final_decisions(1)
        assert (final[alice].decision, final[alice].actor) == ("keep", "mark.mgr@example.com")
        assert (final[bob].decision, final[bob].actor) == ("keep", "pat.lead@example.com")


@asynccontextmanager
async def sign_off_harness(database_url: str, tmp_path: Path, chain: str) -> AsyncIterator[Harness]:
    """The example policy with the review's sign_off replaced by ``chain``, and its campaign RV-1 started."""
    files = copy_examples(tmp_path)
    text = files.policy.read_text()
    assert "sign_off: [{any_of: security}]" in text
    files.policy.write_text(text.replace("sign_off: [{any_of: security}]", f"sign_off: {chain}"))
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    clock, notifier = MutableClock(), RecordingNotifier()
    async with build_app(settings, clock=clock, notifier=notifier) as app:
        h = Harness(app, clock, notifier, files)
        items = await started(h)
        bob = items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left the team")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        yield h


async def assert_failed_closed(h: Harness, rule: str) -> None:
    """RV-1 closed with its sign-off failed: nothing removed, the rule recorded, the security team told."""
    async with h.app.store.read() as repo:
        campaign = await repo.get_campaign(1)
        items = await repo.items(1)
    assert (campaign.state, campaign.signoff) == ("closed", "failed")
    assert [(i.user, i.state) for i in items if i.state not in ("kept",)] == [("bob@example.com", "not removed")]
    (closed,) = await h.events("review.closed")
    assert closed["data"]["signoff"] == "failed" and closed["data"]["rule"] == rule, closed["data"]
    assert "bob@example.com" in await h.members("sg-prod-db-read")
    assert await h.events("membership.removed") == []
    for member in ("sam.sec@example.com", "sasha.sec@example.com"):
        told = [n.text for n in h.notifier.to(member, "failure")]
        assert any("RV-1" in t and "sign-off failed" in t and rule in t for t in told), told
    reply = await h.say("sam.sec@example.com", "review close RV-1")
    assert not reply.ok and "closed" in reply.text
    reply = await h.say("sam.sec@example.com", "approve RV-1")
    assert not reply.ok and reply.rule == "not-pending"


async def test_an_all_of_signoff_a_member_left_fails_closed_at_the_next_signature(database_url, tmp_path):
    """SPEC §2.1/§7: a sign-off step that cannot be satisfied fails closed, never waits for ever. Sasha
    left after the list was asked for, so "all of security" can no longer be met: Sam's signature is
    recorded and the campaign closes with its sign-off failed instead of waiting for Sasha."""
    async with sign_off_harness(database_url, tmp_path, "[{all_of: security}]") as h:
        reply = await h.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok and "waits for sign-off of 1 removal(s)" in reply.text, reply.text
        h.files.set_active("sasha.sec@example.com", False)
        reply = await h.say("sam.sec@example.com", "approve RV-1")
        assert reply.ok and "can no longer be completed at step 1: all_of security" in reply.text, reply.text
        assert "nothing is removed" in reply.text
        assert [e["data"]["decision"] for e in await h.events("review.signoff")] == ["approved"]
        await assert_failed_closed(h, "step 1: all_of security")


async def test_a_signoff_waiting_on_someone_who_left_fails_closed_at_the_sweep(database_url, tmp_path):
    """The sweep finds a campaign whose next sign-off step nobody may complete any more (the one user it
    names left the directory after the policy was checked) and fails it closed rather than wait for ever."""
    async with sign_off_harness(database_url, tmp_path, "[{any_of: security}, {user: dana.dba@example.com}]") as h:
        assert (await h.say("sam.sec@example.com", "review close RV-1")).ok
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok  # step 1; step 2 is dana's
        report = await h.app.service.sweep()
        assert report.reviews_closed == []  # dana may still sign: it waits
        h.files.set_active("dana.dba@example.com", False)
        report = await h.app.service.sweep()
        assert report.reviews_closed == [
            "RV-1 closed: sign-off failed, it can no longer be completed (step 2: user dana.dba@example.com); "
            "nothing is removed"], report.lines()
        await assert_failed_closed(h, "step 2: user dana.dba@example.com")
        assert (await h.app.service.sweep()).reviews_closed == []  # once


async def test_a_signoff_nobody_can_complete_fails_closed_at_the_close(database_url, tmp_path):
    """Nobody is asked for a sign-off that cannot be completed: the close fails it closed at once."""
    async with sign_off_harness(database_url, tmp_path, "[{user: dana.dba@example.com}]") as h:
        h.files.set_active("dana.dba@example.com", False)
        reply = await h.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok and "sign-off failed" in reply.text and "nothing is removed" in reply.text, reply.text
        assert await h.events("review.signoff_requested") == []
        assert h.notifier.to("dana.dba@example.com", "approval") == []
        await assert_failed_closed(h, "step 1: user dana.dba@example.com")


async def test_a_campaign_runs_to_its_end_under_the_policy_it_started_under(database_url, tmp_path):
    """As a request is judged by the version it was asked under: a policy edited mid-campaign (here: no
    sign-off, and undecided items kept) changes the campaigns started after it, not this one, whose default
    still removes and whose removals still wait for the security team's sign-off."""
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice = items["alice@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"keep RV-1 {alice}")).ok
        text = h.files.policy.read_text()
        assert "sign_off: [{any_of: security}]" in text and "if_not_reviewed: remove" in text
        h.files.policy.write_text(text.replace('version: "2026.11"', 'version: "2026.12"')
                                  .replace("    sign_off: [{any_of: security}]", "    # sign_off: none")
                                  .replace("if_not_reviewed: remove", "if_not_reviewed: keep"))
        from handlers.policy import load_policy

        h.app.deps.policy = load_policy(h.files.policy)  # as a restart with the new file loads it
        await h.app.service.start()
        assert [e["data"]["version"] for e in await h.events("policy.loaded")] == ["2026.11", "2026.12"]
        assert h.app.deps.policy.review("quarterly-privileged").if_not_reviewed == "keep"
        # closed at its due time by the sweep (an early close by a security member would make them a decider of
        # the defaulted removals, and sam.sec's own access is on the list: nobody would be left to sign)
        h.clock.at = at(7, 12)
        report = await h.app.service.sweep()
        assert any("waits for sign-off" in line for line in report.reviews_closed), report.lines()
        defaulted = [e for e in await h.events("review.decided") if e["actor"] == "system"]
        assert defaulted and {e["data"]["decision"] for e in defaulted} == {"remove"}
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok
        (closed,) = await h.events("review.closed")
        assert closed["data"]["signoff"] == "approved"


async def test_the_manager_an_escalation_reached_is_recorded_opening_the_batch_once(database_url, tmp_path):
    """Whoever decides the escalated items is seen opening them, as the reviewer is: ``review.opened``
    {reviewer: the manager, batch: the reviewer's, escalated: true}, the first time only."""
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", "review RV-1")).ok
        h.clock.at = at(30)  # 5bd: mark's batch escalates to his manager, pat.lead
        await h.app.service.sweep()
        before = len(await h.events("review.opened"))
        for _ in range(2):
            reply = await h.say("pat.lead@example.com", "review RV-1")
            assert reply.ok and "bob@example.com" in reply.text, reply.text
        opened = [(e["actor"], e["data"]["batch"], e["data"].get("escalated"))
                  for e in (await h.events("review.opened"))[before:]]
        assert opened == [("pat.lead@example.com", "mark.mgr@example.com", True),
                          ("pat.lead@example.com", "pat.lead@example.com", None)] or opened == [
            ("pat.lead@example.com", "pat.lead@example.com", None),
            ("pat.lead@example.com", "mark.mgr@example.com", True)], opened  # and pat's own batch, once
        assert (await h.say("pat.lead@example.com", f"keep RV-1 {bob} because still needed")).ok
