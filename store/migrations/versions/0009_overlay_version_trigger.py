"""the embedded directory's overlay version moves with every write to directory_memberships, by the
database itself: a writer that records no version (code from before it during a rolling upgrade, an
operator's SQL) cannot leave a process serving the overlay it kept in memory (store/overlay.py)

Revision ID: 0009_overlay_version_trigger
Revises: 0008_leavers
Create Date: 2026-12-01 12:00:00
"""

from alembic import op

revision = '0009_overlay_version_trigger'
down_revision = '0008_leavers'
branch_labels = None
depends_on = None

KEY = "directory-overlay-version"  # store.repository.OVERLAY_VERSION
SQLITE_WHATS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # once per statement (TRUNCATE too), in the writer's transaction
        op.execute(f"""
            CREATE FUNCTION accessbot_overlay_version() RETURNS trigger AS $$
            BEGIN
                INSERT INTO compliance_state (key, value, updated_at)
                VALUES ('{KEY}', json_build_object('version', md5(random()::text || clock_timestamp()::text))::text,
                        clock_timestamp())
                ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at;
                RETURN NULL;
            END
            $$ LANGUAGE plpgsql
        """)
        op.execute("CREATE TRIGGER directory_memberships_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                   "ON directory_memberships FOR EACH STATEMENT EXECUTE FUNCTION accessbot_overlay_version()")
        return
    # SQLite has row triggers only (and no TRUNCATE: a DELETE of every row fires them); updated_at is
    # written as SQLAlchemy writes a UTC datetime there, to the microsecond
    version = "'{\"version\": \"' || lower(hex(randomblob(16))) || '\"}'"
    now = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"
    for what in SQLITE_WHATS:
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS directory_memberships_version_{what.lower()} AFTER {what} "
            f"ON directory_memberships BEGIN "
            f"INSERT OR REPLACE INTO compliance_state (key, value, updated_at) VALUES ('{KEY}', {version}, {now}); "
            f"END")


def downgrade() -> None:
    # without the trigger nothing moves the version: a reader finding none reads the overlay whole
    op.execute(f"DELETE FROM compliance_state WHERE key = '{KEY}'")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS directory_memberships_version ON directory_memberships")
        op.execute("DROP FUNCTION IF EXISTS accessbot_overlay_version()")
        return
    for what in SQLITE_WHATS:
        op.execute(f"DROP TRIGGER IF EXISTS directory_memberships_version_{what.lower()}")
