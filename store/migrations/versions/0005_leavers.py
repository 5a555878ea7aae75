"""leavers: people seen inactive or not found; the reason of a removal no grant holds; the safety brake state

Revision ID: 0005_leavers
Revises: 0004_op_lease_drift_kind
Create Date: 2026-11-30 17:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_leavers'
down_revision = '0004_op_lease_drift_kind'
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
    with op.batch_alter_table('provider_ops', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('provider_ops', schema=None) as batch_op:
        batch_op.drop_column('reason')
    op.drop_table('compliance_state')
    op.drop_table('leavers')
