"""leavers: people seen inactive or not found; the safety brake state

Revision ID: 0008_leavers
Revises: 0007_review_decisions
Create Date: 2026-11-30 17:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008_leavers'
down_revision = '0007_review_decisions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('leavers',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('found', sa.Boolean(), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_judged', sa.DateTime(timezone=True), nullable=False),
    sa.Column('terminated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('email')
    )
    op.create_table('compliance_state',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('compliance_state')
    op.drop_table('leavers')
