"""Alembic environment: synchronous engine built from the URL the caller passed in.

Several processes may start at once on a new database (two ``accessbot serve`` replicas, or many
``accessbot chat`` sessions): migrations run under a lock (an advisory lock on PostgreSQL, the
database write lock on SQLite) held from reading the version to the commit of the last revision, so
that exactly one of them applies each revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from store.db import make_sync_engine
from store.schema import metadata

MIGRATION_LOCK_KEY = 0x61636D67  # "acmg"

config = context.config
engine = make_sync_engine(config.attributes["sync_url"])
try:
    with engine.connect() as connection:
        connection = connection.execution_options(immediate=True)
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        # One transaction for every revision applied, on SQLite too (its DDL is transactional; Alembic
        # assumes not and commits after each revision, which let go of the write lock between two
        # revisions: a process that had read the version before the first could then apply the second
        # after another process had, and fail on the version row).
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite", transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
finally:
    engine.dispose()
