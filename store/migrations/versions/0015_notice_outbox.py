"""the outbox of unattended notices

A reminder, an escalation, an expiry warning or an expiry notice a sweep decides is written to
``notice_outbox`` in the transaction that records the decision, then sent and marked sent; a process
that dies between the two leaves it pending, and the next sweep sends it (after its lease, when it had
been taken). A notice the channels keep refusing is marked undeliverable after a bounded number of attempts.

Revision ID: 0015_notice_outbox
Revises: 0014_review_escalation_opened
Create Date: 2026-12-02 08:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0015_notice_outbox'
down_revision = '0014_review_escalation_opened'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'notice_outbox',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('recipient', sa.String(length=320), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_notice_outbox_status_next', 'notice_outbox', ['status', 'next_attempt_at'])


def downgrade() -> None:
    op.drop_index('ix_notice_outbox_status_next', table_name='notice_outbox')
    op.drop_table('notice_outbox')
