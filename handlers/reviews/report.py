"""The certification of a campaign (SPEC §7) as a view-model: scope, snapshot hash, the audit chain
head it was made at, and per reviewer their items, decisions, times and comments.

The rows come from the store and are held against the campaign's ``review.*`` events
(:mod:`handlers.reviews.report_check`): ``disagreement`` names the first row the chain contradicts, and
``chain_problem`` why the chain itself does not verify; either one means no certification may be written. Only a
closed campaign is certified (``is_certification``); before that the view is an interim status."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from handlers.audit import format_ts
from handlers.repository import Store
from handlers.reviews.records import CLOSED
from handlers.reviews.report_check import ChainReview, disagreement
from handlers.reviews.repository import ReviewRepository


@dataclass(frozen=True)
class ItemLine:
    number: int
    user: str
    name: str
    profile: str
    group: str
    held_via: str
    recommendation: str
    decision: str  # keep | remove | "" while undecided
    decided_by: str
    decided_at: str
    comment: str
    outcome: str


@dataclass(frozen=True)
class ReviewerSection:
    reviewer: str
    items: tuple[ItemLine, ...]
    decided: int
    first_decision: str
    last_decision: str


@dataclass(frozen=True)
class CertificationView:
    review_id: str
    review: str
    title: str
    state: str
    started_at: str
    started_by: str
    due_at: str
    closed_at: str
    policy_version: str
    policy_sha256: str
    snapshot_sha256: str
    scope: tuple[tuple[str, str, str, int], ...]  # (profile, provider, group, members)
    chain_head: str
    chain_events: int
    chain_verified: bool
    generated_at: str
    reviewers: tuple[ReviewerSection, ...]
    removals: tuple[ItemLine, ...]
    items: int
    decided: int
    signoff: str = ""  # the removal list's sign-off: who approved or denied it and why, or why it failed
    disagreement: str = ""  # the first row the audit chain contradicts ("" when none)
    chain_problem: str = ""  # why the audit chain does not verify ("" when it does)

    @property
    def is_certification(self) -> bool:
        """Only a closed campaign is certified: before the close decisions can change and nothing has an outcome."""
        return self.state == CLOSED

    @property
    def heading(self) -> str:
        if self.is_certification:
            return f"Access review certification — {self.review_id}"
        return f"Interim status — not a certification — {self.review_id} ({self.state})"


async def certification(store: Store, campaign_id: int, now: datetime) -> CertificationView | None:
    async with store.read() as raw:
        repo = cast(ReviewRepository, raw)
        campaign = await repo.get_campaign(campaign_id)
        if campaign is None:
            return None
        items = await repo.items(campaign_id)
        decisions = await repo.review_decisions(campaign_id)
        snapshot = await repo.snapshot(campaign_id)
        signoffs = await repo.signoffs(campaign_id)
    chain = await store.verify_audit()
    rule = None
    stood_in: dict[int, list[str]] = {}  # step -> the approvers the security team signed instead of
    told = ChainReview()  # what the chain says about the campaign, to hold the rows against
    async for event in store.audit_events():  # type: ignore[attr-defined]
        data = event.data if isinstance(event.data, dict) else {}
        if data.get("review_id") != campaign.ref:
            continue
        told.feed(event.type, event.actor, event.ts, data)
        if event.type == "review.closed" and campaign.signoff == "failed":
            rule = data.get("rule")
        elif event.type == "review.signoff_requested" and data.get("instead_of"):
            stood_in[int(data.get("step") or 1)] = [str(x) for x in data["instead_of"]]
    problem = disagreement(campaign, items, decisions, signoffs, snapshot, told)
    broken = "" if chain.ok else (f"event {chain.bad_seq}: {chain.reason}" if chain.bad_seq else chain.reason
                                  or "it does not verify")
    final = {d.item: d for d in decisions}
    times: dict[int, list[datetime]] = defaultdict(list)
    for d in decisions:
        times[d.item].append(d.decided_at)
    scope: list[tuple[str, str, str, int]] = []
    if snapshot is not None:
        for group in json.loads(snapshot.body).get("groups", []):
            scope.append((group["profile"], group["provider"], group["group"], len(group["members"])))
    by_reviewer: dict[str, list[ItemLine]] = defaultdict(list)
    stamps: dict[str, list[datetime]] = defaultdict(list)
    for item in items:
        d = final.get(item.number)
        line = ItemLine(number=item.number, user=item.user, name=item.name, profile=item.profile, group=item.group,
                        held_via=item.held_via, recommendation=item.recommendation,
                        decision=d.decision if d else "", decided_by=d.actor if d else "",
                        decided_at=format_ts(d.decided_at) if d else "", comment=(d.comment or "") if d else "",
                        outcome=item.outcome or item.state)
        by_reviewer[item.reviewer].append(line)
        stamps[item.reviewer] += times.get(item.number, [])
    sections = tuple(ReviewerSection(
        reviewer=reviewer, items=tuple(lines), decided=sum(1 for x in lines if x.decision),
        first_decision=format_ts(min(stamps[reviewer])) if stamps[reviewer] else "",
        last_decision=format_ts(max(stamps[reviewer])) if stamps[reviewer] else "")
        for reviewer, lines in sorted(by_reviewer.items()))
    return CertificationView(
        review_id=campaign.ref, review=campaign.review, title=campaign.title, state=campaign.state,
        started_at=format_ts(campaign.started_at), started_by=campaign.started_by, due_at=format_ts(campaign.due_at),
        closed_at=format_ts(campaign.closed_at) if campaign.closed_at else "", policy_version=campaign.policy_version,
        policy_sha256=campaign.policy_sha256, snapshot_sha256=campaign.snapshot_sha256, scope=tuple(scope),
        chain_head=chain.head_hash, chain_events=chain.count, chain_verified=chain.ok, generated_at=format_ts(now),
        reviewers=sections, removals=tuple(x for s in sections for x in s.items if x.decision == "remove"),
        items=len(items), decided=len(final), signoff=_signoff_line(campaign.signoff, signoffs, rule, stood_in),
        disagreement=problem or "", chain_problem=broken)


def _signoff_line(state: str | None, signoffs: list, rule: str | None,
                  stood_in: dict[int, list[str]] | None = None) -> str:
    """What happened to the removal list's sign-off, in one line (a step the security team signed because
    every approver it names had their own access on the list says whom it stood in for)."""
    if not state:
        return ""
    who = "; ".join(f"step {s.step + 1}: {s.decision} by {s.approver} at {format_ts(s.decided_at)}"
                    + (f" ({s.comment})" if s.comment else "") for s in signoffs)
    for step, named in sorted((stood_in or {}).items()):
        who += (f"; step {step} went to the security team instead of {', '.join(named)}, whose own access "
                "was on the list")
    who = who.removeprefix("; ")
    if state == "failed":
        return "FAILED, nothing removed" + (f": {rule}" if rule else "") + (f"; signed before: {who}" if who else "")
    if state == "denied":
        return f"DENIED, nothing removed: {who}"
    if state == "pending":
        return "waiting" + (f"; signed so far: {who}" if who else "")
    return f"{state}: {who}" if who else state
