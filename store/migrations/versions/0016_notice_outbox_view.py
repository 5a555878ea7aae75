"""the view an outbox notice's card is drawn from

Drift findings, paused brakes and review batches are told with a card: ``notice_outbox.view`` keeps the
fields of that card's view as JSON (handlers/notice_views.py) so that a notice sent after a restart is
still a card. NULL for a notice without one (a request's card is drawn from the request when it is sent).

Revision ID: 0016_notice_outbox_view
Revises: 0015_notice_outbox
Create Date: 2026-12-02 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0016_notice_outbox_view'
down_revision = '0015_notice_outbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notice_outbox') as batch:
        batch.add_column(sa.Column('view', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notice_outbox') as batch:
        batch.drop_column('view')
