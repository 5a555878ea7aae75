"""``drift accept D-n for <duration> because <text>`` (security team, SPEC §3.6).

The member of a drift finding becomes the requester of an exception request for the profile that
manages the group, filed by the security team member (``request.submitted`` {kind: exception,
submitted_by, drift_id}); the filer counts as a requester, so they cannot approve it. It follows the
profile's exception chain (``exception.approval``), within ``exception.max_duration``, like any
exception. What the decision does is in :mod:`handlers.compliance.accept_links`; an accept still
undecided ``safety.drift_sla`` after it was filed is withdrawn by the sweep and the member removed
(:mod:`handlers.compliance.settle`).

Refusals name their rule: ``security-only``, ``reason``, ``duration``, ``duration>max``, ``not-found``,
``resolved``, ``not-a-member``, ``no-profile``, ``ambiguous-profile``, ``exception: not allowed``,
``inactive``, ``gone``, ``accept-pending``, ``removing``, ``already-pending``, ``already-active``,
``ticket``, ``justification``, a chain step that cannot be satisfied, ``provider``.
"""

from __future__ import annotations

from collections.abc import Callable

from handlers.approvals import note_asked
from handlers.chains import first_unsatisfiable, resolve_chain
from handlers.compliance.accept_links import accept_state
from handlers.compliance.findings import (
    accept_key,
    drift_ref,
    remove_key,
    request_key,
    resolve_finding,
    tell_outcome,
)
from handlers.context import SYSTEM, Deps
from handlers.durations import format_duration
from handlers.grammar import RequestAccess, find_ticket
from handlers.groups import GroupKey
from handlers.policy import Policy, Profile
from handlers.ports import Notice
from handlers.records import HOLDING_STATES, PENDING, DriftRecord, RequestRecord
from handlers.requests import _fields
from handlers.views import Reply, refused


def profile_for(policy: Policy, finding: DriftRecord,
                ident: Callable[[str, str], GroupKey]) -> tuple[Profile | None, str | None]:
    """The profile whose group the finding is about, or (None, the rule that refuses). The groups are matched by
    their resolved id (``ident``): a finding made while the policy named the group by name is about the profile
    that names it by id now, and the reverse."""
    wanted = ident(finding.provider, finding.group)
    managing = [p for p in policy.profiles if ident(p.provider, p.group) == wanted]
    if not managing:
        return None, "no-profile"
    with_chain = [p for p in managing if p.exception is not None]
    if not with_chain:
        return None, "exception: not allowed"
    if len(with_chain) > 1:
        return None, "ambiguous-profile"
    return with_chain[0], None


async def drift_accept(deps: Deps, who: str, finding_id: int, duration: str | None, reason: str | None) -> Reply:
    """File the exception for finding ``finding_id``; ``who`` is a security team member (checked by the caller)."""
    who = who.lower()
    ref = drift_ref(finding_id)
    usage = f"`drift accept {ref} for <duration> because <reason>`"
    if not duration:
        return refused("duration", f"say for how long: {usage}.")
    if not reason:
        return refused("reason", f"say why: {usage}.")
    async with deps.store.read() as repo:
        finding = await repo.get_drift(finding_id)
    if finding is None:
        return refused("not-found", f"there is no drift finding {ref}.")
    if finding.resolved_at is not None:
        return refused("resolved", f"{ref} is already resolved; see `report drift`.")
    if finding.kind != "member":
        return refused("not-a-member", f"{ref} is a grant holder who is not a member: the bot restores or ends "
                        "that grant by itself.")
    profile, rule = profile_for(deps.policy, finding, deps.groups.ident)
    where = f"{finding.provider}/{finding.group}"
    if profile is None or profile.exception is None:
        texts = {"no-profile": f"no profile manages {where} any more; use `drift remove {ref} because …`.",
                 "exception: not allowed": f"the profile of {where} has no exception chain; use "
                 f"`drift remove {ref} because …`.",
                 "ambiguous-profile": f"several profiles with an exception chain manage {where}."}
        return refused(rule or "no-profile", texts.get(rule or "no-profile", ""))
    if "@" not in finding.email:  # a service principal or a nested group (Entra): no person to hold an exception
        return refused("not-a-person", f"{finding.email} is not a person: an exception keeps a person's access. "
                        f"Use `drift remove {ref} because …`, or certify it in an access review (a principal's "
                        "owner reviews it).")
    member = await deps.person(finding.email)
    if member is None or not member.active:
        return refused("inactive", f"{finding.email} is not an active person at the identity provider; the leaver "
                        "sweep removes their memberships.")
    limit = profile.exception.max_duration
    asked = RequestAccess(profile=profile.id, duration=duration, reason=reason, ticket=find_ticket(reason),
                          exception=True)
    length, justification, ticket, problems = _fields(profile, asked, limit, "")
    if problems:
        first = problems[0]
        return refused(first.rule, first.text + first.more)
    chain = await resolve_chain(profile.exception.approval, policy=deps.policy, profile=profile, requester=member,
                                directory=deps.directory)
    bad = first_unsatisfiable(chain, frozenset({who}))
    if bad is not None:
        return refused(bad.rule, f"the exception chain of {profile.id} cannot be satisfied at {bad.rule} "
                        f"without {who} (who files it counts as its requester).")
    try:  # the group as the provider has it now: a member who left meanwhile is not accepted
        members = {m.lower() for m in await deps.provider(finding.provider).list_members(finding.group)}
    except Exception as exc:
        return refused("provider", f"could not read {where} now ({str(exc)[:200]}); try again.")
    now = deps.now()
    async with deps.store.write() as repo:
        current = await repo.get_drift(finding_id)
        if current is None or current.resolved_at is not None:
            return refused("resolved", f"{ref} was resolved meanwhile; see `report drift`.")
        filed = await repo.get_state(accept_key(finding_id))
        if filed is not None:
            return Reply(text=f"Refused (accept-pending): {ref} is already being accepted through "
                         f"{filed.get('request_id')} (filed by {filed.get('by')}).", ok=False, kind="refusal",
                         rule="accept-pending", data={"existing": filed.get("request_id")})
        if await repo.get_state(remove_key(finding_id)) is not None:
            return refused("removing", f"{finding.email} is being removed from {where} already.")
        gone = finding.email not in members
        if gone:  # resolved as gone: said on every member's card once this is committed
            await resolve_finding(repo, current, "gone", now, by=who)
        else:
            dup = await repo.find_requests(requester=finding.email, profile=profile.id,
                                           states=(PENDING, *HOLDING_STATES))
            if dup:
                d = dup[0]
                rule = "already-pending" if d.state == PENDING else "already-active"
                return Reply(text=f"Refused ({rule}): {finding.email} already has {d.ref} for {profile.id} "
                                  f"({d.state}).", ok=False, kind="refusal", rule=rule, data={"existing": d.ref})
            record = RequestRecord(
                requester=finding.email, profile=profile.id, kind="exception", duration=length,
                justification=justification, ticket=ticket, state=PENDING, submitted_at=now,
                policy_version=deps.policy.version, policy_sha256=deps.policy.sha256, provider=profile.provider,
                group=profile.group, step_opened_at=now)
            approvers = sorted(chain[0].pool - {who})
            note_asked(record, approvers, now)
            await repo.add_request(record)
            await repo.append("request.submitted", actor=who, ts=now, request=record, data={
                "kind": "exception", "duration": format_duration(length), "justification": justification,
                "ticket": ticket, "policy_version": deps.policy.version, "policy_sha256": deps.policy.sha256,
                "requester": finding.email, "submitted_by": who, "drift_id": ref})
            await repo.append("approval.requested", actor=SYSTEM, ts=now, request=record,
                              data={"step": 1, "approvers": approvers, "label": chain[0].label})
            await repo.set_state(accept_key(finding_id), accept_state(record, who, now), now)
            await repo.set_state(request_key(record.id or 0), {"finding": finding_id, "by": who}, now)
    if gone:
        await tell_outcome(deps, finding, f"{ref} resolved: {finding.email} is no longer in {where} (gone).")
        return refused("gone", f"{finding.email} is no longer in {where}: {ref} is resolved as gone and there is "
                       "nothing to accept.")
    what = f"{finding.email} keeps {where} for {format_duration(length)}"
    notices = [Notice(a, "approval", f"{who} asks to accept drift {ref}: {what} as an exception of {profile.id} "
                      f"({record.ref}): approve or deny.", record.id) for a in approvers]
    notices.append(Notice(finding.email, "status", f"{who} filed {record.ref} so that you keep {where} for "
                          f"{format_duration(length)} as an exception; if it is not approved you are removed from "
                          "it.", record.id))
    await deps.notifier.notify(notices)
    await tell_outcome(deps, finding, f"{ref}: {who} filed {record.ref} to accept this as an exception "
                                      f"({format_duration(length)}); its approvers decide, and a denial removes "
                                      f"{finding.email}.")
    return Reply(text=f"{ref}: exception {record.ref} filed for {what}. Waiting on step 1 ({chain[0].label}): "
                 f"{', '.join(approvers)}. Approved, the membership is backed by the grant and ends with it; denied, "
                 f"cancelled or undecided within {format_duration(deps.policy.safety.drift_sla)}, {finding.email} is "
                 "removed.", data={"request_id": record.ref, "finding": ref})
