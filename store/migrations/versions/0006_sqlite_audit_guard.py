"""SQLite refuses UPDATE and DELETE on audit_events, as PostgreSQL's trigger does since 0001

Revision ID: 0006_sqlite_audit_guard
Revises: 0005_dashboard
Create Date: 2026-12-01 09:00:00
"""

from alembic import op


revision = '0006_sqlite_audit_guard'
down_revision = '0005_dashboard'
branch_labels = None
depends_on = None

# A batch migration that rebuilds audit_events on SQLite drops these triggers: recreate them after it.
GUARDS = ("UPDATE", "DELETE")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for what in GUARDS:
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS audit_events_no_{what.lower()} BEFORE {what} ON audit_events "
            f"BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: {what} refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for what in GUARDS:
        op.execute(f"DROP TRIGGER IF EXISTS audit_events_no_{what.lower()}")
