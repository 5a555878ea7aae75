"""provider operations: the lease of a call in flight, an index per (user, group); drift kind

Revision ID: 0004_op_lease_drift_kind
Revises: 0003_group_ids
Create Date: 2026-11-30 16:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_op_lease_drift_kind'
down_revision = '0003_group_ids'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('provider_ops', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_provider_ops_member', ['email', 'group_name'], unique=False)
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), nullable=False, server_default='member'))


def downgrade() -> None:
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.drop_column('kind')
    with op.batch_alter_table('provider_ops', schema=None) as batch_op:
        batch_op.drop_index('ix_provider_ops_member')
        batch_op.drop_column('leased_until')
