"""SQLite refuses an insert over an existing audit event, so ``INSERT OR REPLACE`` cannot rewrite one

``REPLACE`` (and ``INSERT OR REPLACE``) on a taken key deletes the old row without firing a DELETE
trigger (SQLite fires none for it unless ``recursive_triggers`` is on), then inserts the new one: 0006's
guards never saw it. The table has two keys: ``seq``, and the hidden ``rowid`` (``seq`` is a BIGINT
primary key, not an alias of it), so a REPLACE naming an event's rowid with a free seq removed the
event. A BEFORE INSERT trigger refuses any insert whose ``seq`` or ``rowid`` is taken, whatever its
conflict clause (a trigger's RAISE is not a conflict the clause can turn into IGNORE or REPLACE). An
insert that names no rowid, as every insert of the bot, gets a new one: the trigger then sees
``NEW.rowid`` as -1, so only a rowid above 0 is compared (none of the events' rowids is ever 0 or
below, and a row planted at -1 must not stop every later insert).
PostgreSQL has no REPLACE, and its ``ON CONFLICT DO UPDATE`` fires the UPDATE guard of 0001.

Revision ID: 0011_sqlite_audit_no_replace
Revises: 0010_overlay_version_any_writer
Create Date: 2026-12-01 14:30:00
"""

from alembic import op

revision = '0011_sqlite_audit_no_replace'
down_revision = '0010_overlay_version_any_writer'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TRIGGER IF NOT EXISTS audit_events_no_replace BEFORE INSERT ON audit_events "
               "WHEN EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq OR (NEW.rowid > 0 AND rowid = NEW.rowid)) "
               "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: an event with this seq or rowid exists'); "
               "END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS audit_events_no_replace")
