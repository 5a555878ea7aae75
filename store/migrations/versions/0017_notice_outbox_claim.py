"""who holds an outbox notice's lease

A process that takes a notice to send writes its own token in ``notice_outbox.claimed_by`` with the lease
(``next_attempt_at``); it marks the notice sent, retried or undeliverable only while the token is still its
own. A process whose lease ran out and was taken over by another leaves the notice to that one.
NULL for a notice nobody took yet (and for those taken before this revision).

Revision ID: 0017_notice_outbox_claim
Revises: 0016_notice_outbox_view
Create Date: 2026-12-02 12:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0017_notice_outbox_claim'
down_revision = '0016_notice_outbox_view'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notice_outbox') as batch:
        batch.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notice_outbox') as batch:
        batch.drop_column('claimed_by')
