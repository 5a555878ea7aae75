"""Tables of the system of record. Migrations in ``store/migrations`` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the offset and reads back naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("version", String(200), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("loaded_at", UTCDateTime, nullable=False),
)

group_ids = Table(  # a group reference as the policy writes it, resolved once to the provider's id
    "group_ids",
    metadata,
    Column("provider", String(20), primary_key=True),
    Column("ref", String(300), primary_key=True),
    Column("object_id", String(300), nullable=False),
    Column("resolved_at", UTCDateTime, nullable=False),
)

requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("requester", String(320), nullable=False, index=True),
    Column("profile", String(100), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("duration_s", BigInteger, nullable=False),
    Column("justification", Text),
    Column("ticket", String(200)),
    Column("state", String(20), nullable=False, index=True),
    Column("submitted_at", UTCDateTime, nullable=False, index=True),
    Column("policy_version", String(200), nullable=False),
    Column("policy_sha256", String(64), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("group_name", String(300), nullable=False),
    Column("step", Integer, nullable=False, default=0),
    Column("round", Integer, nullable=False, default=0),
    Column("step_opened_at", UTCDateTime),
    Column("ext_duration_s", BigInteger),
    Column("ext_justification", Text),
    Column("approved_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("expires_at", UTCDateTime, index=True),
    Column("ended_at", UTCDateTime),
    Column("end_reason", String(40)),
    Column("reminded_step", Integer),
    Column("escalated_step", Integer),
    Column("warned_expiry", UTCDateTime),
    Column("failure", Text),
    # round * 100 + step: the brake on re-routes held this open step's re-route (handlers/compliance/reroute_brake.py)
    Column("reroute_held", Integer),
    # whom the open step (round * 100 + step) last asked, and when: the approval.requested / approval.rerouted
    # written with them (handlers/approvals.py ``last_asked``)
    Column("asked_step", Integer),
    Column("asked", Text),  # JSON list of emails
    Column("asked_at", UTCDateTime),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, nullable=False, index=True),
    Column("round", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("approver", String(320), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("comment", Text),
    Column("decided_at", UTCDateTime, nullable=False),
    UniqueConstraint("request_id", "round", "approver", name="uq_decision_once_per_round"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", String(32), nullable=False, index=True),
    Column("type", String(60), nullable=False),
    Column("actor", String(320), nullable=False),
    Column("request_id", String(40), index=True),
    Column("profile", String(100)),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

provider_ops = Table(
    "provider_ops",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, nullable=False, index=True),
    Column("op", String(10), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("group_name", String(300), nullable=False),
    Column("email", String(320), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("correlation_id", String(100)),
    Column("failure_reported", Boolean, nullable=False, default=False),
    Column("done_at", UTCDateTime),
    # set while a process owns the call (claimed, no answer recorded yet): the call is in flight
    Column("leased_until", UTCDateTime),
    # why a membership no grant holds is removed (request_id is 0 then): terminated | drift | review
    Column("reason", String(40)),
    # some attempt may have carried the call out at the provider without a success coming back
    Column("may_have_landed", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_provider_ops_status_next", "status", "next_attempt_at"),
    Index("ix_provider_ops_member", "email", "group_name"),
)

directory_memberships = Table(
    "directory_memberships",
    metadata,
    Column("group_name", String(300), primary_key=True),
    Column("email", String(320), primary_key=True),
    Column("present", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

leavers = Table(
    "leavers",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("found", Boolean, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("first_judged", UTCDateTime, nullable=False),
    Column("terminated_at", UTCDateTime),
)

compliance_state = Table(
    "compliance_state",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("updated_at", UTCDateTime, nullable=False),
)

drift_findings = Table(
    "drift_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(20), nullable=False),
    Column("group_name", String(300), nullable=False),
    Column("email", String(320), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    # "member": a member with no grant behind them; "missing": a grant holder who is not a member
    Column("kind", String(20), nullable=False, server_default="member"),
)

channel_addresses = Table(
    "channel_addresses",
    metadata,
    Column("channel", String(20), primary_key=True),
    Column("email", String(320), primary_key=True),
    Column("address", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

channel_messages = Table(
    "channel_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(20), nullable=False),
    Column("request_id", Integer, nullable=False, index=True),
    Column("recipient", String(320), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("address", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

seen_events = Table(
    "seen_events",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
)

# The unattended notices (reminders, escalations, expiry warnings, expiries) a sweep decided: written in the
# transaction that records the decision, then sent and marked (handlers/outbox.py). A process that dies between
# the two leaves the row pending; the next sweep sends it.
notice_outbox = Table(
    "notice_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient", String(320), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("request_id", Integer),
    Column("status", String(20), nullable=False),  # pending | sent | undeliverable | unreachable | dropped
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    # pending: due from then (NULL: at once); a process that took it owns it until then (the lease)
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("done_at", UTCDateTime),
    Column("view", Text),  # the card's view as JSON (handlers/notice_views.py); NULL: none
    Column("claimed_by", String(64)),  # the token of the process holding the lease; NULL: never taken
    Index("ix_notice_outbox_status_next", "status", "next_attempt_at"),
)
