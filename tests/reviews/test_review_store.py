"""The review tables and repository methods, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from handlers.reviews.records import (
    CampaignRecord,
    ItemRecord,
    ReviewDecisionRecord,
    ScheduleRecord,
    SnapshotRecord,
)
from store import review_schema
from store.db import alembic_config, make_sync_engine, upgrade
from store.repository import SqlStore

T = datetime(2026, 4, 7, 6, 0, tzinfo=UTC)


def campaign(**kw) -> CampaignRecord:  # type: ignore[no-untyped-def]
    base = dict(review="quarterly-privileged", title="Quarterly", started_at=T, due_at=T + timedelta(days=14),
                started_by="system", policy_version="1", policy_sha256="a" * 64, snapshot_sha256="b" * 64, items=2,
                scheduled_for=T)
    return CampaignRecord(**{**base, **kw})  # type: ignore[arg-type]


def item(campaign_id: int, number: int, user: str, reviewer: str) -> ItemRecord:
    return ItemRecord(campaign_id=campaign_id, number=number, user=user, profile="prod-db-read", provider="directory",
                      group="sg-prod-db-read", held_via="standing", reviewer=reviewer, reviewer_basis="manager",
                      recommendation="remove", recommendation_reason="no sign-in for 45 days", name=user,
                      title="Engineer", department="Engineering", last_sign_in=T - timedelta(days=45))


async def test_campaigns_items_decisions_snapshots_schedules(database_url):
    await asyncio.to_thread(upgrade, database_url)
    store = SqlStore(database_url)
    try:
        async with store.write() as repo:
            cid = await repo.add_campaign(campaign())
            await repo.add_items([item(cid, 1, "alice@example.com", "mark.mgr@example.com"),
                                  item(cid, 2, "bob@example.com", "group:security")])
            await repo.add_snapshot(SnapshotRecord(campaign_id=cid, review="quarterly-privileged", taken_at=T,
                                                   sha256="b" * 64, body='{"groups":[]}'))
            for decision, at in (("keep", T), ("remove", T + timedelta(hours=1))):
                await repo.add_review_decision(ReviewDecisionRecord(
                    campaign_id=cid, item=1, decision=decision, actor="mark.mgr@example.com", decided_at=at,
                    comment=f"{decision} it", recommendation="remove"))
            await repo.save_schedule(ScheduleRecord(review="quarterly-privileged", first_seen=T - timedelta(days=40)))
        async with store.read() as repo:
            got = await repo.get_campaign(cid)
            assert got is not None and got.ref == f"RV-{cid}" and got.scheduled_for == T and got.state == "open"
            assert got.due_at == T + timedelta(days=14) and got.due_at.tzinfo is not None
            items = await repo.items(cid)
            assert [(i.number, i.user, i.reviewer) for i in items] == [
                (1, "alice@example.com", "mark.mgr@example.com"), (2, "bob@example.com", "group:security")]
            assert items[0].last_sign_in == T - timedelta(days=45) and items[0].active is True
            assert [i.number for i in await repo.items(cid, reviewer="group:security")] == [2]
            final = await repo.final_decisions(cid)
            assert list(final) == [1] and final[1].decision == "remove" and final[1].comment == "remove it"
            assert len(await repo.review_decisions(cid)) == 2  # every decision is kept; the last one counts
            snap = await repo.snapshot(cid)
            assert snap is not None and snap.sha256 == "b" * 64 and snap.body == '{"groups":[]}'
            assert (await repo.campaign_for_schedule("quarterly-privileged", T)).id == cid  # type: ignore[union-attr]
            assert await repo.campaign_for_schedule("quarterly-privileged", T + timedelta(days=91)) is None
            schedule = await repo.get_schedule("quarterly-privileged")
            assert schedule is not None and schedule.first_seen == T - timedelta(days=40) and schedule.attempts == 0
        async with store.write() as repo:
            got.state, got.closed_at, got.signoff = "closed", T + timedelta(days=14), "approved"
            await repo.save_campaign(got)
            items[1].state, items[1].outcome, items[1].removed_at = "removed", "done", T + timedelta(days=14)
            await repo.save_item(items[1])
            schedule.done_for, schedule.attempts = T, 1
            await repo.save_schedule(schedule)
        async with store.read() as repo:
            assert [c.state for c in await repo.campaigns(review="quarterly-privileged")] == ["closed"]
            assert await repo.campaigns(states=("open",)) == []
            assert (await repo.items(cid))[1].outcome == "done"
            assert (await repo.get_schedule("quarterly-privileged")).done_for == T  # type: ignore[union-attr]
        # one campaign per scheduled instant, whatever races to insert a second
        with pytest.raises(IntegrityError):
            async with store.write() as repo:
                await repo.add_campaign(campaign())
        async with store.write() as repo:  # started by hand: any number of them
            await repo.add_campaign(campaign(scheduled_for=None))
            await repo.add_campaign(campaign(scheduled_for=None))
        async with store.read() as repo:
            assert len(await repo.campaigns()) == 3
    finally:
        await store.close()


def test_the_migration_creates_the_tables_as_declared_and_goes_back(database_url):
    upgrade(database_url)
    engine = make_sync_engine(database_url)
    try:
        found = inspect(engine)
        for table in (review_schema.review_campaigns, review_schema.review_items, review_schema.review_decisions,
                      review_schema.review_snapshots, review_schema.review_schedules):
            columns = {c["name"]: c for c in found.get_columns(table.name)}
            assert set(columns) == {c.name for c in table.columns}, table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        from alembic import command

        command.downgrade(alembic_config(database_url), "0001")
        assert "review_campaigns" not in inspect(engine).get_table_names()
        upgrade(database_url)
        assert "review_items" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_migrations_0012_and_0013_go_down_and_up_again(database_url: str) -> None:
    """The escalated items (0012) and the people each sign-off step asked (0013): two nullable columns, removed
    by the downgrades and added again by the upgrade, one revision at a time, on both backends."""
    from alembic import command
    from sqlalchemy import inspect

    from store.db import alembic_config, make_sync_engine, upgrade

    def columns() -> tuple[set[str], set[str]]:
        engine = make_sync_engine(database_url)
        try:
            found = inspect(engine)
            return ({c["name"] for c in found.get_columns("review_batches")},
                    {c["name"] for c in found.get_columns("review_campaigns")})
        finally:
            engine.dispose()

    upgrade(database_url)
    batches, campaigns = columns()
    assert "escalated_items" in batches and "signoff_asked" in campaigns
    command.downgrade(alembic_config(database_url), "0012_review_escalated_items")
    batches, campaigns = columns()
    assert "escalated_items" in batches and "signoff_asked" not in campaigns
    command.downgrade(alembic_config(database_url), "0011_sqlite_audit_no_replace")
    batches, campaigns = columns()
    assert "escalated_items" not in batches and "signoff_asked" not in campaigns
    upgrade(database_url, "0012_review_escalated_items")
    batches, campaigns = columns()
    assert "escalated_items" in batches and "signoff_asked" not in campaigns
    upgrade(database_url)
    batches, campaigns = columns()
    assert "escalated_items" in batches and "signoff_asked" in campaigns
