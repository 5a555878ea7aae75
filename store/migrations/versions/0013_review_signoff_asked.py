"""campaigns remember whom each sign-off step asked

A sign-off step asks its active approvers when it opens (``review.signoff_requested`` {approvers}); the
campaign keeps them per step, so an ``all_of`` step needs the people it asked, as a request's step does
(someone inactive when it opens is not asked; someone who turns inactive afterwards makes it fail closed).
Campaigns that asked before this revision have none recorded (NULL) and count the policy's list.

Revision ID: 0013_review_signoff_asked
Revises: 0012_review_escalated_items
Create Date: 2026-12-01 16:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0013_review_signoff_asked'
down_revision = '0012_review_escalated_items'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a database migrated by an unreleased draft of 0012 that added this column already has it
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns('review_campaigns')}
    if 'signoff_asked' not in present:
        op.add_column('review_campaigns', sa.Column('signoff_asked', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('review_campaigns') as batch:
        batch.drop_column('signoff_asked')
