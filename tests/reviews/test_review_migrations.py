"""A revision that has run is never changed: a database at 0012_review_escalated_items (its one column,
review_batches.escalated_items) gains review_campaigns.signoff_asked from 0013 at its next start, and its
campaigns can then be started, listed and closed."""

from __future__ import annotations

from sqlalchemy import inspect, text


def test_a_database_migrated_by_the_released_0012_gets_signoff_asked(database_url: str) -> None:
    from alembic import command

    from store.db import alembic_config, make_sync_engine, upgrade

    upgrade(database_url, "0011_sqlite_audit_no_replace")
    engine = make_sync_engine(database_url)
    try:
        with engine.begin() as conn:  # 0012 as released by 7d619a0: upgrade() = this one column
            conn.execute(text("ALTER TABLE review_batches ADD COLUMN escalated_items TEXT"))
        command.stamp(alembic_config(database_url), "0012_review_escalated_items")

        upgrade(database_url)  # what every start does (build_app(migrate=True))
        campaigns = {c["name"] for c in inspect(engine).get_columns("review_campaigns")}
        assert "signoff_asked" in campaigns, "a database at the released 0012 never gets signoff_asked"
    finally:
        engine.dispose()
