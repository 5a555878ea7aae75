"""review batches remember which items an escalation handed over

An escalation hands the reviewer's manager the items still undecided then (``review.escalated``
{items}); the batch keeps those numbers, so the manager decides those items and not the ones the
reviewer had decided already. Batches escalated before this revision have none recorded (NULL) and keep
the whole batch escalated, as they were.

Revision ID: 0012_review_escalated_items
Revises: 0011_sqlite_audit_no_replace
Create Date: 2026-12-01 15:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0012_review_escalated_items'
down_revision = '0011_sqlite_audit_no_replace'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('review_batches', sa.Column('escalated_items', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('review_batches') as batch:
        batch.drop_column('escalated_items')
