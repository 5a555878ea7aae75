"""group references resolved once to the provider's object id

Revision ID: 0003_group_ids
Revises: 0002_reviews
Create Date: 2026-12-01 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003_group_ids'
down_revision = '0002_reviews'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('group_ids',
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('ref', sa.String(length=300), nullable=False),
    sa.Column('object_id', sa.String(length=300), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'ref')
    )


def downgrade() -> None:
    op.drop_table('group_ids')
