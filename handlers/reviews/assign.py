"""Items of a campaign: one per membership in the snapshot, each with its reviewer and a recommendation.

The reviewer follows the review's ``reviewer`` rule; a service account is reviewed by its owner,
never by a manager. When that person is missing, inactive or the person reviewed, the
``fallback`` rule answers, and when it cannot either, the security team. An item nobody can
review makes the snapshot invalid: nothing starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from handlers.context import Deps
from handlers.groups import GroupKey
from handlers.policy import Profile, Step
from handlers.ports import Member
from handlers.records import HOLDING_STATES, RequestRecord
from handlers.reviews.model import Review
from handlers.reviews.records import ItemRecord
from handlers.reviews.snapshot import Snapshot


@dataclass
class Plan:
    items: list[ItemRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def _person_ok(deps: Deps, email: str | None, member: Member, what: str) -> tuple[str | None, str]:
    if not email:
        return None, f"no {what}"
    email = email.lower()
    if email == member.email:
        return None, f"the {what} is the person reviewed"
    person = await deps.person(email)
    if person is None:
        return None, f"the {what} {email} is unknown"
    if not person.active:
        return None, f"the {what} {email} is inactive"
    return email, what


async def _by_rule(deps: Deps, rule: Step, member: Member, profile: Profile) -> tuple[str | None, str]:
    if rule.kind == "manager":
        if member.kind == "service":
            return None, "a service account is never reviewed by a manager"
        return await _person_ok(deps, member.manager, member, "manager")
    if rule.kind == "owner":
        return await _person_ok(deps, profile.owner, member, "owner")
    if rule.kind == "user":
        return await _person_ok(deps, rule.user, member, f"user {rule.user}")
    group = rule.group or ""
    for email in deps.policy.approver_groups.get(group, ()):
        found, _ = await _person_ok(deps, email, member, "member")
        if found:
            return f"group:{group}", f"any_of {group}"
    return None, f"nobody active in {group} but the person reviewed"


async def reviewer_for(deps: Deps, review: Review, member: Member, profile: Profile) -> tuple[str | None, str]:
    """(reviewer, why) — the reviewer is an email or ``group:<name>``; None when nobody can review."""
    if member.kind == "service":
        first, why = await _person_ok(deps, member.owner, member, "service owner")
    else:
        first, why = await _by_rule(deps, review.reviewer, member, profile)
    if first:
        return first, why
    tried = [why]
    found, how = await _by_rule(deps, review.fallback, member, profile)
    if found:
        return found, f"fallback {how} ({why})"
    tried.append(f"fallback: {how}")
    security = deps.policy.security_team
    if security and review.fallback != Step("any_of", group=security):
        found, how = await _by_rule(deps, Step("any_of", group=security), member, profile)
        if found:
            return found, f"security team ({'; '.join(tried)})"
        tried.append(f"security team: {how}")
    return None, "; ".join(tried)


def _holding(records: list[RequestRecord], ident: Callable[[str, str], GroupKey], provider: str, group: str,
             user: str) -> RequestRecord | None:
    """The grant behind ``user``'s membership of ``group``, however the policy named the group when it was made
    (by name or by id: matched by the group's resolved id, ``ident``)."""
    wanted = ident(provider, group)
    found = [r for r in records if r.requester == user and ident(r.provider, r.group) == wanted]
    return max(found, key=lambda r: (r.state == "active", r.id or 0), default=None)


def recommendation(review: Review, member: Member, now: datetime) -> tuple[str, str]:
    if not member.active:
        return "remove", "inactive at the identity provider"
    if review.inactive_days is not None:
        if member.last_sign_in is None:
            return "keep", "last sign-in unknown"
        idle = now - member.last_sign_in
        if idle > timedelta(days=review.inactive_days):
            return "remove", f"no sign-in for {idle.days} days"
        return "keep", f"signed in {idle.days} days ago"
    return "keep", ""


async def plan_items(deps: Deps, review: Review, snapshot: Snapshot, now: datetime,
                     holdings: list[RequestRecord]) -> Plan:
    """Validate the snapshot and turn it into numbered items grouped by reviewer."""
    plan = Plan()
    holding = [r for r in holdings if r.state in HOLDING_STATES]
    seen: set[tuple[str, str, str]] = set()
    drafts = []
    for group in snapshot.groups:
        profile = deps.policy.profile(group.profile)
        assert profile is not None
        for member in group.members:
            key = (group.provider, group.group, member.email)
            if key in seen:  # two profiles of one group: one membership, one item
                continue
            seen.add(key)
            if not member.found:
                plan.problems.append(f"{member.email} is in {group.provider}/{group.group} but unknown to the "
                                     "identity provider")
                continue
            reviewer, basis = await reviewer_for(deps, review, member, profile)
            if reviewer is None:
                plan.problems.append(f"{member.email} in {group.provider}/{group.group} has no reviewer ({basis})")
                continue
            record = _holding(holding, deps.groups.ident, group.provider, group.group, member.email)
            held_via = "standing" if record is None else (
                f"exception {record.ref}" if record.kind == "exception" else record.ref)
            advice, reason = recommendation(review, member, now)
            drafts.append(ItemRecord(
                campaign_id=0, number=0, user=member.email, profile=profile.id, provider=group.provider,
                group=group.group, held_via=held_via, reviewer=reviewer, reviewer_basis=basis[:200],
                recommendation=advice, recommendation_reason=reason[:300], name=member.name or member.email,
                title=member.title, department=member.department, kind=member.kind, active=member.active,
                last_sign_in=member.last_sign_in, request_id=record.id if record else None,
                expires_at=record.expires_at if record else None, since=record.started_at if record else None))
    drafts.sort(key=lambda i: (i.reviewer, i.profile, i.user))
    for number, item in enumerate(drafts, start=1):
        item.number = number
    plan.items = drafts
    return plan
