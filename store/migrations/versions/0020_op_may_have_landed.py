"""provider operations remember whether an attempt may have been carried out unanswered

``may_have_landed``: some attempt of the call may have been carried out at the provider although no success came
back (a time-out, a connection dropped after the request went out, a 500/502/504, a claim whose answer was never
recorded). A grant whose add is given up is followed by the removal of the membership only then.

The attempts of an operation still pending when this revision runs were judged by the old rule (any attempt that
failed for now counted as possibly carried out): those that have had an attempt keep that judgment, so nothing
already planned is dropped; every other operation starts at false.

Revision ID: 0020_op_may_have_landed
Revises: 0019_request_asked
Create Date: 2026-12-02 14:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0020_op_may_have_landed'
down_revision = '0019_request_asked'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('provider_ops', sa.Column('may_have_landed', sa.Boolean(), nullable=False,
                                            server_default=sa.false()))
    ops = sa.table('provider_ops', sa.column('status', sa.String), sa.column('attempts', sa.Integer),
                   sa.column('may_have_landed', sa.Boolean))
    op.execute(ops.update().where(ops.c.status == 'pending', ops.c.attempts > 0).values(may_have_landed=True))


def downgrade() -> None:
    with op.batch_alter_table('provider_ops') as batch:
        batch.drop_column('may_have_landed')
