"""access reviews: batches (opened, reminded, escalated), sign-offs, undos, the reason of a standing removal

Revision ID: 0007_review_decisions
Revises: 0006_sqlite_audit_guard
Create Date: 2026-11-30 17:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0007_review_decisions'
down_revision = '0006_sqlite_audit_guard'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('review_batches',
    sa.Column('campaign_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('reviewer', sa.String(length=320), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opened_by', sa.String(length=320), nullable=True),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_to', sa.String(length=320), nullable=True),
    sa.PrimaryKeyConstraint('campaign_id', 'reviewer')
    )
    op.create_table('review_signoffs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('approver', sa.String(length=320), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'approver', name='uq_review_signoff_once')
    )
    with op.batch_alter_table('review_signoffs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_signoffs_campaign_id'), ['campaign_id'], unique=False)
    op.create_table('review_undos',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('item', sa.Integer(), nullable=False),
    sa.Column('requested_by', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_by', sa.String(length=320), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('review_undos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_undos_campaign_id'), ['campaign_id'], unique=False)
    with op.batch_alter_table('provider_ops', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('provider_ops', schema=None) as batch_op:
        batch_op.drop_column('reason')
    with op.batch_alter_table('review_signoffs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_signoffs_campaign_id'))
    op.drop_table('review_signoffs')
    with op.batch_alter_table('review_undos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_undos_campaign_id'))
    op.drop_table('review_undos')
    op.drop_table('review_batches')
