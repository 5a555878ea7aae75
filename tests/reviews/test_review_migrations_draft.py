"""A database migrated by an unreleased draft of 0012 that also added review_campaigns.signoff_asked reaches
head: 0013 adds the column only where it is missing, and the campaigns and their asked people are intact."""

from __future__ import annotations

from sqlalchemy import inspect, text


def test_a_database_migrated_by_the_edited_0012_reaches_head(database_url: str) -> None:
    from alembic import command

    from store.db import alembic_config, head_revision, make_sync_engine, upgrade

    upgrade(database_url, "0011_sqlite_audit_no_replace")
    engine = make_sync_engine(database_url)
    try:
        with engine.begin() as conn:  # 0012 as shipped by ac21ac6 / 74f3b2f: both columns
            conn.execute(text("ALTER TABLE review_batches ADD COLUMN escalated_items TEXT"))
            conn.execute(text("ALTER TABLE review_campaigns ADD COLUMN signoff_asked TEXT"))
        command.stamp(alembic_config(database_url), "0012_review_escalated_items")

        upgrade(database_url)  # what every start does (build_app(migrate=True))
        campaigns = {c["name"] for c in inspect(engine).get_columns("review_campaigns")}
        assert "signoff_asked" in campaigns
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == head_revision(), version
    finally:
        engine.dispose()
