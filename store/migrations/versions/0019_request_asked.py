"""requests remember whom their open step asked, and when

``asked_step`` (round * 100 + step), ``asked`` (a JSON list of emails) and ``asked_at``: the approvers the last
``approval.requested`` / ``approval.rerouted`` of that step named, written in the same transaction as the event.
A decision, the reminders sweep and the leaver sweep read them with the request instead of reading the request's
events again. The events stay the record: a request whose mark does not name its open step (written before this
revision) is judged from its events as before, so nothing is back-filled.

Revision ID: 0019_request_asked
Revises: 0018_request_reroute_held
Create Date: 2026-12-02 11:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0019_request_asked'
down_revision = '0018_request_reroute_held'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('requests', sa.Column('asked_step', sa.Integer(), nullable=True))
    op.add_column('requests', sa.Column('asked', sa.Text(), nullable=True))
    op.add_column('requests', sa.Column('asked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('requests') as batch:
        batch.drop_column('asked_at')
        batch.drop_column('asked')
        batch.drop_column('asked_step')
