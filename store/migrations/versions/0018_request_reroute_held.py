"""requests remember that the re-route brake may hold their open step

``reroute_held`` (round * 100 + step, as ``reminded_step``): the re-route of that open step was held by the
safety brake on re-routes (``safety.max_reroutes``, handlers/compliance/reroute_brake.py). It only says where to
look: the brake's stored state says whether the hold is still in force. A view of a waiting request reads that
state only when the mark names its open step, so the views of all other requests read nothing more. NULL: never
held (or cleared when the hold ended).

Revision ID: 0018_request_reroute_held
Revises: 0017_notice_outbox_claim
Create Date: 2026-12-02 11:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0018_request_reroute_held'
down_revision = '0017_notice_outbox_claim'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the brake arrives with this revision: no hold can be in force before it, so no request needs a mark
    op.add_column('requests', sa.Column('reroute_held', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('requests') as batch:
        batch.drop_column('reroute_held')
