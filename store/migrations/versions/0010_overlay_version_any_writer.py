"""the overlay version's triggers take any writer's statement: conflict clauses and search paths included

On SQLite the outer statement's conflict clause overrides those of the statements in a trigger's body:
under ``INSERT OR IGNORE`` / ``UPDATE OR IGNORE`` the 0009 trigger's ``INSERT OR REPLACE`` of the version
row was ignored (the membership changed, the version did not: processes kept serving the overlay they
had), and under an upsert or ``OR ABORT`` / ``OR FAIL`` / ``OR ROLLBACK`` it failed the writer's
statement. The body now has nothing to conflict on: it updates the version row, then inserts it only
where it does not exist yet.

On PostgreSQL the trigger function found ``compliance_state`` through the writer's search path; it
now has that table's schema as its own (``pg_temp`` last, so no temporary table can stand in).

Revision ID: 0010_overlay_version_any_writer
Revises: 0009_overlay_version_trigger
Create Date: 2026-12-01 14:00:00
"""

from alembic import op

revision = '0010_overlay_version_any_writer'
down_revision = '0009_overlay_version_trigger'
branch_labels = None
depends_on = None

KEY = "directory-overlay-version"  # store.repository.OVERLAY_VERSION
SQLITE_WHATS = ("INSERT", "UPDATE", "DELETE")
VERSION = "'{\"version\": \"' || lower(hex(randomblob(16))) || '\"}'"
NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"  # as SQLAlchemy writes a UTC datetime, to the microsecond


def _sqlite_triggers(body: str) -> None:
    for what in SQLITE_WHATS:
        op.execute(f"DROP TRIGGER IF EXISTS directory_memberships_version_{what.lower()}")
        op.execute(f"CREATE TRIGGER directory_memberships_version_{what.lower()} AFTER {what} "
                   f"ON directory_memberships BEGIN {body} END")


# The function the trigger on directory_memberships runs, and the schema of the compliance_state table the
# migrations created; not current_schema(), which a schema named after the migrating role (PostgreSQL's
# "secure schema usage pattern", first in the default search path) would turn into another one.
_PG_FUNCTION_AND_SCHEMA = """
    SELECT t.tgfoid::regprocedure::text, n.nspname
    INTO f, s
    FROM pg_trigger t, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE t.tgrelid = to_regclass('directory_memberships') AND t.tgname = 'directory_memberships_version'
      AND c.oid = to_regclass('compliance_state');
    IF f IS NULL OR s IS NULL THEN
        RAISE EXCEPTION 'the overlay version trigger or compliance_state was not found';
    END IF;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DO $$ DECLARE f text; s text; BEGIN {_PG_FUNCTION_AND_SCHEMA} "
                   "EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, s); END $$")
        return
    _sqlite_triggers(
        f"UPDATE compliance_state SET value = {VERSION}, updated_at = {NOW} WHERE key = '{KEY}'; "
        f"INSERT INTO compliance_state (key, value, updated_at) SELECT '{KEY}', {VERSION}, {NOW} "
        f"WHERE NOT EXISTS (SELECT 1 FROM compliance_state WHERE key = '{KEY}');")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DO $$ DECLARE f text; s text; BEGIN {_PG_FUNCTION_AND_SCHEMA} "
                   "EXECUTE format('ALTER FUNCTION %s RESET search_path', f); END $$")
        return
    _sqlite_triggers(
        f"INSERT OR REPLACE INTO compliance_state (key, value, updated_at) VALUES ('{KEY}', {VERSION}, {NOW});")
