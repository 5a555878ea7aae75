"""The certification's rows against the audit chain (SPEC §7, docs/audit-integrity.md).

A certification is built from the store's review tables, which the serving role may UPDATE; the chain is the
record it may not rewrite. Before a certification is written, every row it shows is held against the
campaign's ``review.*`` events, as an evidence export holds requests against theirs
(:mod:`handlers.evidence_check`): the campaign's start (who, when, how many items) and snapshot hash, each
item's membership against the snapshot, every decision (item, decision, decider, time, comment, and the item it
names), every sign-off signature, which items went and, for a closed campaign, each item's outcome. The first
disagreement is named; None when there is none. An evidence pack holds the campaigns of its reviews.csv and
review_items.csv against the chain with the same function (:mod:`handlers.evidence_review_check`).

Times: a stored time matches the event when it equals ``data.as_of`` or lies within two seconds of ``ts``
(:func:`handlers.evidence_check.time_matches`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from handlers.audit import format_ts
from handlers.evidence_check import time_matches
from handlers.reviews.records import (
    CLOSED,
    OPEN,
    CampaignRecord,
    ItemRecord,
    ReviewDecisionRecord,
    SignoffRecord,
    SnapshotRecord,
)

GONE, KEPT, REMOVED, FAILED, NOT_REMOVED, RESTORED = "gone", "kept", "removed", "failed", "not removed", "restored"
# the event types :meth:`ChainReview.feed` reads: a reader may fetch only these
CHAIN_TYPES = frozenset({"review.started", "review.decided", "review.signoff", "review.signoff_requested",
                         "review.item_gone", "review.removal_skipped", "review.undone", "review.closed"})


@dataclass
class StoredCampaign:
    """One campaign as the store holds it: what a certification or an evidence pack shows, read together."""

    campaign: CampaignRecord
    items: list[ItemRecord]
    decisions: list[ReviewDecisionRecord]
    signoffs: list[SignoffRecord]
    snapshot: SnapshotRecord | None


@dataclass
class ChainReview:
    """What the chain says about one campaign, gathered from its ``review.*`` events in order."""

    started: dict[str, Any] | None = None
    decided: list[dict[str, Any]] = field(default_factory=list)  # {item, decision, actor, ts, as_of, comment, data}
    signoffs: list[dict[str, Any]] = field(default_factory=list)  # {step, decision, actor, ts, as_of, comment}
    gone: set[int] = field(default_factory=set)
    skipped: dict[int, str] = field(default_factory=dict)  # item → reason
    undone: dict[int, str] = field(default_factory=dict)  # item → the outcome the undo wrote
    closed: dict[str, Any] | None = None  # review.closed data
    closed_ts: str | None = None  # when review.closed was recorded (the later of ts and as_of)
    last_act: str | None = None  # the latest decision or sign-off event (the earlier of its ts and as_of)

    def feed(self, type_: str, actor: str, ts: str, data: dict[str, Any]) -> None:
        as_of = data.get("as_of") if isinstance(data.get("as_of"), str) else None
        if type_ in ("review.decided", "review.signoff", "review.signoff_requested"):
            self.last_act = max(self.last_act or "", min(ts, as_of or ts))  # one format: text order is time order
        if type_ == "review.started":
            self.started = {**data, "actor": actor, "ts": ts}
        elif type_ == "review.decided" and isinstance(data.get("item"), int):
            self.decided.append({"item": data["item"], "decision": data.get("decision"), "actor": actor, "ts": ts,
                                 "as_of": data.get("as_of"), "comment": data.get("comment"), "data": data})
        elif type_ == "review.signoff":
            self.signoffs.append({"step": data.get("step"), "decision": data.get("decision"), "actor": actor,
                                  "ts": ts, "as_of": data.get("as_of"), "comment": data.get("comment")})
        elif type_ == "review.item_gone" and isinstance(data.get("item"), int):
            self.gone.add(data["item"])
        elif type_ == "review.removal_skipped" and isinstance(data.get("item"), int):
            self.skipped[data["item"]] = str(data.get("reason") or "")
        elif type_ == "review.undone" and isinstance(data.get("item"), int):
            self.undone[data["item"]] = f"re-added: undo by {data.get('requested_by')}, approved by {actor}"
        elif type_ == "review.closed":
            self.closed, self.closed_ts = data, max(ts, as_of or ts)


def _same(a: Any, b: Any) -> bool:
    return (a or None) == (b or None)


def _decision_row(d: ReviewDecisionRecord) -> str:
    return (f"item {d.item} {d.decision} by {d.actor} at {format_ts(d.decided_at)}"
            + (f" ({d.comment!r})" if d.comment else ""))


def _decision_event(e: dict[str, Any]) -> str:
    return (f"item {e['item']} {e['decision']} by {e['actor']} at {e['as_of'] or e['ts']}"
            + (f" ({e['comment']!r})" if e["comment"] else ""))


def _expected(item: ItemRecord, chain: ChainReview, final: dict[int, dict[str, Any]]
              ) -> tuple[str, tuple[str, ...] | None]:
    """A closed campaign's item: the state the chain implies, and the outcomes it may show (one ending in ``…``
    is a prefix)."""
    closed = chain.closed or {}
    failures = {f.get("item"): f.get("correlation_id") for f in closed.get("failures") or () if isinstance(f, dict)}
    if item.number in chain.gone:
        return GONE, (f"left {item.group} before a decision",)
    if item.number in chain.undone:
        return RESTORED, (chain.undone[item.number],)
    d = final.get(item.number)
    if d is None:
        return NOT_REMOVED, ("undecided at the close: not removed",)
    if d["decision"] == "keep":
        return KEPT, ("kept",)
    if closed.get("signoff") == "denied":
        return NOT_REMOVED, ("sign-off denied: not removed",)
    if closed.get("signoff") == "failed":
        return NOT_REMOVED, ("sign-off failed: not removed",)
    if item.number in chain.skipped:
        return NOT_REMOVED, (chain.skipped[item.number], f"left {item.group} before the removal: nothing to remove")
    if item.number in failures:
        return FAILED, (f"failed at close (correlation id {failures[item.number]})…",)
    return REMOVED, ("removed", "a grant covers it: not removed")


def _outcome_ok(outcome: str | None, allowed: tuple[str, ...] | None) -> bool:
    if allowed is None:
        return True
    for text in allowed:
        if text.endswith("…") and (outcome or "").startswith(text[:-1]):
            return True
        if outcome == text:
            return True
    return False


def _outside_snapshot(ref: str, items: list[ItemRecord], snapshot: SnapshotRecord) -> str | None:
    """The first item whose membership (user, profile, provider, group) the snapshot does not list, or None: the
    snapshot's hash is in review.started, so an item rewritten to another person or group is seen here."""
    try:
        groups = json.loads(snapshot.body).get("groups") or []
        listed = {(m.get("email"), g.get("profile"), g.get("provider"), g.get("group"))
                  for g in groups for m in g.get("members") or ()}
    except (ValueError, AttributeError, TypeError):
        return f"{ref}: the stored snapshot is not the JSON review.started hashed"
    for item in items:
        if (item.user, item.profile, item.provider, item.group) not in listed:
            return (f"{ref}: item {item.number} in the database is {item.user} in {item.provider}/{item.group} "
                    f"({item.profile}), which the campaign's snapshot does not list")
    return None


def _at(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _closed_in_time(campaign: CampaignRecord, chain: ChainReview) -> bool:
    """The close (``closed_at``) came after every decision and sign-off the chain records for the campaign (and
    after its start), and no later than ``review.closed`` (the removals may run in between, so the two need not
    be equal). Two seconds of slack either way, as :func:`handlers.evidence_check.time_matches` allows."""
    recorded, last = _at(chain.closed_ts), _at(chain.last_act)
    if campaign.closed_at is None or recorded is None:
        return campaign.closed_at is None and not chain.closed_ts
    slack = timedelta(seconds=2)
    earliest = max(campaign.started_at, last - slack) if last is not None else campaign.started_at
    return earliest <= campaign.closed_at <= recorded + slack


def disagreement(campaign: CampaignRecord, items: list[ItemRecord], decisions: list[ReviewDecisionRecord],
                 signoffs: list[SignoffRecord], snapshot: SnapshotRecord | None, chain: ChainReview) -> str | None:
    """The first way the stored campaign contradicts its ``review.*`` events, or None."""
    ref = campaign.ref
    started = chain.started
    if started is None:
        return f"{ref}: the campaign is in the database but the audit chain has no review.started for it"
    if started.get("snapshot_sha256") != campaign.snapshot_sha256:
        return (f"{ref}: snapshot sha256 in the database is {campaign.snapshot_sha256}, the audit chain says "
                f"{started.get('snapshot_sha256')}")
    if snapshot is None:  # deleting it would switch off the checks below
        return f"{ref}: the snapshot review.started hashed ({campaign.snapshot_sha256}) is not in the database"
    if snapshot is not None and hashlib.sha256(snapshot.body.encode("utf-8")).hexdigest() != campaign.snapshot_sha256:
        return (f"{ref}: the stored snapshot does not hash to {campaign.snapshot_sha256}, the hash review.started "
                "recorded")
    if snapshot is not None:
        problem = _outside_snapshot(ref, items, snapshot)
        if problem:
            return problem
    if started.get("review") != campaign.review or started.get("actor") != campaign.started_by:
        return (f"{ref}: started as review {campaign.review!r} by {campaign.started_by} in the database, the audit "
                f"chain says review {started.get('review')!r} by {started.get('actor')}")
    if started.get("items") != len(items) or campaign.items != len(items):
        return (f"{ref}: the database holds {len(items)} items (the campaign says {campaign.items}), review.started "
                f"says {started.get('items')}")
    if "due_at" in started and started.get("due_at") != format_ts(campaign.due_at):
        return (f"{ref}: due at {format_ts(campaign.due_at)} in the database, review.started says "
                f"{started.get('due_at')}")
    if "policy_sha256" in started and (started.get("policy_sha256") != campaign.policy_sha256
                                       or started.get("policy_version") != campaign.policy_version):
        return (f"{ref}: policy {campaign.policy_version} ({campaign.policy_sha256[:12]}) in the database, "
                f"review.started says {started.get('policy_version')} ({str(started.get('policy_sha256'))[:12]})")
    if not time_matches(campaign.started_at, started.get("ts"), started.get("as_of")):
        return (f"{ref}: started at {format_ts(campaign.started_at)} in the database, review.started was recorded at "
                f"{started.get('as_of') or started.get('ts')}")
    by_number = {i.number: i for i in items}
    for n, (row, event) in enumerate(zip(decisions, chain.decided, strict=False), start=1):
        same = (row.item == event["item"] and row.decision == event["decision"] and row.actor == event["actor"]
                and _same(row.comment, event["comment"])
                and time_matches(row.decided_at, event["ts"], event["as_of"]))
        if not same:
            return (f"{ref}: decision {n} in the database is {_decision_row(row)}, the audit chain says "
                    f"{_decision_event(event)}")
        item, data = by_number.get(row.item), event["data"]
        if item is None:
            return f"{ref}: decision {n} names item {row.item}, which the database does not hold"
        for name in ("user", "profile", "recommendation"):
            if name in data and not _same(getattr(item, name), data.get(name)):
                return (f"{ref}: item {item.number} {name} in the database is {getattr(item, name)!r}, "
                        f"review.decided says {data.get(name)!r}")
    if len(decisions) != len(chain.decided):
        return f"{ref}: the database holds {len(decisions)} decisions, the audit chain {len(chain.decided)}"
    for n, (row, event) in enumerate(zip(signoffs, chain.signoffs, strict=False), start=1):
        if not (row.step + 1 == event["step"] and row.decision == event["decision"] and row.approver == event["actor"]
                and _same(row.comment, event["comment"]) and time_matches(row.decided_at, event["ts"],
                                                                            event["as_of"])):
            return (f"{ref}: sign-off {n} in the database is step {row.step + 1} {row.decision} by {row.approver} "
                    f"at {format_ts(row.decided_at)}, the audit chain says step {event['step']} {event['decision']} "
                    f"by {event['actor']} at {event['as_of'] or event['ts']}")
    if len(signoffs) != len(chain.signoffs):
        return f"{ref}: the database holds {len(signoffs)} sign-off signatures, the audit chain {len(chain.signoffs)}"
    for item in items:
        if (item.state == GONE) != (item.number in chain.gone):
            return (f"{ref}: item {item.number} is {item.state} in the database, the audit chain "
                    + ("records it gone" if item.number in chain.gone else "never records it gone"))
    if (campaign.state == CLOSED) != (chain.closed is not None):
        return (f"{ref}: the campaign is {campaign.state} in the database, the audit chain "
                + ("records its close" if chain.closed is not None else "has no review.closed for it"))
    if chain.closed is not None and not _closed_in_time(campaign, chain):
        return (f"{ref}: closed at {format_ts(campaign.closed_at) if campaign.closed_at else 'no time'} in the "
                f"database; the audit chain puts the close after {chain.last_act or 'the start'} and no later than "
                f"review.closed ({chain.closed_ts})")
    if chain.closed is not None and not _same(chain.closed.get("signoff"), campaign.signoff):
        return (f"{ref}: sign-off {campaign.signoff!r} in the database, review.closed says "
                f"{chain.closed.get('signoff')!r}")
    final = {e["item"]: e for e in chain.decided}
    for item in items:
        if item.state == GONE:
            continue
        if campaign.state == OPEN:
            if item.state != OPEN or item.outcome:
                return (f"{ref}: item {item.number} of an open campaign is {item.state} "
                        f"({item.outcome!r}) in the database; nothing has happened to it in the audit chain")
        elif campaign.state == CLOSED:
            state, allowed = _expected(item, chain, final)
            if item.state != state or not _outcome_ok(item.outcome, allowed):
                return (f"{ref}: item {item.number} ({item.user}) is {item.state} ({item.outcome!r}) in the "
                        f"database, the audit chain says {state}")
    return None
