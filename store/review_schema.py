"""Tables of access reviews (SPEC §7). Migration ``0002_reviews`` creates exactly these."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, UniqueConstraint

from store.schema import UTCDateTime, metadata

review_campaigns = Table(
    "review_campaigns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("review", String(100), nullable=False, index=True),
    Column("title", String(300), nullable=False),
    Column("state", String(20), nullable=False, index=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("started_by", String(320), nullable=False),
    Column("scheduled_for", UTCDateTime),
    Column("policy_version", String(200), nullable=False),
    Column("policy_sha256", String(64), nullable=False),
    Column("snapshot_sha256", String(64), nullable=False),
    Column("items", Integer, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("signoff", String(20)),
    Column("signoff_asked", Text),  # JSON {step: [emails asked when it opened]}; NULL: none recorded
    UniqueConstraint("review", "scheduled_for", name="uq_review_campaign_scheduled_once"),
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, nullable=False),
    Column("number", Integer, nullable=False),
    Column("user_email", String(320), nullable=False),
    Column("name", String(300), nullable=False),
    Column("title", String(300)),
    Column("department", String(300)),
    Column("kind", String(20), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("last_sign_in", UTCDateTime),
    Column("profile", String(100), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("group_name", String(300), nullable=False),
    Column("held_via", String(60), nullable=False),
    Column("request_id", Integer),
    Column("expires_at", UTCDateTime),
    Column("since", UTCDateTime),
    Column("reviewer", String(320), nullable=False),
    Column("reviewer_basis", String(200), nullable=False),
    Column("recommendation", String(20), nullable=False),
    Column("recommendation_reason", String(300), nullable=False),
    Column("state", String(20), nullable=False),
    Column("removed_at", UTCDateTime),
    Column("outcome", Text),
    UniqueConstraint("campaign_id", "number", name="uq_review_item_number"),
    Index("ix_review_items_campaign_reviewer", "campaign_id", "reviewer"),
)

review_decisions = Table(
    "review_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, nullable=False),
    Column("item", Integer, nullable=False),
    Column("decision", String(20), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("comment", Text),
    Column("recommendation", String(20)),
    Column("decided_at", UTCDateTime, nullable=False),
    Index("ix_review_decisions_campaign_item", "campaign_id", "item"),
)

review_snapshots = Table(
    "review_snapshots",
    metadata,
    Column("campaign_id", Integer, primary_key=True, autoincrement=False),
    Column("review", String(100), nullable=False, index=True),
    Column("taken_at", UTCDateTime, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("body", Text, nullable=False),
)

review_schedules = Table(
    "review_schedules",
    metadata,
    Column("review", String(100), primary_key=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("done_for", UTCDateTime),
    Column("pending_for", UTCDateTime),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
)

review_batches = Table(
    "review_batches",
    metadata,
    Column("campaign_id", Integer, primary_key=True, autoincrement=False),
    Column("reviewer", String(320), primary_key=True),  # an email, or group:<name>
    Column("opened_at", UTCDateTime),
    Column("opened_by", String(320)),
    Column("reminded_at", UTCDateTime),
    Column("reminders", Integer, nullable=False),
    Column("escalated_at", UTCDateTime),
    Column("escalated_to", String(320)),  # an email, or group:<name>
    Column("escalated_items", Text),  # JSON list of the item numbers escalated; NULL: the whole batch
    Column("escalation_opened_at", UTCDateTime),  # the escalation's addressee first opened it
)

review_signoffs = Table(
    "review_signoffs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, nullable=False, index=True),
    Column("step", Integer, nullable=False),
    Column("approver", String(320), nullable=False),
    Column("decision", String(20), nullable=False),  # approved | denied
    Column("comment", Text),
    Column("decided_at", UTCDateTime, nullable=False),
    UniqueConstraint("campaign_id", "approver", name="uq_review_signoff_once"),
)

review_undos = Table(
    "review_undos",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, nullable=False, index=True),
    Column("item", Integer, nullable=False),
    Column("requested_by", String(320), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("approved_by", String(320)),
    Column("approved_at", UTCDateTime),
)
