"""Starting campaigns (SPEC §7): by the security team, from the CLI and on schedule; snapshot, items,
reviewers, refusals and failed starts; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import pytest

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.context import FixedClock
from tests.support import MutableClock, cli, copy_examples, harness

REVIEW = "quarterly-privileged"


def staff(files) -> None:  # type: ignore[no-untyped-def]
    """Standing members of sg-prod-db-read: bob (no sign-in for months), a service account, and two
    people whose manager cannot review them (gone, and nobody)."""
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] == "bob@example.com":
                u["last_sign_in"] = "2026-01-02T09:00:00Z"
            if u["email"] == "alice@example.com":
                u["last_sign_in"] = "2026-11-20T09:00:00Z"
        data["users"] += [
            {"email": "deploy-bot@example.com", "name": "Deploy bot", "kind": "service",
             "owner": "pat.lead@example.com", "manager": "mark.mgr@example.com"},
            {"email": "orphan@example.com", "name": "Orphan", "department": "Engineering",
             "manager": "gone@example.com"},
            {"email": "gone@example.com", "name": "Gone", "active": False},
        ]
        data["groups"]["sg-prod-db-read"] = ["bob@example.com", "deploy-bot@example.com", "orphan@example.com",
                                             "pat.lead@example.com"]
        data["groups"]["sg-prod-k8s-admin"] = ["sam.sec@example.com"]
    files.edit_directory(change)


async def test_security_starts_a_campaign_with_reviewers_and_recommendations(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        staff(h.files)
        reply = await h.say("alice@example.com", "request prod-db-read for 30m because INC-7 page")  # on call: REQ-1
        assert reply.ok and reply.request.state == "active", reply.text
        reply = await h.say("sam.sec@example.com", f"review start {REVIEW}")
        assert reply.ok and reply.text.startswith("Started RV-1 (Quarterly privileged access review): 6 item(s)"), \
            reply.text
        (started,) = await h.events("review.started")
        assert started["actor"] == "sam.sec@example.com"
        assert {k: started["data"][k] for k in ("review_id", "review", "items")} == {
            "review_id": "RV-1", "review": REVIEW, "items": 6}
        async with h.app.store.read() as repo:
            items = {i.user: i for i in await repo.items(1)}
            snapshot = await repo.snapshot(1)
            campaign = await repo.get_campaign(1)
        assert snapshot is not None and campaign is not None
        assert hashlib.sha256(snapshot.body.encode()).hexdigest() == snapshot.sha256 == \
            started["data"]["snapshot_sha256"] == campaign.snapshot_sha256
        # 10 business days from Monday 23 November 2026, 08:00 UTC = 09:00 in Berlin
        assert campaign.due_at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
        assert (items["alice@example.com"].held_via, items["alice@example.com"].reviewer) == (
            "REQ-1", "mark.mgr@example.com")
        assert items["alice@example.com"].recommendation == "keep"
        bob = items["bob@example.com"]
        assert (bob.held_via, bob.reviewer, bob.recommendation) == ("standing", "mark.mgr@example.com", "remove")
        assert bob.recommendation_reason.startswith("no sign-in for 32")
        robot = items["deploy-bot@example.com"]  # a service account: its owner, never the manager
        assert (robot.kind, robot.reviewer, robot.reviewer_basis) == ("service", "pat.lead@example.com",
                                                                       "service owner")
        orphan = items["orphan@example.com"]  # manager inactive: the fallback
        assert orphan.reviewer == "group:security" and "inactive" in orphan.reviewer_basis
        assert items["pat.lead@example.com"].reviewer == "group:security"  # no manager
        assert items["sam.sec@example.com"].reviewer == "pat.lead@example.com"
        # items are numbered 1..k grouped by reviewer
        numbers = sorted(items.values(), key=lambda i: i.number)
        assert [i.number for i in numbers] == [1, 2, 3, 4, 5, 6]
        assert [i.reviewer for i in numbers] == sorted(i.reviewer for i in numbers)
        # the reviewers are told, once each, about their own batch
        assert len(h.notifier.to("mark.mgr@example.com")) == 1
        assert "RV-1" in h.notifier.to("pat.lead@example.com")[0].text
        assert h.notifier.to("sam.sec@example.com") and h.notifier.to("sasha.sec@example.com")

        mine = await h.say("mark.mgr@example.com", "review RV-1")
        assert mine.ok and "2 item(s) for you" in mine.text and "bob@example.com" in mine.text
        assert "orphan@example.com" not in mine.text
        everything = await h.say("sam.sec@example.com", "review RV-1")
        assert "6 item(s)" in everything.text
        listed = await h.say("mark.mgr@example.com", "reviews")
        assert "RV-1 Quarterly privileged access review: 2 item(s) for you" in listed.text
        refused = await h.say("frank@example.com", "review RV-1")
        unknown = await h.say("frank@example.com", "review RV-99")
        assert not refused.ok and refused.text.replace("RV-1", "RV-x") == unknown.text.replace("RV-99", "RV-x")


async def test_only_the_security_team_starts_and_an_invalid_snapshot_starts_nothing(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        reply = await h.say("mark.mgr@example.com", f"review start {REVIEW}")
        assert not reply.ok and reply.rule == "security-only"
        (refused,) = await h.events("command.refused")
        assert (refused["data"]["command"], refused["data"]["reason"]) == ("review start", "not in the security team")
        unknown = await h.say("sam.sec@example.com", "review start quarterly-privilegd")
        assert not unknown.ok and f"Did you mean `{REVIEW}`" in unknown.text

        h.files.add_to_group("sg-prod-db-read", "ghost@example.com")  # not a user of the directory
        reply = await h.say("sam.sec@example.com", f"review start {REVIEW}")
        assert not reply.ok and "ghost@example.com is in directory/sg-prod-db-read but unknown" in reply.text
        (failed,) = await h.events("review.failed")
        assert failed["data"]["review"] == REVIEW and "ghost@example.com" in failed["data"]["reason"]
        assert failed["data"]["review_id"] is None
        assert await h.events("review.started") == []
        assert "did not start" in h.notifier.to("sasha.sec@example.com", "failure")[0].text
        async with h.app.store.read() as repo:
            assert await repo.campaigns() == []


def scheduled(files) -> None:  # type: ignore[no-untyped-def]
    files.policy.write_text(files.policy.read_text().replace("      # quarterly: first_business_day",
                                                             "      quarterly: first_monday"))
    files.add_to_group("sg-prod-db-read", "bob@example.com")


async def test_scheduled_start_on_easter_tuesday_once_and_only_the_latest_missed(database_url, tmp_path):
    files = copy_examples(tmp_path)
    scheduled(files)
    clock = MutableClock(datetime(2026, 3, 1, tzinfo=UTC))  # the policy with the review is loaded on 1 March
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=clock) as app:
        clock.at = datetime(2026, 4, 7, 5, 59, tzinfo=UTC)  # Easter Monday moved Q2's first Monday to Tuesday
        assert (await app.service.sweep()).reviews_started == []
        clock.at = datetime(2026, 4, 7, 6, 0, tzinfo=UTC)  # 08:00 in Berlin
        report = await app.service.sweep()
        assert report.reviews_started == [f"RV-1 {REVIEW} (1 items)"], report.lines()
        assert (await app.service.sweep()).reviews_started == []
        clock.at = datetime(2026, 12, 31, tzinfo=UTC)  # down since April: Q3 and Q4 missed, only Q4 starts
        assert (await app.service.sweep()).reviews_started == [f"RV-2 {REVIEW} (1 items)"]
        assert (await app.service.sweep()).reviews_started == []
        async with app.store.read() as repo:
            campaigns = await repo.campaigns()
        assert [c.scheduled_for for c in campaigns] == [datetime(2026, 4, 7, 6, 0, tzinfo=UTC),
                                                        datetime(2026, 10, 5, 6, 0, tzinfo=UTC)]
        assert {c.started_by for c in campaigns} == {"system"}
        # a manual start is extra: it neither replaces nor blocks the scheduled one
        person = await app.service.identify("sam.sec@example.com")
        assert (await app.service.handle_text(person, f"review start {REVIEW}")).ok
        clock.at = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)
        assert (await app.service.sweep()).reviews_started == [f"RV-4 {REVIEW} (1 items)"]


async def test_a_review_added_mid_quarter_waits_for_the_next_quarter(database_url, tmp_path):
    files = copy_examples(tmp_path)
    scheduled(files)
    clock = MutableClock(datetime(2026, 4, 10, tzinfo=UTC))
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=clock) as app:
        clock.at = datetime(2026, 6, 30, tzinfo=UTC)
        assert (await app.service.sweep()).reviews_started == []
        clock.at = datetime(2026, 7, 6, 6, 0, tzinfo=UTC)
        assert (await app.service.sweep()).reviews_started == [f"RV-1 {REVIEW} (1 items)"]


async def test_a_sweep_dated_back_before_the_review_was_added_does_not_date_the_review_back(database_url, tmp_path):
    """The review is added on 10 April, mid-quarter. A first sweep judged `--as-of` 1 March (before it was in
    force) must not record it as in force since March: the real sweep after it would start Q2's campaign (due
    7 April), the quarter already under way when the review was added (SPEC §7)."""
    files = copy_examples(tmp_path)
    scheduled(files)
    clock = MutableClock(datetime(2026, 4, 10, tzinfo=UTC))
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=clock, as_of=FixedClock(datetime(2026, 3, 1, tzinfo=UTC))) as app:
        assert (await app.service.sweep()).reviews_started == []
    clock.at = datetime(2026, 4, 20, tzinfo=UTC)
    async with build_app(settings, clock=clock) as app:
        assert (await app.service.sweep()).reviews_started == []
        clock.at = datetime(2026, 7, 6, 6, 0, tzinfo=UTC)
        assert (await app.service.sweep()).reviews_started == [f"RV-1 {REVIEW} (1 items)"]


async def test_a_failed_scheduled_start_is_retried_after_a_backoff(database_url, tmp_path):
    files = copy_examples(tmp_path)
    scheduled(files)
    files.add_to_group("sg-prod-db-read", "ghost@example.com")
    clock = MutableClock(datetime(2026, 3, 1, tzinfo=UTC))
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=clock) as app:
        clock.at = datetime(2026, 4, 7, 6, 0, tzinfo=UTC)
        report = await app.service.sweep()
        assert report.reviews_started == [] and any("ghost@example.com" in f for f in report.failed)
        clock.advance(minutes=5)
        assert not any("review" in f for f in (await app.service.sweep()).failed)  # waits for its retry
        files.edit_directory(lambda d: d["groups"]["sg-prod-db-read"].remove("ghost@example.com"))
        clock.advance(minutes=11)
        assert (await app.service.sweep()).reviews_started == [f"RV-1 {REVIEW} (1 items)"]
        events = [e async for e in app.store.audit_events() if e.type.startswith("review.")]
        assert [e.type for e in events] == ["review.failed", "review.started"]
        assert events[1].data["scheduled_for"] == "2026-04-07T06:00:00.000Z"


@pytest.mark.postgres
async def test_two_replicas_start_a_scheduled_campaign_exactly_once(pg_url, tmp_path):
    files = copy_examples(tmp_path)
    scheduled(files)
    settings = Settings(database_url=pg_url, policy=str(files.policy), directory=str(files.directory))
    early = MutableClock(datetime(2026, 3, 1, tzinfo=UTC))
    async with build_app(settings, clock=early):
        pass
    due = MutableClock(datetime(2026, 4, 7, 6, 0, 30, tzinfo=UTC))
    async with build_app(settings, clock=due) as one, build_app(settings, clock=due) as two:
        reports = await asyncio.gather(*(app.service.sweep() for app in (one, two, one, two)))
    assert sum(len(r.reviews_started) for r in reports) == 1
    async with build_app(settings, clock=due) as app:
        started = [e async for e in app.store.audit_events() if e.type == "review.started"]
        async with app.store.read() as repo:
            assert len(await repo.campaigns()) == 1
    assert len(started) == 1


def test_the_cli_starts_a_campaign_now_or_as_of(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    files.add_to_group("sg-prod-db-read", "bob@example.com")
    done = cli("review", "start", REVIEW, "--as-of", "2026-04-01T06:00:00Z", db=sqlite_url, files=files)
    assert done.returncode == 0, done.stderr
    # 10 business days, Good Friday and Easter Monday skipped
    assert done.stdout.startswith(f"started RV-1 {REVIEW}: 1 items for 1 reviewers, closes 2026-04-17T06:00:00")
    missing = cli("review", "start", "nope", db=sqlite_url, files=files)
    assert missing.returncode == 1 and "there is no review 'nope'" in missing.stderr
    files.add_to_group("sg-prod-db-read", "ghost@example.com")
    failed = cli("review", "start", REVIEW, db=sqlite_url, files=files)
    assert failed.returncode == 1 and "did not start: snapshot invalid: ghost@example.com" in failed.stderr
    assert "Traceback" not in failed.stderr


