"""Alembic environment: synchronous engine built from the URL the caller passed in."""

from __future__ import annotations

from alembic import context

from store.db import make_sync_engine
from store.schema import metadata

config = context.config
url = config.attributes["sync_url"]
engine = make_sync_engine(url)
try:
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
finally:
    engine.dispose()
