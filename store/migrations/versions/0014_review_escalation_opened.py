"""review batches remember when the manager they were escalated to first opened them

A batch escalated to the reviewer's manager records ``review.opened`` {escalated: true} the first time that
manager opens it, as the reviewer's own first opening is recorded: an auditor sees that whoever decided the
escalated items looked at them. NULL: not opened by the escalation's addressee (or escalated before this
revision).

Revision ID: 0014_review_escalation_opened
Revises: 0013_review_signoff_asked
Create Date: 2026-12-02 05:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0014_review_escalation_opened'
down_revision = '0013_review_signoff_asked'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('review_batches', sa.Column('escalation_opened_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('review_batches') as batch:
        batch.drop_column('escalation_opened_at')
