"""audit_events refuses an event below seq 1, on both backends

The chain starts at seq 1 and every check walks it from there, so a row inserted at seq 0 or below was never
met by ``audit verify`` or an evidence pack's verification, while the readers that select events by request
or type (a request's history, the deciders of a review) took it as recorded. The serving role may INSERT into
``audit_events``: a BEFORE INSERT trigger now refuses a seq below 1 (a CHECK constraint would need SQLite's
batch rebuild of the table, which drops its other guards). ``audit verify`` also names any such row already
there.

Revision ID: 0021_audit_seq_from_one
Revises: 0020_op_may_have_landed
Create Date: 2026-12-02 22:00:00
"""

from alembic import op


revision = '0021_audit_seq_from_one'
down_revision = '0020_op_may_have_landed'
branch_labels = None
depends_on = None

MESSAGE = "audit_events is append-only: seq starts at 1, an event below it is outside the chain"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION accessbot_audit_seq_from_one() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE} (seq %)', NEW.seq;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute("CREATE TRIGGER audit_events_seq_from_one BEFORE INSERT ON audit_events FOR EACH ROW "
                   "WHEN (NEW.seq < 1) EXECUTE FUNCTION accessbot_audit_seq_from_one()")
        return
    op.execute("CREATE TRIGGER IF NOT EXISTS audit_events_seq_from_one BEFORE INSERT ON audit_events "
               f"WHEN NEW.seq < 1 BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_seq_from_one ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS accessbot_audit_seq_from_one()")
        return
    op.execute("DROP TRIGGER IF EXISTS audit_events_seq_from_one")
