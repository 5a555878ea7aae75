"""Repository methods of access reviews, mixed into ``SqlRepository`` (one transaction's view)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from handlers.reviews.records import (
    BatchRecord,
    CampaignRecord,
    ItemRecord,
    ReviewDecisionRecord,
    ScheduleRecord,
    SignoffRecord,
    SnapshotRecord,
    UndoRecord,
)
from store import review_schema as rt
from store import schema as t

_CAMPAIGN = ("review", "title", "state", "started_at", "due_at", "started_by", "scheduled_for", "policy_version",
             "policy_sha256", "snapshot_sha256", "items", "closed_at", "signoff")
_ITEM = ("campaign_id", "number", "name", "title", "department", "kind", "active", "last_sign_in", "profile",
         "provider", "held_via", "request_id", "expires_at", "since", "reviewer", "reviewer_basis", "recommendation",
         "recommendation_reason", "state", "removed_at", "outcome")
_UNDO = ("campaign_id", "item", "requested_by", "reason", "requested_at", "approved_by", "approved_at")
# an item whose membership the latest closed review stands behind: kept, or removed and then restored by an
# undo two members of the security team agreed on (handlers/reviews/undo.py)
BACKED = ("kept", "restored")
ITEMS_NAMED = 500  # at most this many item numbers named in one statement (the rest: the campaign's whole)
_BATCH = ("opened_at", "opened_by", "reminded_at", "reminders", "escalated_at", "escalated_to",
          "escalation_opened_at")
_SCHEDULE = ("first_seen", "done_for", "pending_for", "attempts", "next_attempt_at", "lease_until", "last_error")


def _numbers(text: str | None) -> list[int] | None:
    return None if text is None else [int(n) for n in json.loads(text)]


def _campaign(row: Any) -> CampaignRecord:
    m = row._mapping
    asked = m["signoff_asked"]
    return CampaignRecord(id=m["id"], signoff_asked=None if asked is None else json.loads(asked),
                          **{k: m[k] for k in _CAMPAIGN})


def _campaign_row(record: CampaignRecord) -> dict[str, Any]:
    asked = None if record.signoff_asked is None else json.dumps(record.signoff_asked, sort_keys=True)
    return {**{k: getattr(record, k) for k in _CAMPAIGN}, "signoff_asked": asked}


def _item_row(item: ItemRecord) -> dict[str, Any]:
    return {**{k: getattr(item, k) for k in _ITEM}, "user_email": item.user, "group_name": item.group}


def _item(row: Any) -> ItemRecord:
    m = row._mapping
    return ItemRecord(id=m["id"], user=m["user_email"], group=m["group_name"], **{k: m[k] for k in _ITEM})


class ReviewRepositoryMixin:
    """Implements ``handlers.reviews.repository.ReviewRepository`` on ``self.conn``."""

    conn: AsyncConnection

    # -- campaigns --------------------------------------------------------------------------
    async def add_campaign(self, record: CampaignRecord) -> int:
        result = await self.conn.execute(insert(rt.review_campaigns).values(
            **_campaign_row(record)))
        record.id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return record.id

    async def save_campaign(self, record: CampaignRecord) -> None:
        await self.conn.execute(update(rt.review_campaigns).where(rt.review_campaigns.c.id == record.id)
                                .values(**_campaign_row(record)))

    async def get_campaign(self, campaign_id: int) -> CampaignRecord | None:
        row = (await self.conn.execute(
            select(rt.review_campaigns).where(rt.review_campaigns.c.id == campaign_id))).first()
        return _campaign(row) if row else None

    async def campaigns(self, *, review: str | None = None, states: Sequence[str] | None = None
                        ) -> list[CampaignRecord]:
        c = rt.review_campaigns.c
        q = select(rt.review_campaigns)
        if review is not None:
            q = q.where(c.review == review)
        if states is not None:
            q = q.where(c.state.in_(list(states)))
        return [_campaign(r) for r in (await self.conn.execute(q.order_by(c.id))).all()]

    async def campaign_for_schedule(self, review: str, scheduled_for: datetime) -> CampaignRecord | None:
        c = rt.review_campaigns.c
        row = (await self.conn.execute(select(rt.review_campaigns).where(
            c.review == review, c.scheduled_for == scheduled_for))).first()
        return _campaign(row) if row else None

    # -- items ------------------------------------------------------------------------------
    async def add_items(self, items: Sequence[ItemRecord]) -> None:
        rows = [_item_row(i) for i in items]
        for start in range(0, len(rows), 1000):
            await self.conn.execute(insert(rt.review_items), rows[start:start + 1000])

    async def items(self, campaign_id: int, *, reviewer: str | None = None, reviewers: Collection[str] | None = None,
                    user: str | None = None) -> list[ItemRecord]:
        """The campaign's items, in order: all of them, or those of ``reviewer``; with ``reviewers`` (and ``user``),
        those whose reviewer is one of ``reviewers`` or (``user``) whose person is ``user``: one reviewer's share of
        a campaign of thousands, read through the (campaign, reviewer) index instead of whole."""
        c = rt.review_items.c
        q = select(rt.review_items).where(c.campaign_id == campaign_id)
        if reviewer is not None:
            q = q.where(c.reviewer == reviewer)
        if reviewers is not None:
            q = q.where(or_(c.reviewer.in_(sorted(reviewers)), *([c.user_email == user] if user is not None else [])))
        return [_item(r) for r in (await self.conn.execute(q.order_by(c.number))).all()]

    async def save_item(self, item: ItemRecord) -> None:
        await self.conn.execute(update(rt.review_items).where(rt.review_items.c.id == item.id)
                                .values(**_item_row(item)))

    async def failed_items(self) -> list[ItemRecord]:
        c = rt.review_items.c
        q = select(rt.review_items).where(c.state == "failed", c.removed_at.is_(None)).order_by(c.campaign_id, c.number)
        return [_item(r) for r in (await self.conn.execute(q)).all()]

    async def mark_removed_late(self, item_id: int, removed_at: datetime) -> bool:
        c = rt.review_items.c
        result = await self.conn.execute(update(rt.review_items).where(c.id == item_id, c.removed_at.is_(None))
                                         .values(removed_at=removed_at))
        return bool(result.rowcount)

    # -- decisions --------------------------------------------------------------------------
    async def add_review_decision(self, decision: ReviewDecisionRecord) -> None:
        result = await self.conn.execute(insert(rt.review_decisions).values(
            campaign_id=decision.campaign_id, item=decision.item, decision=decision.decision,
            actor=decision.actor, comment=decision.comment, recommendation=decision.recommendation,
            decided_at=decision.decided_at))
        decision.id = int(result.inserted_primary_key[0])  # type: ignore[index]

    async def add_review_decisions(self, decisions: Sequence[ReviewDecisionRecord]) -> None:
        rows = [{"campaign_id": d.campaign_id, "item": d.item, "decision": d.decision, "actor": d.actor,
                 "comment": d.comment, "recommendation": d.recommendation, "decided_at": d.decided_at}
                for d in decisions]
        for start in range(0, len(rows), 1000):
            await self.conn.execute(insert(rt.review_decisions), rows[start:start + 1000])

    async def set_items_state(self, campaign_id: int, numbers: Sequence[int], state: str, outcome: str) -> None:
        c = rt.review_items.c
        for start in range(0, len(numbers), 500):
            await self.conn.execute(update(rt.review_items).where(
                c.campaign_id == campaign_id, c.number.in_(list(numbers[start:start + 500])))
                .values(state=state, outcome=outcome))

    async def review_decisions(self, campaign_id: int, items: Collection[int] | None = None
                               ) -> list[ReviewDecisionRecord]:
        """The campaign's decisions, oldest first: all, or (``items``, at most :data:`ITEMS_NAMED`) those on these
        items."""
        c = rt.review_decisions.c
        q = select(rt.review_decisions).where(c.campaign_id == campaign_id)
        if items is not None:
            q = q.where(c.item.in_(sorted(items)))
        rows = (await self.conn.execute(q.order_by(c.id))).all()
        return [ReviewDecisionRecord(id=m["id"], campaign_id=m["campaign_id"], item=m["item"],
                                     decision=m["decision"], actor=m["actor"], comment=m["comment"],
                                     recommendation=m["recommendation"], decided_at=m["decided_at"])
                for m in (r._mapping for r in rows)]

    async def final_decisions(self, campaign_id: int, items: Collection[int] | None = None
                              ) -> dict[int, ReviewDecisionRecord]:
        """Item number → the decision that counts (the last one made); with ``items``, for those items alone (all of
        the campaign's when they are more than :data:`ITEMS_NAMED`: a statement has a bound on its parameters)."""
        named = items if items is not None and len(items) <= ITEMS_NAMED else None
        return {d.item: d for d in await self.review_decisions(campaign_id, named)}

    # -- snapshots --------------------------------------------------------------------------
    async def add_snapshot(self, snapshot: SnapshotRecord) -> None:
        await self.conn.execute(insert(rt.review_snapshots).values(
            campaign_id=snapshot.campaign_id, review=snapshot.review, taken_at=snapshot.taken_at,
            sha256=snapshot.sha256, body=snapshot.body))

    async def snapshot(self, campaign_id: int) -> SnapshotRecord | None:
        c = rt.review_snapshots.c
        row = (await self.conn.execute(select(rt.review_snapshots).where(c.campaign_id == campaign_id))).first()
        if row is None:
            return None
        m = row._mapping
        return SnapshotRecord(campaign_id=m["campaign_id"], review=m["review"], taken_at=m["taken_at"],
                              sha256=m["sha256"], body=m["body"])

    async def snapshots(self) -> list[SnapshotRecord]:
        c = rt.review_snapshots.c
        rows = (await self.conn.execute(select(rt.review_snapshots).order_by(c.taken_at, c.campaign_id))).all()
        return [SnapshotRecord(campaign_id=m["campaign_id"], review=m["review"], taken_at=m["taken_at"],
                               sha256=m["sha256"], body=m["body"]) for m in (r._mapping for r in rows)]

    # -- schedules --------------------------------------------------------------------------
    async def get_schedule(self, review: str) -> ScheduleRecord | None:
        c = rt.review_schedules.c
        row = (await self.conn.execute(select(rt.review_schedules).where(c.review == review))).first()
        return ScheduleRecord(review=row._mapping["review"], **{k: row._mapping[k] for k in _SCHEDULE}) \
            if row else None

    async def save_schedule(self, record: ScheduleRecord) -> None:
        values = {k: getattr(record, k) for k in _SCHEDULE}
        c = rt.review_schedules.c
        exists = (await self.conn.execute(select(c.review).where(c.review == record.review))).first()
        if exists:
            await self.conn.execute(update(rt.review_schedules).where(c.review == record.review).values(**values))
        else:
            await self.conn.execute(insert(rt.review_schedules).values(review=record.review, **values))

    async def policy_loaded_at(self, sha256: str) -> datetime | None:
        c = t.policy_versions.c
        return (await self.conn.execute(select(c.loaded_at).where(c.sha256 == sha256))).scalar()

    async def closed_by(self, ref: str) -> str | None:
        """Who closed campaign ``ref``: the actor of its first ``review.signoff_requested``, else the ``closed_by``
        of the first default decision its close recorded (None before either is recorded, or when the sweep
        closed it). Read from the audit chain, which the serving role cannot rewrite."""
        c = t.audit_events.c
        q = (select(c.type, c.actor, c.data)
             .where(c.type.in_(("review.signoff_requested", "review.decided")),
                    c.data.contains(f'"{ref}"', autoescape=True)).order_by(c.seq))
        defaulted = None
        for type_, actor, raw in (await self.conn.execute(q)).all():
            data = json.loads(raw)
            if data.get("review_id") != ref:
                continue
            if type_ == "review.signoff_requested":
                return str(actor)
            if defaulted is None and actor == "system" and isinstance(data.get("closed_by"), str):
                defaulted = data["closed_by"]
        return defaulted

    async def chain_final_decisions(self, ref: str) -> dict[int, ReviewDecisionRecord]:
        """Item number → the last ``review.decided`` the audit chain holds for campaign ``ref``: who decided each
        item as the record the serving role cannot rewrite says it (``final_decisions`` reads the rows)."""
        c = t.audit_events.c
        q = (select(c.actor, c.ts, c.data).where(c.type == "review.decided",
                                                 c.data.contains(f'"{ref}"', autoescape=True)).order_by(c.seq))
        found: dict[int, ReviewDecisionRecord] = {}
        for actor, ts, raw in (await self.conn.execute(q)).all():
            data = json.loads(raw)
            item = data.get("item")
            if data.get("review_id") == ref and isinstance(item, int) and not isinstance(item, bool):
                found[item] = ReviewDecisionRecord(campaign_id=0, item=item, decision=str(data.get("decision")),
                                                   actor=str(actor), decided_at=datetime.fromisoformat(ts),
                                                   comment=data.get("comment"))
        return found

    # -- batches and sign-offs ----------------------------------------------------------------
    async def batches(self, campaign_id: int) -> dict[str, BatchRecord]:
        c = rt.review_batches.c
        rows = (await self.conn.execute(select(rt.review_batches).where(c.campaign_id == campaign_id))).all()
        return {m["reviewer"]: BatchRecord(campaign_id=campaign_id, reviewer=m["reviewer"],
                                           escalated_items=_numbers(m["escalated_items"]),
                                           **{k: m[k] for k in _BATCH}) for m in (r._mapping for r in rows)}

    async def save_batch(self, batch: BatchRecord) -> None:
        c = rt.review_batches.c
        values = {k: getattr(batch, k) for k in _BATCH}
        values["escalated_items"] = None if batch.escalated_items is None else json.dumps(batch.escalated_items)
        where = (c.campaign_id == batch.campaign_id) & (c.reviewer == batch.reviewer)
        if (await self.conn.execute(select(c.reviewer).where(where))).first():
            await self.conn.execute(update(rt.review_batches).where(where).values(**values))
        else:
            await self.conn.execute(insert(rt.review_batches).values(
                campaign_id=batch.campaign_id, reviewer=batch.reviewer, **values))

    async def add_signoff(self, record: SignoffRecord) -> None:
        await self.conn.execute(insert(rt.review_signoffs).values(
            campaign_id=record.campaign_id, step=record.step, approver=record.approver, decision=record.decision,
            comment=record.comment, decided_at=record.decided_at))

    async def signoffs(self, campaign_id: int) -> list[SignoffRecord]:
        c = rt.review_signoffs.c
        rows = (await self.conn.execute(select(rt.review_signoffs).where(c.campaign_id == campaign_id)
                                        .order_by(c.id))).all()
        return [SignoffRecord(campaign_id=m["campaign_id"], step=m["step"], approver=m["approver"],
                              decision=m["decision"], decided_at=m["decided_at"], comment=m["comment"])
                for m in (r._mapping for r in rows)]

    async def add_undo(self, record: UndoRecord) -> None:
        result = await self.conn.execute(insert(rt.review_undos).values(**{k: getattr(record, k) for k in _UNDO}))
        record.id = int(result.inserted_primary_key[0])  # type: ignore[index]

    async def undos(self, campaign_id: int) -> list[UndoRecord]:
        c = rt.review_undos.c
        rows = (await self.conn.execute(select(rt.review_undos).where(c.campaign_id == campaign_id)
                                        .order_by(c.id))).all()
        return [UndoRecord(id=m["id"], **{k: m[k] for k in _UNDO}) for m in (r._mapping for r in rows)]

    async def save_undo(self, record: UndoRecord) -> None:
        await self.conn.execute(update(rt.review_undos).where(rt.review_undos.c.id == record.id)
                                .values(**{k: getattr(record, k) for k in _UNDO}))

    async def _latest_closed_states(self, where: Any = None) -> dict[tuple[str, str, str], str]:
        i, c = rt.review_items.c, rt.review_campaigns.c
        q = (select(i.provider, i.group_name, i.user_email, i.state)
             .select_from(rt.review_items.join(rt.review_campaigns, c.id == i.campaign_id))
             .where(c.state == "closed").order_by(c.closed_at, c.id))
        if where is not None:
            q = q.where(where)
        latest: dict[tuple[str, str, str], str] = {}
        for row in (await self.conn.execute(q)).all():
            latest[(row[0], row[1], row[2].lower())] = row[3]
        return latest

    async def latest_closed_item_state(self, provider: str, group: str, email: str) -> str | None:
        i = rt.review_items.c
        found = await self._latest_closed_states((i.provider == provider) & (i.group_name == group)
                                                 & (i.user_email == email.lower()))
        return found.get((provider, group, email.lower()))

    async def kept_memberships(self) -> set[tuple[str, str, str]]:
        return {key for key, state in (await self._latest_closed_states()).items() if state in BACKED}

    async def kept_standing(self) -> dict[tuple[str, str, str], int]:
        """Each membership the latest closed review to have reviewed it kept as a standing one (no grant stood
        behind the item) or restored (an undo adds it back as a standing one), with that review's id."""
        i, c = rt.review_items.c, rt.review_campaigns.c
        q = (select(i.provider, i.group_name, i.user_email, i.state, i.request_id, c.id)
             .select_from(rt.review_items.join(rt.review_campaigns, c.id == i.campaign_id))
             .where(c.state == "closed").order_by(c.closed_at, c.id))
        latest: dict[tuple[str, str, str], tuple[str, int | None, int]] = {}
        for row in (await self.conn.execute(q)).all():
            latest[(row[0], row[1], row[2].lower())] = (row[3], row[4], row[5])
        return {key: campaign for key, (state, request, campaign) in latest.items()
                if state == "restored" or (state in BACKED and request is None)}
