"""dashboard: sign-in tokens and sessions, scheduled evidence deliveries, indexes for the pages

Revision ID: 0005_dashboard
Revises: 0004_op_lease_drift_kind
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_dashboard'
down_revision = '0004_op_lease_drift_kind'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dashboard_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index('ix_dashboard_tokens_expires_at', 'dashboard_tokens', ['expires_at'], unique=False)
    op.create_table('dashboard_sessions',
    sa.Column('session_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('via', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('session_hash')
    )
    op.create_index('ix_dashboard_sessions_expires_at', 'dashboard_sessions', ['expires_at'], unique=False)
    op.create_table('evidence_deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('period_from', sa.String(length=10), nullable=False),
    sa.Column('period_to', sa.String(length=10), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('file_name', sa.String(length=300), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('item_id', sa.String(length=300), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'period_from', 'target', name='uq_evidence_delivery_once')
    )
    op.create_index('ix_evidence_deliveries_status_next', 'evidence_deliveries', ['status', 'next_attempt_at'],
                    unique=False)
    op.create_index('ix_requests_state_expires', 'requests', ['state', 'expires_at'], unique=False)
    op.create_index('ix_requests_state_id', 'requests', ['state', 'id'], unique=False)
    op.create_index('ix_audit_events_type_seq', 'audit_events', ['type', 'seq'], unique=False)
    op.create_index('ix_audit_events_actor_seq', 'audit_events', ['actor', 'seq'], unique=False)
    op.create_index('ix_decisions_approver', 'decisions', ['approver'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_decisions_approver', table_name='decisions')
    op.drop_index('ix_audit_events_actor_seq', table_name='audit_events')
    op.drop_index('ix_audit_events_type_seq', table_name='audit_events')
    op.drop_index('ix_requests_state_id', table_name='requests')
    op.drop_index('ix_requests_state_expires', table_name='requests')
    op.drop_index('ix_evidence_deliveries_status_next', table_name='evidence_deliveries')
    op.drop_table('evidence_deliveries')
    op.drop_index('ix_dashboard_sessions_expires_at', table_name='dashboard_sessions')
    op.drop_table('dashboard_sessions')
    op.drop_index('ix_dashboard_tokens_expires_at', table_name='dashboard_tokens')
    op.drop_table('dashboard_tokens')
