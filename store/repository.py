"""The repository over SQLAlchemy Core, and the hash-chained audit log inside it.

Every write transaction first takes the one global write lock (PostgreSQL: a transaction-level
advisory lock; SQLite: ``BEGIN IMMEDIATE``). Under that lock the chain head is read and the next
event appended, and any state change in the same transaction is decided on data no other writer
can change meanwhile: two approvals arriving together are applied one after the other, and the
second sees the first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Integer, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import ResourceClosedError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from handlers.audit import GENESIS, ChainVerifier, Verification, canonical_body, canonical_json, format_ts
from handlers.notice_views import READD_PREFIX, decode_view, encode_view
from handlers.origin import stamp
from handlers.records import (
    ENDING_TYPES,
    AuditEvent,
    DecisionRecord,
    DriftRecord,
    LeaverRecord,
    OpRecord,
    OutboxNotice,
    RequestRecord,
    req_id,
)
from store import schema as t
from store.db import KEPT_SINCE, STATEMENT_FAILED, STATEMENT_SNAPSHOTS, backend, make_async_engine, ping_after
from store.fast import Driver, inline_of, inline_transaction
from store.review_repository import ReviewRepositoryMixin

WRITE_LOCK_KEY = 0x61636365  # "acce"


def _secs(td: timedelta | None) -> int | None:
    return None if td is None else int(td.total_seconds())


def _td(secs: int | None) -> timedelta | None:
    return None if secs is None else timedelta(seconds=int(secs))


def _request_row(r: RequestRecord) -> dict[str, Any]:
    return {
        "requester": r.requester, "profile": r.profile, "kind": r.kind,
        "duration_s": _secs(r.duration), "justification": r.justification, "ticket": r.ticket,
        "state": r.state, "submitted_at": r.submitted_at, "policy_version": r.policy_version,
        "policy_sha256": r.policy_sha256, "provider": r.provider, "group_name": r.group,
        "step": r.step, "round": r.round, "step_opened_at": r.step_opened_at,
        "ext_duration_s": _secs(r.ext_duration), "ext_justification": r.ext_justification,
        "approved_at": r.approved_at, "started_at": r.started_at, "expires_at": r.expires_at,
        "ended_at": r.ended_at, "end_reason": r.end_reason, "reminded_step": r.reminded_step,
        "escalated_step": r.escalated_step, "warned_expiry": r.warned_expiry, "failure": r.failure,
        "reroute_held": r.reroute_held, "asked_step": r.asked_step,
        "asked": None if r.asked is None else json.dumps(list(r.asked)), "asked_at": r.asked_at,
    }


def _request(row: Any) -> RequestRecord:
    m = getattr(row, "_mapping", row)  # a SQLAlchemy row, or the mapping store.fast gives
    return RequestRecord(
        id=m["id"], requester=m["requester"], profile=m["profile"], kind=m["kind"],
        duration=_td(m["duration_s"]) or timedelta(0), justification=m["justification"],
        ticket=m["ticket"], state=m["state"], submitted_at=m["submitted_at"],
        policy_version=m["policy_version"], policy_sha256=m["policy_sha256"],
        provider=m["provider"], group=m["group_name"], step=m["step"], round=m["round"],
        step_opened_at=m["step_opened_at"], ext_duration=_td(m["ext_duration_s"]),
        ext_justification=m["ext_justification"], approved_at=m["approved_at"],
        started_at=m["started_at"], expires_at=m["expires_at"], ended_at=m["ended_at"],
        end_reason=m["end_reason"], reminded_step=m["reminded_step"],
        escalated_step=m["escalated_step"], warned_expiry=m["warned_expiry"], failure=m["failure"],
        reroute_held=m["reroute_held"], asked_step=m["asked_step"],
        asked=None if m["asked"] is None else tuple(json.loads(m["asked"])), asked_at=m["asked_at"],
    )


def _decision(m: Any, prefix: str = "") -> DecisionRecord:
    return DecisionRecord(id=m[f"{prefix}id"], request_id=m[f"{prefix}request_id"], round=m[f"{prefix}round"],
                          step=m[f"{prefix}step"], approver=m[f"{prefix}approver"], decision=m[f"{prefix}decision"],
                          comment=m[f"{prefix}comment"], decided_at=m[f"{prefix}decided_at"])


def _values(row: dict[str, Any]) -> dict[str, Any]:
    """A row's values under the names the statements below bind them by (``v_<column>``)."""
    return {f"v_{k}": v for k, v in row.items()}


def _op_row(o: OpRecord) -> dict[str, Any]:
    return {
        "request_id": o.request_id, "op": o.op, "provider": o.provider, "group_name": o.group,
        "email": o.email, "status": o.status, "attempts": o.attempts, "created_at": o.created_at,
        "next_attempt_at": o.next_attempt_at, "last_error": o.last_error,
        "correlation_id": o.correlation_id, "failure_reported": o.failure_reported,
        "done_at": o.done_at, "leased_until": o.leased_until, "reason": o.reason,
        "may_have_landed": o.may_have_landed,
    }


# One statement for every save of an operation, built once: every column but the key.
_SAVE_OP = update(t.provider_ops).where(t.provider_ops.c.id == bindparam("op_id")).values(
    {c.name: bindparam(f"v_{c.name}") for c in t.provider_ops.c if c.name != "id"})

# The statements of every click, built once with bound parameters: neither rebuilt nor re-keyed for
# SQLAlchemy's compiled cache on each call (asyncpg then reuses its prepared statement per connection).
_REQ = t.requests.c
_GET_REQUEST = select(t.requests).where(_REQ.id == bindparam("rid"))
_INSERT_REQUEST = insert(t.requests)
_SAVE_REQUEST = update(t.requests).where(_REQ.id == bindparam("rid")).values(
    {c.name: bindparam(f"v_{c.name}") for c in t.requests.c if c.name != "id"})
_DEC = t.decisions.c
_DECISIONS = select(t.decisions).where(_DEC.request_id == bindparam("rid")).order_by(_DEC.id)
_DECISIONS_OF_ROUND = (select(t.decisions).where(_DEC.request_id == bindparam("rid"), _DEC.round == bindparam("rnd"))
                       .order_by(_DEC.id))
# a request with its decisions in one round trip: the request's columns under their names, each decision's under
# ``d_<name>`` (none when it has none: the outer join's one row of NULLs)
_REQUEST_DECISIONS = (select(t.requests, *(c.label(f"d_{c.name}") for c in t.decisions.c))
                      .select_from(t.requests.outerjoin(t.decisions, _DEC.request_id == _REQ.id))
                      .where(_REQ.id == bindparam("rid")).order_by(_DEC.id))
_INSERT_DECISION = insert(t.decisions).values(
    {c.name: bindparam(f"v_{c.name}") for c in t.decisions.c if c.name != "id"})
_AUD = t.audit_events.c
_HEAD = select(_AUD.seq, _AUD.hash, _AUD.ts).order_by(_AUD.seq.desc()).limit(1)
_INSERT_EVENT = insert(t.audit_events).values({c.name: bindparam(f"v_{c.name}") for c in t.audit_events.c})
_EVENTS_FOR = select(t.audit_events).where(_AUD.request_id == bindparam("ref")).order_by(_AUD.seq)
# the newest event of a request among the types that say why it waits on no decision (handlers/records.py
# ENDING_TYPES, handlers/approvals.py closed_why): each type a bound value of its own (one prepared statement)
_LAST_ENDING = (select(t.audit_events)
                .where(_AUD.request_id == bindparam("ref"),
                       or_(*(_AUD.type == bindparam(f"type_{i}", value=v) for i, v in enumerate(ENDING_TYPES))))
                .order_by(_AUD.seq.desc()).limit(1))
_ADDR = t.channel_addresses.c
_GROUP_IDS = select(t.group_ids.c.provider, t.group_ids.c.ref, t.group_ids.c.object_id)
_ADDRESS = select(_ADDR.address).where(_ADDR.channel == bindparam("channel"), _ADDR.email == bindparam("email"))
_MSG = t.channel_messages.c
# a request's messages in a channel, all or of one kind (a card refreshed by someone whose step closed reads them)
_MESSAGES = (select(_MSG.recipient, _MSG.kind, _MSG.address)
             .where(_MSG.channel == bindparam("channel"), _MSG.request_id == bindparam("rid")).order_by(_MSG.id))
_MESSAGES_OF_KIND = (select(_MSG.recipient, _MSG.kind, _MSG.address)
                     .where(_MSG.channel == bindparam("channel"), _MSG.request_id == bindparam("rid"),
                            _MSG.kind == bindparam("kind")).order_by(_MSG.id))
# an inbound event key, recorded unless it is there already (PostgreSQL: SqlStore.first_seen); a row when it was new
_CLAIM_SEEN = (pg_insert(t.seen_events).values(key=bindparam("key"), seen_at=bindparam("at"))
               .on_conflict_do_nothing(index_elements=[t.seen_events.c.key]).returning(t.seen_events.c.key))
_ADD_REQUEST = insert(t.requests).values(
    {c.name: bindparam(f"v_{c.name}") for c in t.requests.c if c.name != "id"}).returning(_REQ.id)
_OPS = t.provider_ops.c
_ADD_OP = insert(t.provider_ops).values(
    {c.name: bindparam(f"v_{c.name}") for c in t.provider_ops.c if c.name != "id"}).returning(_OPS.id)
_GET_OP = select(t.provider_ops).where(_OPS.id == bindparam("op_id"))
_OPS_FOR = select(t.provider_ops).where(_OPS.request_id == bindparam("rid")).order_by(_OPS.id)


def _due_ops(member: bool) -> Any:
    earlier = t.provider_ops.alias("earlier")
    e = earlier.c
    ahead = (select(e.id).where(e.status == "pending", e.email == _OPS.email, e.group_name == _OPS.group_name,
                                e.provider == _OPS.provider, e.id < _OPS.id).exists())
    q = (select(t.provider_ops)
         .where(_OPS.status == "pending")
         .where((_OPS.next_attempt_at.is_(None)) | (_OPS.next_attempt_at <= bindparam("now")))
         .where(~ahead))
    if member:
        q = q.where(_OPS.provider == bindparam("pv"), _OPS.group_name == bindparam("gp"), _OPS.email == bindparam("em"))
    return q.order_by(_OPS.id).limit(bindparam("lim", type_=Integer))


_DUE_OPS = {False: _due_ops(False), True: _due_ops(True)}


@cache
def _ops_for_member(statuses: int | None) -> Any:
    """Every operation on one membership, in the statuses given (one statement per number of them)."""
    q = select(t.provider_ops).where(_OPS.email == bindparam("em"), _OPS.group_name == bindparam("gp"),
                                     _OPS.provider == bindparam("pv"))
    if statuses is not None:
        q = q.where(or_(*(_OPS.status == bindparam(f"st{i}") for i in range(statuses))))
    return q.order_by(_OPS.id)


@cache
def _find_requests(shape: tuple[bool, int | None, bool, bool, bool, bool, bool]) -> Any:
    """The statement of one shape of ``find_requests``: which filters it has and how many states."""
    requester, states, profile, provider, group, expires, limit = shape
    conds = []
    if requester:
        conds.append(_REQ.requester == bindparam("rq"))
    if states is not None:
        conds.append(or_(*(_REQ.state == bindparam(f"st{i}") for i in range(states))))
    if profile:
        conds.append(_REQ.profile == bindparam("pf"))
    if provider:
        conds.append(_REQ.provider == bindparam("pv"))
    if group:
        conds.append(_REQ.group_name == bindparam("gp"))
    if expires:
        conds.append(_REQ.expires_at <= bindparam("ex"))
    q = select(t.requests).where(*conds).order_by(_REQ.id)
    return q.limit(bindparam("lim", type_=Integer)) if limit else q


_WRITE_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_MEMB = t.directory_memberships.c
_OVERLAY = {  # by (email given, group given)
    (False, False): select(_MEMB.group_name, _MEMB.email, _MEMB.present),
    (True, False): select(_MEMB.group_name, _MEMB.email, _MEMB.present).where(_MEMB.email == bindparam("email")),
    (False, True): select(_MEMB.group_name, _MEMB.email, _MEMB.present).where(_MEMB.group_name == bindparam("grp")),
    (True, True): select(_MEMB.group_name, _MEMB.email, _MEMB.present).where(
        _MEMB.email == bindparam("email"), _MEMB.group_name == bindparam("grp")),
}
_UPDATE_MEMBERSHIP = (update(t.directory_memberships)
                      .where(_MEMB.group_name == bindparam("grp"), _MEMB.email == bindparam("email"))
                      .values(present=bindparam("v_present"), updated_at=bindparam("v_updated_at")))
_INSERT_MEMBERSHIP = insert(t.directory_memberships).values(
    group_name=bindparam("grp"), email=bindparam("email"), present=bindparam("v_present"),
    updated_at=bindparam("v_updated_at"))
OVERLAY_VERSION = "directory-overlay-version"
_GET_LEAVER = select(t.leavers).where(t.leavers.c.email == bindparam("email"))
_STATE = t.compliance_state.c
_GET_STATE = select(_STATE.value).where(_STATE.key == bindparam("key"))


_ADDRESSES = select(_ADDR.email, _ADDR.address).where(
    _ADDR.channel == bindparam("channel"), _ADDR.email.in_(bindparam("emails", expanding=True)))

# The outbox (handlers/outbox.py): whether anything is due (a read), the oldest due notice and its lease (under
# the write lock), and how sending went, written only while the lease is still the sender's (its token).
_OUT = t.notice_outbox.c
_NOTICE_IS_DUE = (_OUT.status == "pending",
                  or_(_OUT.next_attempt_at.is_(None), _OUT.next_attempt_at <= bindparam("now")))
_INSERT_NOTICE = insert(t.notice_outbox).values({k: bindparam(f"v_{k}") for k in (
    "recipient", "kind", "text", "request_id", "status", "attempts", "created_at", "next_attempt_at", "view")})
_DUE_NOTICE_ID = select(_OUT.id).where(*_NOTICE_IS_DUE).limit(1)
_DUE_NOTICE = select(t.notice_outbox).where(*_NOTICE_IS_DUE).order_by(_OUT.id).limit(1)
_CLAIM_NOTICE = update(t.notice_outbox).where(_OUT.id == bindparam("nid")).values(
    next_attempt_at=bindparam("v_until"), claimed_by=bindparam("v_token"))
# the due notices sent in one message with one already taken (handlers/outbox.py ``BATCHED``): the same
# recipient and kind, no card, oldest first
_DUE_ALIKE = (select(t.notice_outbox)
              .where(*_NOTICE_IS_DUE, _OUT.recipient == bindparam("recipient"), _OUT.kind == bindparam("kind"),
                     # no card: no view, or one kept only for the outbox to judge (handlers/notice_views.py)
                     or_(_OUT.view.is_(None), _OUT.view.startswith(READD_PREFIX, autoescape=True)),
                     _OUT.id != bindparam("nid"))
              .order_by(_OUT.id).limit(bindparam("n")))
_CLAIM_NOTICES = update(t.notice_outbox).where(_OUT.id.in_(bindparam("nids", expanding=True))).values(
    next_attempt_at=bindparam("v_until"), claimed_by=bindparam("v_token"))
_SAVE_NOTICE = (update(t.notice_outbox)
                .where(_OUT.id == bindparam("nid"), _OUT.claimed_by == bindparam("token"), _OUT.status == "pending")
                .values(status=bindparam("v_status"), attempts=bindparam("v_attempts"),
                        next_attempt_at=bindparam("v_next"), last_error=bindparam("v_error"),
                        done_at=bindparam("v_done"))
                .returning(_OUT.id))


def _op(row: Any) -> OpRecord:
    m = getattr(row, "_mapping", row)
    return OpRecord(
        id=m["id"], request_id=m["request_id"], op=m["op"], provider=m["provider"],
        group=m["group_name"], email=m["email"], status=m["status"], attempts=m["attempts"],
        created_at=m["created_at"], next_attempt_at=m["next_attempt_at"], last_error=m["last_error"],
        correlation_id=m["correlation_id"], failure_reported=bool(m["failure_reported"]),
        done_at=m["done_at"], leased_until=m["leased_until"], reason=m["reason"],
        may_have_landed=bool(m["may_have_landed"]),
    )


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def event_from_row(row: Any) -> AuditEvent:
    m = getattr(row, "_mapping", row)
    return AuditEvent(
        seq=int(m["seq"]), ts=m["ts"], type=m["type"], actor=m["actor"],
        request_id=m["request_id"], profile=m["profile"], data=json.loads(m["data"]),
        prev_hash=m["prev_hash"], hash=m["hash"],
    )


class SqlRepository(ReviewRepositoryMixin):
    """One transaction's view of the store (implements ``handlers.repository.Repository``)."""

    def __init__(self, conn: AsyncConnection, *, writable: bool) -> None:
        self._conn: AsyncConnection | None = conn
        self.writable = writable
        self.wall = _wall_clock
        # the chain's head once this transaction has read or written it: writers hold the store's
        # write lock for the whole transaction (``SqlStore.write``), so nobody else appends meanwhile
        self._head: tuple[int, str, str] | None = None
        self._driver: Driver | bool | None = False  # False: not looked at yet

    @property
    def conn(self) -> AsyncConnection:
        """The scope's connection; refused once the scope ended: the store keeps that connection for its next
        scope (``SqlStore.read`` / ``SqlStore.write``), where a statement of this one would land outside that
        scope's transaction and write lock."""
        conn = self._conn
        if conn is None:
            raise ResourceClosedError("This repository's scope has ended (store.read() / store.write()): "
                                      "its connection went back to the store")
        return conn

    def _end(self) -> None:
        self._conn = None
        self._driver = False

    async def _fast(self) -> Driver | None:
        if self._driver is False:
            self._driver = await Driver.of(self.conn)
        return self._driver  # type: ignore[return-value]

    async def _rows(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """The rows (as mappings) of one of the click's statements, on the driver connection when it can
        (store.fast), else through SQLAlchemy."""
        driver = await self._fast()
        if driver is None:
            return [r._mapping for r in (await self.conn.execute(stmt, params)).all()]
        return await driver.rows(stmt, params)

    async def _run(self, stmt: Any, params: dict[str, Any]) -> None:
        driver = await self._fast()
        if driver is None:
            await self.conn.execute(stmt, params)
        else:
            await driver.execute(stmt, params)

    # -- requests ---------------------------------------------------------------------------
    async def get_request(self, request_id: int) -> RequestRecord | None:
        rows = await self._rows(_GET_REQUEST, {"rid": request_id})
        return _request(rows[0]) if rows else None

    async def add_request(self, record: RequestRecord) -> int:
        driver = await self._fast()
        if driver is None or not driver.returns:
            result = await self.conn.execute(_INSERT_REQUEST, _request_row(record))
            new_id = result.inserted_primary_key[0]  # type: ignore[index]
        else:
            new_id = (await driver.returning(_ADD_REQUEST, _values(_request_row(record))))[0]["id"]
        record.id = int(new_id)
        return record.id

    async def save_request(self, record: RequestRecord) -> None:
        assert record.id is not None
        await self._run(_SAVE_REQUEST, {"rid": record.id, **_values(_request_row(record))})

    async def find_requests(
        self,
        *,
        requester: str | None = None,
        states: Sequence[str] | None = None,
        profile: str | None = None,
        provider: str | None = None,
        group: str | None = None,
        expires_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[RequestRecord]:
        if states is not None and not states:
            return []  # in no state at all: nothing
        shape = (requester is not None, len(states) if states is not None else None, profile is not None,
                 provider is not None, group is not None, expires_before is not None, bool(limit))
        params: dict[str, Any] = {"rq": requester, "pf": profile, "pv": provider, "gp": group,
                                  "ex": expires_before, "lim": limit}
        params.update((f"st{i}", s) for i, s in enumerate(states or ()))
        return [_request(r) for r in await self._rows(_find_requests(shape), params)]

    # -- decisions --------------------------------------------------------------------------
    async def decisions(self, request_id: int, round: int | None = None) -> list[DecisionRecord]:
        if round is None:
            rows = await self._rows(_DECISIONS, {"rid": request_id})
        else:
            rows = await self._rows(_DECISIONS_OF_ROUND, {"rid": request_id, "rnd": round})
        return [_decision(m) for m in rows]

    async def request_with_decisions(self, request_id: int) -> tuple[RequestRecord | None, list[DecisionRecord]]:
        """:meth:`get_request` and :meth:`decisions` in one statement (one round trip on PostgreSQL)."""
        rows = await self._rows(_REQUEST_DECISIONS, {"rid": request_id})
        if not rows:
            return None, []
        return _request(rows[0]), [_decision(m, "d_") for m in rows if m["d_id"] is not None]

    async def add_decision(self, decision: DecisionRecord) -> None:
        await self._run(_INSERT_DECISION, {
            "v_request_id": decision.request_id, "v_round": decision.round, "v_step": decision.step,
            "v_approver": decision.approver, "v_decision": decision.decision, "v_comment": decision.comment,
            "v_decided_at": decision.decided_at,
        })

    # -- audit ------------------------------------------------------------------------------
    async def append(
        self,
        type: str,
        *,
        actor: str,
        ts: datetime,
        request: RequestRecord | None = None,
        request_id: str | None = None,
        profile: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AuditEvent:
        if not self.writable:
            raise RuntimeError("audit append outside a write transaction")
        if request is not None:
            request_id = request_id or req_id(request.id or 0)
            profile = profile or request.profile
        head = self._head
        if head is None:
            rows = await self._rows(_HEAD)
            head = (int(rows[0]["seq"]), rows[0]["hash"], rows[0]["ts"]) if rows else (0, GENESIS, "")
        seq, prev, prev_ts = head[0] + 1, head[1], head[2]
        # ``ts`` is when the event was recorded: the wall clock, never earlier than the event before,
        # so that the events of any period form one unbroken segment of the chain. A decision judged
        # as of another instant (``sweep --as-of``) says so in ``data.as_of``.
        real = self.wall()
        data = stamp(dict(data or {}))  # the channel and platform user id the action came through
        if abs((ts - real).total_seconds()) > 1:
            data["as_of"] = format_ts(ts)
        body = {
            "seq": seq, "ts": max(format_ts(real), prev_ts), "type": type, "actor": actor,
            "request_id": request_id, "profile": profile, "data": data, "prev_hash": prev,
        }
        data_json = canonical_json(data)
        # the hash of the body as the verifiers assemble it from the stored columns (the same text as
        # ``event_hash(prev, body)``: tests/test_audit.py), its data serialised once for the hash and the row
        digest = hashlib.sha256((prev + canonical_body(seq, str(body["ts"]), type, actor, request_id, profile,
                                                       data_json, prev)).encode("utf-8")).hexdigest()
        await self._run(_INSERT_EVENT, {
            "v_seq": seq, "v_ts": body["ts"], "v_type": type, "v_actor": actor, "v_request_id": request_id,
            "v_profile": profile, "v_data": data_json, "v_prev_hash": prev, "v_hash": digest,
        })
        self._head = (seq, digest, str(body["ts"]))
        return AuditEvent(hash=digest, **body)  # type: ignore[arg-type]

    async def events_for(self, request_id: int) -> list[AuditEvent]:
        rows = await self._rows(_EVENTS_FOR, {"ref": req_id(request_id)})
        return [event_from_row(r) for r in rows]

    async def last_ending(self, request_id: int) -> AuditEvent | None:
        """The request's newest event of :data:`ENDING_TYPES` (one row, not its whole history)."""
        rows = await self._rows(_LAST_ENDING, {"ref": req_id(request_id)})
        return event_from_row(rows[0]) if rows else None

    async def events_by_actor_or_request(self, request_ids: list[str]) -> list[AuditEvent]:
        c = t.audit_events.c
        rows = (await self.conn.execute(
            select(t.audit_events).where(c.request_id.in_(request_ids)).order_by(c.seq)
        )).all()
        return [event_from_row(r) for r in rows]

    # -- provider operations ----------------------------------------------------------------
    async def add_op(self, op: OpRecord) -> int:
        driver = await self._fast()
        if driver is None or not driver.returns:
            result = await self.conn.execute(insert(t.provider_ops).values(**_op_row(op)))
            op.id = int(result.inserted_primary_key[0])  # type: ignore[index]
        else:
            op.id = int((await driver.returning(_ADD_OP, _values(_op_row(op))))[0]["id"])
        return op.id

    async def save_op(self, op: OpRecord) -> None:
        await self._run(_SAVE_OP, {"op_id": op.id, **_values(_op_row(op))})

    async def due_ops(self, now: datetime, *, limit: int = 100,
                      member: tuple[str, str, str] | None = None) -> list[OpRecord]:
        """Pending operations that are due and first in line for their (provider, group, user):
        the calls for one membership run in the order they were planned, one at a time."""
        pv, gp, em = member if member is not None else (None, None, None)
        rows = await self._rows(_DUE_OPS[member is not None], {"now": now, "lim": limit, "pv": pv, "gp": gp, "em": em})
        return [_op(r) for r in rows]

    async def ops_for_member(self, provider: str, group: str, email: str, *,
                             statuses: Sequence[str] | None = None) -> list[OpRecord]:
        """Every operation on one membership, oldest first."""
        if statuses is not None and not statuses:
            return []
        params: dict[str, Any] = {"em": email, "gp": group, "pv": provider}
        params.update((f"st{i}", s) for i, s in enumerate(statuses or ()))
        return [_op(r) for r in await self._rows(_ops_for_member(len(statuses) if statuses is not None else None),
                                                  params)]

    async def unsettled_ops(self, since: datetime) -> list[OpRecord]:
        """Operations still pending, or finished at or after ``since``."""
        c = t.provider_ops.c
        q = select(t.provider_ops).where((c.status == "pending") | (c.done_at >= since)).order_by(c.id)
        return [_op(r) for r in (await self.conn.execute(q)).all()]

    async def ops_for(self, request_id: int) -> list[OpRecord]:
        return [_op(r) for r in await self._rows(_OPS_FOR, {"rid": request_id})]

    async def get_op(self, op_id: int) -> OpRecord | None:
        rows = await self._rows(_GET_OP, {"op_id": op_id})
        return _op(rows[0]) if rows else None

    async def get_ops(self, op_ids: list[int]) -> dict[int, OpRecord]:
        if len(op_ids) == 1:  # what a click records: one statement of a fixed shape (store.fast)
            rows = await self._rows(_GET_OP, {"op_id": op_ids[0]})
            return {op.id or 0: op for op in map(_op, rows)}
        found: dict[int, OpRecord] = {}
        for start in range(0, len(op_ids), 500):
            q = select(t.provider_ops).where(t.provider_ops.c.id.in_(op_ids[start:start + 500]))
            for row in (await self.conn.execute(q)).all():
                op = _op(row)
                found[op.id or 0] = op
        return found

    async def oldest_open_remove(self) -> datetime | None:
        c = t.provider_ops.c
        return (await self.conn.execute(
            select(func.min(c.created_at)).where(c.op == "remove", c.status == "pending")
        )).scalar()

    async def next_expiry(self) -> datetime | None:
        c = t.requests.c
        return (await self.conn.execute(select(func.min(c.expires_at)).where(c.state == "active"))).scalar()

    async def next_op_attempt(self) -> datetime | None:
        """When the next pending provider operation is due (a retry, or a lease running out)."""
        c = t.provider_ops.c
        return (await self.conn.execute(select(func.min(c.next_attempt_at)).where(c.status == "pending"))).scalar()

    # -- drift ------------------------------------------------------------------------------
    async def get_leaver(self, email: str) -> LeaverRecord | None:
        rows = await self._rows(_GET_LEAVER, {"email": email})
        if not rows:
            return None
        m = rows[0]
        return LeaverRecord(email=m["email"], found=bool(m["found"]), first_seen=m["first_seen"],
                            first_judged=m["first_judged"], terminated_at=m["terminated_at"])

    async def save_leaver(self, record: LeaverRecord) -> None:
        values = {"found": record.found, "first_seen": record.first_seen, "first_judged": record.first_judged,
                  "terminated_at": record.terminated_at}
        await self.conn.execute(delete(t.leavers).where(t.leavers.c.email == record.email))
        await self.conn.execute(insert(t.leavers).values(email=record.email, **values))

    async def forget_leaver(self, email: str) -> None:
        await self.conn.execute(delete(t.leavers).where(t.leavers.c.email == email))

    async def get_state(self, key: str) -> dict[str, Any] | None:
        c = t.compliance_state.c
        row = (await self.conn.execute(select(c.value).where(c.key == key))).first()
        return json.loads(row[0]) if row else None

    async def set_state(self, key: str, value: dict[str, Any], at: datetime) -> None:
        await self.conn.execute(delete(t.compliance_state).where(t.compliance_state.c.key == key))
        await self.conn.execute(insert(t.compliance_state).values(key=key, value=json.dumps(value), updated_at=at))

    async def mark_reroutes_held(self, marks: dict[int, int]) -> None:
        c = t.requests.c
        await self.conn.execute(update(t.requests).where(c.reroute_held.is_not(None)).values(reroute_held=None))
        for request_id, mark in sorted(marks.items()):
            await self.conn.execute(update(t.requests).where(c.id == request_id).values(reroute_held=mark))

    async def open_drift(self) -> list[DriftRecord]:
        c = t.drift_findings.c
        rows = (await self.conn.execute(
            select(t.drift_findings).where(c.resolved_at.is_(None)).order_by(c.id))).all()
        return [DriftRecord(id=m["id"], provider=m["provider"], group=m["group_name"], email=m["email"],
                            first_seen=m["first_seen"], resolved_at=m["resolved_at"], kind=m["kind"])
                for m in (r._mapping for r in rows)]

    async def get_drift(self, record_id: int) -> DriftRecord | None:
        c = t.drift_findings.c
        row = (await self.conn.execute(select(t.drift_findings).where(c.id == record_id))).first()
        if row is None:
            return None
        m = row._mapping
        return DriftRecord(id=m["id"], provider=m["provider"], group=m["group_name"], email=m["email"],
                           first_seen=m["first_seen"], resolved_at=m["resolved_at"], kind=m["kind"])

    async def add_drift(self, record: DriftRecord) -> None:
        result = await self.conn.execute(insert(t.drift_findings).values(
            provider=record.provider, group_name=record.group, email=record.email,
            first_seen=record.first_seen, resolved_at=None, kind=record.kind))
        record.id = int(result.inserted_primary_key[0])  # type: ignore[index]

    async def resolve_drift(self, record_id: int, at: datetime) -> None:
        await self.conn.execute(update(t.drift_findings).where(t.drift_findings.c.id == record_id)
                                .values(resolved_at=at))

    # -- policy versions --------------------------------------------------------------------
    async def ensure_policy(self, version: str, sha256: str, raw: bytes, at: datetime) -> bool:
        c = t.policy_versions.c
        latest = (await self.conn.execute(
            select(c.sha256).order_by(c.loaded_at.desc()).limit(1))).scalar()
        if latest == sha256:
            return False
        exists = (await self.conn.execute(select(c.sha256).where(c.sha256 == sha256))).scalar()
        if exists:
            await self.conn.execute(update(t.policy_versions).where(c.sha256 == sha256)
                                    .values(loaded_at=at))
        else:
            await self.conn.execute(insert(t.policy_versions).values(
                sha256=sha256, version=version, raw=raw, loaded_at=at))
        return True

    async def policy_raw(self, sha256: str) -> bytes | None:
        c = t.policy_versions.c
        raw = (await self.conn.execute(select(c.raw).where(c.sha256 == sha256))).scalar()
        return bytes(raw) if raw is not None else None

    async def policy_versions(self) -> list[tuple[str, str, bytes]]:
        c = t.policy_versions.c
        rows = (await self.conn.execute(select(c.version, c.sha256, c.raw).order_by(c.loaded_at))).all()
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    # -- group references resolved to ids ---------------------------------------------------
    async def group_ids(self) -> dict[tuple[str, str], str]:
        return {(r["provider"], r["ref"]): r["object_id"] for r in await self._rows(_GROUP_IDS)}

    async def save_group_id(self, provider: str, ref: str, object_id: str, at: datetime) -> None:
        c = t.group_ids.c
        await self.conn.execute(t.group_ids.delete().where(c.provider == provider, c.ref == ref))
        await self.conn.execute(insert(t.group_ids).values(provider=provider, ref=ref, object_id=object_id,
                                                           resolved_at=at))

    # -- directory overlay ------------------------------------------------------------------
    async def overlay(self, *, email: str | None = None, group: str | None = None) -> dict[tuple[str, str], bool]:
        rows = await self._rows(_OVERLAY[email is not None, group is not None], {"email": email, "grp": group})
        return {(m["group_name"], m["email"]): bool(m["present"]) for m in rows}

    async def set_membership(self, group: str, email: str, present: bool, at: datetime) -> None:
        params = {"grp": group, "email": email, "v_present": present, "v_updated_at": at}
        if await self._rows(_OVERLAY[True, True], params):
            await self._run(_UPDATE_MEMBERSHIP, params)
        else:
            await self._run(_INSERT_MEMBERSHIP, params)
        # the database records a new version with every change, in its transaction (a trigger, migrations
        # 0009 and 0010: any writer, this code or not): what processes keep of the overlay is read again

    async def overlay_version(self) -> str | None:
        """The version the overlay's last change recorded (None before the first change)."""
        rows = await self._rows(_GET_STATE, {"key": OVERLAY_VERSION})
        return rows[0]["value"] if rows else None

    # -- channels ---------------------------------------------------------------------------
    async def save_address(self, channel: str, email: str, address: dict[str, Any], at: datetime) -> None:
        c = t.channel_addresses.c
        blob = json.dumps(address, sort_keys=True)
        exists = (await self.conn.execute(
            select(c.email).where(c.channel == channel, c.email == email))).first()
        if exists:
            await self.conn.execute(update(t.channel_addresses)
                                    .where(c.channel == channel, c.email == email)
                                    .values(address=blob, updated_at=at))
        else:
            await self.conn.execute(insert(t.channel_addresses).values(
                channel=channel, email=email, address=blob, updated_at=at))

    async def address(self, channel: str, email: str) -> dict[str, Any] | None:
        rows = await self._rows(_ADDRESS, {"channel": channel, "email": email})
        blob = rows[0]["address"] if rows else None
        return json.loads(blob) if blob else None

    async def addresses(self, channel: str, emails: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The saved references of several people at once (one statement); people with none are left out."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(emails))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = (await self.conn.execute(_ADDRESSES, {"channel": channel, "emails": chunk})).all()
            found.update((r[0], json.loads(r[1])) for r in rows if r[1])
        return found

    async def add_message(self, channel: str, request_id: int, recipient: str, kind: str,
                          address: dict[str, Any], at: datetime) -> None:
        await self.conn.execute(insert(t.channel_messages).values(
            channel=channel, request_id=request_id, recipient=recipient, kind=kind,
            address=json.dumps(address, sort_keys=True), created_at=at))

    async def messages(self, channel: str, request_id: int, kind: str | None = None
                       ) -> list[tuple[str, str, dict[str, Any]]]:
        if kind:
            rows = await self._rows(_MESSAGES_OF_KIND, {"channel": channel, "rid": request_id, "kind": kind})
        else:
            rows = await self._rows(_MESSAGES, {"channel": channel, "rid": request_id})
        return [(r["recipient"], r["kind"], json.loads(r["address"])) for r in rows]

    async def first_seen(self, key: str, at: datetime) -> bool:
        """Record an inbound event key; True the first time it is seen."""
        c = t.seen_events.c
        if (await self.conn.execute(select(c.key).where(c.key == key))).first():
            return False
        await self.conn.execute(insert(t.seen_events).values(key=key, seen_at=at))
        return True

    async def claim_seen(self, key: str, at: datetime) -> bool:
        """PostgreSQL: :meth:`first_seen` in one statement, which the key's uniqueness makes safe without the
        write lock (:meth:`SqlStore.first_seen`)."""
        params = {"key": key, "at": at}
        driver = await self._fast()
        if driver is None:
            return (await self.conn.execute(_CLAIM_SEEN, params)).first() is not None
        return bool(await driver.returning(_CLAIM_SEEN, params))

    async def unsee(self, key: str) -> None:
        """Forget one inbound event key: the event was not handled after all, and may come again."""
        await self.conn.execute(delete(t.seen_events).where(t.seen_events.c.key == key))

    async def forget_seen(self, before: datetime) -> int:
        """Drop the inbound event keys seen before ``before``. A key that marks something done once for good
        (``drift.escalated:<finding>``: SPEC §3.6, once per finding) is kept."""
        c = t.seen_events.c
        result = await self.conn.execute(delete(t.seen_events).where(
            c.seen_at < before, ~c.key.startswith("drift.escalated:", autoescape=True)))
        return int(result.rowcount or 0)

    # -- the outbox of unattended notices (handlers/outbox.py) -------------------------------------------------
    async def queue_notices(self, notices: Sequence[Any], at: datetime) -> None:
        """On SQLite one INSERT a notice on the driver (in the write transaction, whose lock is held: a batch would
        go to SQLite's own thread and back); on PostgreSQL one for a few notices, a batch (one round trip) for
        more; through SQLAlchemy without a driver."""
        if not notices:
            return
        rows = [{"v_recipient": n.recipient, "v_kind": n.kind, "v_text": n.text, "v_request_id": n.request_id,
                 "v_status": "pending", "v_attempts": 0, "v_created_at": at, "v_next_attempt_at": None,
                 "v_view": encode_view(getattr(n, "view", None))} for n in notices]
        driver = await self._fast()
        if driver is None or (driver.kind != "sqlite" and len(rows) > 2):
            await self.conn.execute(_INSERT_NOTICE, rows)
            return
        for row in rows:
            await driver.execute(_INSERT_NOTICE, row)

    async def notices_due(self, now: datetime) -> bool:
        return bool(await self._rows(_DUE_NOTICE_ID, {"now": now}))

    async def claim_notice(self, now: datetime, lease_until: datetime, token: str) -> OutboxNotice | None:
        """Under the store's write lock (``SqlStore.write``): no other process takes the same row meanwhile."""
        rows = await self._rows(_DUE_NOTICE, {"now": now})
        if not rows:
            return None
        m = rows[0]
        await self._run(_CLAIM_NOTICE, {"nid": m["id"], "v_until": lease_until, "v_token": token})
        return _claimed(m, lease_until, token)

    async def claim_alike(self, notice: OutboxNotice, now: datetime, lease_until: datetime, token: str,
                          limit: int) -> list[OutboxNotice]:
        """Under the store's write lock, with ``notice`` just claimed: up to ``limit`` other pending notices due by
        ``now`` to the same recipient, of the same kind and with no card (no view, or a queued drift re-add's), oldest
        first, leased to ``token``."""
        rows = await self._rows(_DUE_ALIKE, {"now": now, "recipient": notice.recipient, "kind": notice.kind,
                                             "nid": notice.id, "n": limit})
        if not rows:
            return []
        await self.conn.execute(_CLAIM_NOTICES, {"nids": [m["id"] for m in rows], "v_until": lease_until,
                                                 "v_token": token})  # expanding: not on the driver (store.fast)
        return [_claimed(m, lease_until, token) for m in rows]

    async def save_notice(self, notice: OutboxNotice, at: datetime) -> bool:
        params = {"nid": notice.id, "token": notice.claimed_by, "v_status": notice.status,
                  "v_attempts": notice.attempts, "v_next": notice.next_attempt_at, "v_error": notice.last_error,
                  "v_done": None if notice.status == "pending" else at}
        driver = await self._fast()
        if driver is None:
            return bool((await self.conn.execute(_SAVE_NOTICE, params)).all())
        return bool(await driver.returning(_SAVE_NOTICE, params))


def _claimed(m: Any, lease_until: datetime, token: str) -> OutboxNotice:
    """An outbox row just leased to ``token`` until ``lease_until``."""
    return OutboxNotice(id=m["id"], recipient=m["recipient"], kind=m["kind"], text=m["text"],
                        request_id=m["request_id"], status=m["status"], attempts=m["attempts"],
                        next_attempt_at=lease_until, last_error=m["last_error"], view=decode_view(m["view"]),
                        claimed_by=token)


class WriteAbandoned(RuntimeError):
    """A write scope's body caught a failed statement and went on: the scope is rolled back, never committed."""


KEEP_READS = 2  # read connections a store keeps checked out between scopes
POOL_LEFT = 4  # connections the pool must still have beside the kept ones, or none is kept


def _pool_room(engine: AsyncEngine) -> int:
    """How many connections the engine's pool may hand out at once (0: a pool that is not a queue)."""
    pool = engine.sync_engine.pool
    size, overflow = getattr(pool, "size", None), getattr(pool, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int):
        return 0
    return int(size()) + (overflow if overflow >= 0 else 1_000_000)


class SqlStore:
    """Implements ``handlers.repository.Store`` on one SQLAlchemy async engine."""

    def __init__(self, url: str | URL, *, engine: AsyncEngine | None = None, pool_size: int | None = None) -> None:
        """``pool_size``: the PostgreSQL connections it may hold at once (default ``store.db.POOL_SIZE``)."""
        self.url = url
        self.backend = backend(url)
        sized = {"pool_size": pool_size} if pool_size and self.backend == "postgresql" else {}
        self.engine = engine or make_async_engine(url, **sized)
        # Writers are serialised by the database lock across processes; inside one process they
        # also queue here, before taking a connection, so that waiting writers cannot exhaust the
        # pool that the lock holder still needs for its reads.
        self._write_lock = asyncio.Lock()
        # Reads connect through a copy of the engine that carries their options (one pool): no
        # separate call to set them on every connection.
        self._writes = self.engine.execution_options(immediate=True)  # SQLite: BEGIN IMMEDIATE (store/db.py)
        self._reads = self.engine.execution_options(
            **({"isolation_level": "AUTOCOMMIT"} if self.backend == "postgresql" else {STATEMENT_SNAPSHOTS: True}))
        # A scope that ended cleanly keeps its connection checked out for the next one (the write connection,
        # and up to KEEP_READS read connections). Checking a connection out of the pool and back in (the pool's
        # reset, a task to shield the close, three turns of the event loop) cost more than the statements of a
        # card refresh. A local SQLite file does not drop connections; a PostgreSQL connection kept longer than
        # the pool's PING_AFTER_IDLE_S goes back to the pool, which pings it before its next use as it pings
        # any connection idle that long (store/db.py): a server restart or an idle timeout meanwhile is found.
        # the connections its pool hands out at once (0: no cap), which handlers/context.py decision_readers sizes by
        self.connections = _pool_room(self.engine)
        self._keep = self.connections >= KEEP_READS + 1 + POOL_LEFT
        self._idle_limit = None if self.backend == "sqlite" else ping_after(self.engine)
        self._kept_write: tuple[AsyncConnection, float] | None = None
        self._kept_reads: list[tuple[AsyncConnection, float]] = []
        # counts the times the kept connections were dropped (one was found broken): a scope that began before
        # the last drop does not keep its connection (a server restart may have ended its session too, after its
        # last statement; the pool, which invalidated every connection older than the break, replaces it)
        self._drops = 0
        self._closed = False

    async def close(self) -> None:
        self._keep = False
        self._closed = True  # a scope still running, or one begun after this, closes its connection when it ends
        kept, self._kept_reads = [*self._kept_reads, *([self._kept_write] if self._kept_write else [])], []
        self._kept_write = None
        for conn, _ in kept:
            await conn.close()
        await self.engine.dispose()

    async def _drop_kept(self) -> None:
        """Close every kept connection: one of them was found broken (a server restart ends them all), and the
        pool, which invalidated its connections, replaces them as it hands them out again."""
        self._drops += 1
        kept, self._kept_reads = [*self._kept_reads, *([self._kept_write] if self._kept_write else [])], []
        self._kept_write = None
        for conn, _ in kept:
            try:
                await conn.close()
            except Exception:  # a connection already gone: the pool replaces it
                pass

    async def _take(self, kept: tuple[AsyncConnection, float] | None) -> AsyncConnection | None:
        """A kept connection fit for use, or None (one kept too long goes back to the pool, to be pinged)."""
        if kept is None:
            return None
        conn, since = kept
        if conn.closed or conn.invalidated:
            return None
        if self._idle_limit is not None and time.monotonic() - since > self._idle_limit:
            await conn.close()  # its idle time counts from ``since`` (KEPT_SINCE): the pool pings it
            return None
        conn.info.pop(KEPT_SINCE, None)
        return conn

    async def _give_back(self, conn: AsyncConnection) -> None:
        """A scope's connection that is not kept goes back to the pool; once the store is closed, it is closed for
        good: the pool it came from was disposed, and one checked in there would stay open (a server session, or
        a SQLite connection's thread, which keeps the process from exiting)."""
        broken = conn.invalidated
        if self._closed and not broken and not conn.closed:
            await conn.invalidate()
        await conn.close()
        if broken:
            await self._drop_kept()

    def _kept(self, conn: AsyncConnection) -> tuple[AsyncConnection, float]:
        now = time.monotonic()
        conn.info[KEPT_SINCE] = now
        return conn, now

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SqlRepository]:
        async with self._write_lock:
            drops = self._drops
            kept, self._kept_write = self._kept_write, None
            conn = await self._take(kept) or await self._writes.connect()
            clean = False
            repo = SqlRepository(conn, writable=True)
            try:
                conn.info.pop(STATEMENT_FAILED, None)
                inline = await inline_of(conn) if self.backend == "sqlite" else None
                async with inline_transaction(conn, inline) if inline is not None else conn.begin():
                    if self.backend == "postgresql":
                        await repo._run(_WRITE_LOCK, {"k": WRITE_LOCK_KEY})
                    yield repo
                    if conn.info.pop(STATEMENT_FAILED, False):
                        raise WriteAbandoned("a statement of this write failed and the write went on: nothing of "
                                             "it is committed (PostgreSQL would have dropped it all in silence)")
                clean = True
            finally:
                repo._end()  # its connection may serve the next scope: this one's repository no longer reaches it
                if clean and self._keep and drops == self._drops and not conn.closed and not conn.invalidated \
                        and not conn.in_transaction():
                    self._kept_write = self._kept(conn)
                else:
                    await self._give_back(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqlRepository]:
        """Reads without a write lock, outside a transaction block. On PostgreSQL at READ COMMITTED
        every statement sees its own snapshot inside a transaction or not, so BEGIN and COMMIT would
        only add two round trips; SQLite sends no BEGIN either, so it reads the same way (each
        statement its own snapshot) for two calls less per read."""
        drops = self._drops
        conn = await self._take(self._kept_reads.pop() if self._kept_reads else None)
        if conn is None:
            conn = await self._reads.connect()  # no begin(): the first SQLAlchemy statement autobegins,
        clean = False  # and none is needed for store.fast's statements
        repo = SqlRepository(conn, writable=False)
        try:
            yield repo
            clean = True
        finally:
            repo._end()
            kept = False
            try:
                if clean and self._keep and drops == self._drops and not conn.closed and not conn.invalidated \
                        and len(self._kept_reads) < KEEP_READS:
                    if conn.in_transaction():  # SQLAlchemy's autobegun one: no BEGIN was sent, nothing to undo
                        await conn.rollback()
                    # (on aiosqlite's own thread that ROLLBACK waits: the store may have closed meanwhile)
                    if self._keep and drops == self._drops and not conn.invalidated \
                            and len(self._kept_reads) < KEEP_READS:
                        self._kept_reads.append(self._kept(conn))
                        kept = True
            finally:
                if not kept:
                    await self._give_back(conn)

    async def first_seen(self, key: str, at: datetime) -> bool:
        """Record an inbound event key (a chat delivery, a signed request); True the first time it is seen.

        On PostgreSQL one statement outside the write lock: the key's uniqueness decides between two deliveries
        at once (the second waits for the first's insert, then inserts nothing), so a burst of chat requests does
        not queue on the lock that serialises the audit chain's writers. SQLite takes its write lock for it, as
        for any write (it has one writer)."""
        if self.backend != "postgresql":
            async with self.write() as repo:
                return await repo.first_seen(key, at)
        async with self.read() as repo:  # autocommit: the insert is committed when it returns
            return await repo.claim_seen(key, at)

    async def audit_events(self, *, from_seq: int = 1, to_seq: int | None = None,
                           batch: int = 5000) -> AsyncIterator[Any]:
        """Events in ``seq`` order, fetched in pages so memory stays flat."""
        c = t.audit_events.c
        seq = from_seq
        while True:
            q = select(t.audit_events).where(c.seq >= seq)
            if to_seq is not None:
                q = q.where(c.seq <= to_seq)
            async with self.engine.connect() as conn:
                rows = (await conn.execute(q.order_by(c.seq).limit(batch))).all()
            if not rows:
                return
            for row in rows:
                yield event_from_row(row)
            seq = int(rows[-1]._mapping["seq"]) + 1
            if len(rows) < batch:
                return

    async def audit_rows(self, *, first_seq: int = 1, last_seq: int | None = None, ts_from: str | None = None,
                         ts_to: str | None = None, batch: int = 20000) -> AsyncIterator[tuple[Any, ...]]:
        """Raw stored columns (seq, ts, type, actor, request_id, profile, data, prev_hash, hash) in
        ``seq`` order, a page at a time: the cheap path for verifying and exporting the chain."""
        c = t.audit_events.c
        cols = (c.seq, c.ts, c.type, c.actor, c.request_id, c.profile, c.data, c.prev_hash, c.hash)
        seq = first_seq
        while True:
            q = select(*cols).where(c.seq >= seq)
            if last_seq is not None:
                q = q.where(c.seq <= last_seq)
            if ts_from is not None:
                q = q.where(c.ts >= ts_from)
            if ts_to is not None:
                q = q.where(c.ts < ts_to)
            async with self.engine.connect() as conn:
                rows = (await conn.execute(q.order_by(c.seq).limit(batch))).all()
            for row in rows:
                yield tuple(row)
            if len(rows) < batch:
                return
            seq = int(rows[-1][0]) + 1

    async def seq_below_chain(self) -> Verification | None:
        """The failed verification naming the lowest row stored below seq 1, None when there is none (the
        chain starts at seq 1: such a row is in no walk of it, yet a request's history would show it)."""
        c = t.audit_events.c
        async with self.engine.connect() as conn:
            low = (await conn.execute(select(func.min(c.seq)))).scalar()
        if low is None or int(low) >= 1:
            return None
        return Verification(False, 0, GENESIS, int(low), "an event is stored below seq 1, outside the chain (it "
                            "starts at seq 1)")

    async def ts_before(self, first_seq: int) -> str:
        """The time of the event before ``first_seq`` ("" from the chain's start, or when there is none): a check
        of the chain from the middle compares the first event it meets with it, as a walk from the start would."""
        if first_seq <= 1:
            return ""
        c = t.audit_events.c
        async with self.engine.connect() as conn:
            ts = (await conn.execute(select(c.ts).where(c.seq == first_seq - 1))).scalar()
        return str(ts) if ts is not None else ""

    async def verify_audit(self, *, first_seq: int = 1, last_seq: int | None = None,
                           prev_hash: str = GENESIS) -> Verification:
        """Verify the chain (or the part from ``first_seq``) straight from the stored columns.

        A row below seq 1 is outside the chain, which the walk from seq 1 never meets: it is named first."""
        outside = await self.seq_below_chain()
        if outside is not None:
            return outside
        verifier = ChainVerifier(prev_hash=prev_hash, first_seq=first_seq, prev_ts=await self.ts_before(first_seq))
        async for row in self.audit_rows(first_seq=first_seq, last_seq=last_seq):
            if not verifier.stored(row):
                break
            s_, ts, type_, actor, rid, profile, data, prev, digest = row
            body = canonical_body(s_, ts, type_, actor, rid, profile, data, prev)
            if not verifier.feed_canonical(s_, prev, digest, body, ts, data):
                break
        return verifier.result()
