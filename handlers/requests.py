"""Submitting a request (SPEC §3.1, §3.3): judged at once, refusals name the rule that refused."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from handlers.approvals import note_asked
from handlers.chains import ResolvedStep, first_unsatisfiable, resolve_chain
from handlers.context import SYSTEM, Deps, forget_person
from handlers.durations import DurationError, format_duration, parse_duration
from handlers.eligibility import (
    PLAIN,
    AttributeNotSupplied,
    Memberships,
    auto_approve_rule,
    ineligibility,
    memberships_of,
)
from handlers.grammar import RequestAccess, find_ticket
from handlers.grants import plan_add, run_op
from handlers.groups import GroupNotResolved
from handlers.policy import Profile, Rule
from handlers.ports import Notice, Person
from handlers.present import request_view
from handlers.records import APPROVED, HOLDING_STATES, PENDING, RequestRecord
from handlers.text import too_long
from handlers.views import FormRequest, ProfileView, Reply, refused


def profile_view(profile: Profile, person: Person | None, memberships: Memberships) -> ProfileView:
    """How one profile looks to ``person``: ``memberships`` must be :func:`memberships_of` the person (the
    ``member_of`` groups by the ids resolved at the load, this bot's grants left out), as a request is judged;
    :func:`profile_views` gives every profile so."""
    try:
        why = ineligibility(profile, person, memberships) if person else "unknown user"
    except GroupNotResolved:  # a group name its rules use is not resolved yet: not shown as eligible
        why = "could not check: a group its rules name is not resolved yet"
    except AttributeNotSupplied as exc:  # a rule on an attribute the identity source does not supply
        why = str(exc)
    return ProfileView(
        id=profile.id, title=profile.title, risk=profile.risk, eligible=why is None, reason=why,
        default_duration=format_duration(profile.default_duration),
        max_duration=format_duration(profile.max_duration),
        justification_required=profile.justification_required,
        ticket_required=bool(profile.ticket and profile.ticket.required),
        exception_allowed=profile.exception is not None,
    )


async def profile_views(deps: Deps, person: Person | None) -> tuple[ProfileView, ...]:
    """Every profile of the policy in force as ``person`` sees it, eligibility judged as a request would be (the
    ``profiles`` list, the chat request forms, the dashboard's person page)."""
    held = await memberships_of(deps, person.email) if person is not None else PLAIN
    return tuple(profile_view(p, person, held) for p in deps.policy.profiles)


async def refuse(deps: Deps, actor: str, rule: str, text: str, *, profile: str | None = None,
                 request_id: str | None = None, data: dict | None = None) -> Reply:
    async with deps.store.write() as repo:
        await repo.append("request.refused", actor=actor, ts=deps.now(), profile=profile,
                          request_id=request_id, data={"rule": rule, **(data or {})})
    return refused(rule, text)


def _ticket(profile: Profile, given: str | None, reason: str | None) -> tuple[str | None, str | None]:
    """(ticket, problem). A ticket id anywhere in the text is picked up."""
    rule = profile.ticket
    if rule is None:
        return (given or find_ticket(reason)), None
    candidates = [given] if given else []
    candidates += re.findall(r"[A-Za-z0-9][A-Za-z0-9_.:/#-]{0,62}", reason or "")
    # a ticket-shaped word the grammar picked out of the reason ("UTF-8") was not given as a ticket: only one
    # typed in the ticket field is refused for not matching
    typed = given if given and not re.search(rf"(?<![A-Za-z0-9]){re.escape(given)}(?![A-Za-z0-9])",
                                             reason or "") else None
    if rule.pattern:
        for c in candidates:
            if c and re.fullmatch(rule.pattern, c):
                return c, None
        if typed:
            return None, f"ticket {typed!r} does not match {rule.pattern}"
    elif candidates and given:
        return given, None
    if rule.required:
        return None, f"a ticket is required (matching {rule.pattern})" if rule.pattern else "a ticket is required"
    return None, None


def _surely_eligible(profile: Profile, actor: Person, held: Memberships) -> bool:
    """Eligible by the profile's rules; False when a rule that would decide cannot be checked (an attribute the
    identity source does not supply): a request would be refused "could not check", so an exception is needed."""
    try:
        return not ineligibility(profile, actor, held)
    except AttributeNotSupplied:
        return False


async def submit(deps: Deps, actor: Person, cmd: RequestAccess, *, forms: bool = False) -> Reply:
    policy = deps.policy
    who = actor.email.lower()
    kind = "exception" if cmd.exception else "standard"
    verb = "exception" if cmd.exception else "request"
    if not cmd.profile:
        if forms:
            return await _form(deps, actor, cmd, ("profile",), {})
        return await refuse(deps, who, "profile", f"say which profile: `{verb} <profile> for <duration> "
                            "because <reason>` (see `profiles`).")
    profile = policy.profile(cmd.profile)
    if profile is None:
        close = policy.closest_profiles(cmd.profile)
        hint = f" Did you mean: {', '.join(close)}?" if close else " See `profiles`."
        return await refuse(deps, who, "unknown-profile", f"there is no profile {cmd.profile[:100]!r}.{hint}",
                            data={"asked": cmd.profile[:100]})
    exc_hint = (f" You can ask for an exception: `exception {profile.id} for <duration> because <reason>`."
                if profile.exception and not cmd.exception else "")
    held = await memberships_of(deps, who, profile)
    if cmd.exception:
        if profile.exception is None:
            return await refuse(deps, who, "exception: not allowed",
                                f"{profile.id} does not allow exceptions.", profile=profile.id)
        if not actor.active:
            return await refuse(deps, who, "inactive", "your account is not active.", profile=profile.id)
        limit = profile.exception.max_duration
    else:
        try:
            why = ineligibility(profile, actor, held)
        except AttributeNotSupplied as exc:  # a rule that would decide names an attribute the source does not give:
            # refused, recorded with the rule, as a rule that refuses is (never judged by guess)
            return await refuse(deps, who, f"could not check: {exc.rule}",
                                f"{exc}, so the rule cannot be judged and nothing is granted by guess. The policy's "
                                "owner must change the rule (see `accessbot policy check`) or the identity source "
                                f"supply the attribute.{exc_hint}", profile=profile.id, data={"attributes": exc.keys})
        if why:
            return await refuse(deps, who, why, f"you are not eligible for {profile.id} ({why}).{exc_hint}",
                                profile=profile.id)
        limit = profile.max_duration
    duration, reason, ticket, problems = _fields(profile, cmd, limit, exc_hint)
    wrong = [p for p in problems if not p.missing]
    if wrong:  # refused for what it says (over the maximum, not a duration, a bad ticket): recorded, rule named,
        # on every channel; the chat channels also show the form to correct it (SPEC §3.1)
        first = wrong[0]
        data = {"duration": format_duration(duration), "max": format_duration(limit)} \
            if first.rule == "duration>max" else None
        refusal = await refuse(deps, who, first.rule, first.text + first.more, profile=profile.id, data=data)
        if not forms:
            return refusal
        form = await _form(deps, actor, cmd, tuple(p.field for p in problems if p.missing),
                     {p.field: p.text for p in wrong})
        return replace(form, text=f"{refusal.text} Correct it in the form.", rule=first.rule)
    if cmd.exception and not problems and duration <= profile.max_duration \
            and _surely_eligible(profile, actor, held) and await _standard_chain_holds(deps, profile, actor):
        # SPEC §3.3: an exception is for access outside eligibility, over the maximum, or that the standard chain
        # cannot decide (nobody to approve a step, or a rule on an attribute the source does not supply): anything
        # else is a request, decided by its own chain
        return await refuse(deps, who, "exception: not needed", f"you are eligible for {profile.id} and "
                            f"{format_duration(duration)} is within its maximum of "
                            f"{format_duration(profile.max_duration)}: ask with `request {profile.id} for "
                            f"{format_duration(duration)} because <reason>`, which its approval chain decides.",
                            profile=profile.id)
    if problems and forms:
        return await _form(deps, actor, cmd, tuple(p.field for p in problems), {})
    if problems:
        first = problems[0]
        return await refuse(deps, who, first.rule, first.text + first.more, profile=profile.id)
    auto = None if cmd.exception else auto_approve_rule(profile, actor, duration, held)
    steps = profile.exception.approval if (cmd.exception and profile.exception) else profile.approval
    chain = [] if auto else await resolve_chain(steps, policy=policy, profile=profile, requester=actor,
                                                 directory=deps.directory)
    bad = first_unsatisfiable(chain) if chain else None
    if bad is not None:
        return await refuse(deps, who, bad.rule, f"the approval chain cannot be satisfied at {bad.rule}: not enough "
                            f"approvers other than you can be found for it.{exc_hint}", profile=profile.id)

    now = deps.now()
    notices: list[Notice] = []
    op_id = None
    try:
        return await _record(deps, actor, cmd, profile, kind, duration, reason, ticket, auto, chain, now, notices,
                             op_id)
    except _Terminated:  # the leaver sweep ended this person's access since they were identified: ask again now
        forget_person(who)
        fresh = await deps.person(who)
        if fresh is None or not fresh.active:
            return await refuse(deps, who, "inactive", "your account is not active.", profile=profile.id)
        async with deps.store.write() as repo:  # back (rehired, or re-enabled): a new departure is judged afresh
            await repo.forget_leaver(who)
        return await submit(deps, fresh, cmd, forms=forms)


async def _standard_chain_holds(deps: Deps, profile: Profile, actor: Person) -> bool:
    """Whether a standard request of ``actor`` for ``profile`` would find every step of its chain satisfiable."""
    chain = await resolve_chain(profile.approval, policy=deps.policy, profile=profile, requester=actor,
                                directory=deps.directory)
    return first_unsatisfiable(chain) is None


class _Terminated(Exception):
    """The requester was terminated by the leaver sweep (and not seen back since)."""


async def _record(deps: Deps, actor: Person, cmd: RequestAccess, profile: Profile, kind: str, duration: timedelta,
                  reason: str, ticket: str | None, auto: Rule | None, chain: list[ResolvedStep], now: datetime,
                  notices: list[Notice],
                  op_id: int | None) -> Reply:
    policy = deps.policy
    who = actor.email.lower()
    async with deps.store.write() as repo:
        leaver = await repo.get_leaver(who)  # one indexed read in the same transaction
        if leaver is not None and leaver.terminated_at is not None:
            raise _Terminated
        dup = await repo.find_requests(requester=who, profile=profile.id, states=(PENDING, *HOLDING_STATES))
        if dup:
            d = dup[0]
            rule = "already-pending" if d.state == PENDING else "already-active"
            await repo.append("request.refused", actor=who, ts=now, profile=profile.id,
                              data={"rule": rule, "existing": d.ref})
            offer = f" Use `extend {d.ref} by <duration>` to ask for more time." if d.state != PENDING else ""
            return Reply(text=f"Refused ({rule}): you already have {d.ref} for {profile.id} ({d.state}).{offer}",
                         ok=False, kind="refusal", rule=rule, data={"existing": d.ref})
        record = RequestRecord(
            requester=who, profile=profile.id, kind=kind, duration=duration, justification=reason,
            ticket=ticket, state=PENDING, submitted_at=now, policy_version=policy.version,
            policy_sha256=policy.sha256, provider=profile.provider, group=profile.group,
            step_opened_at=now)
        if auto is None:  # the first step asks its approvers (approval.requested below)
            note_asked(record, sorted(chain[0].pool), now)
        await repo.add_request(record)
        await repo.append("request.submitted", actor=who, ts=now, request=record, data={
            "kind": kind, "duration": format_duration(duration), "justification": reason, "ticket": ticket,
            "policy_version": policy.version, "policy_sha256": policy.sha256})
        if auto is not None:
            record.state, record.approved_at = APPROVED, now
            await repo.save_request(record)
            await repo.append("request.approved", actor=SYSTEM, ts=now, request=record,
                              data={"auto": True, "rule": auto.describe()})
            op_id = (await plan_add(repo, record, now)).id
        else:
            first = chain[0]
            await repo.append("approval.requested", actor=SYSTEM, ts=now, request=record,
                              data={"step": 1, "approvers": sorted(first.pool), "label": first.label})
            notices = [Notice(a, "approval", f"{who} asks for {profile.id} for {format_duration(duration)}"
                              f" ({record.ref}): approve or deny.", record.id) for a in sorted(first.pool)]
    if op_id is not None:  # provisioned in transactions of its own: the request as they left it
        await run_op(deps, op_id)
        async with deps.store.read() as repo:
            fresh = await repo.get_request(record.id or 0)
        assert fresh is not None
        record = fresh
    # otherwise the request as this transaction committed it, with no decision yet
    view = await request_view(deps, record, decisions=[] if op_id is None else None)
    for i, n in enumerate(notices):
        notices[i] = Notice(n.recipient, n.kind, n.text, n.request_id, view)
    await deps.notifier.notify(notices)
    label = "Exception request" if cmd.exception else "Request"
    if auto is not None:
        head = (f"{record.ref} auto-approved ({auto.describe()}): you are in {profile.group} until {view.expires_at}."
                if fresh.state == "active" else f"{record.ref} auto-approved; provisioning is {fresh.state}.")
    else:
        head = (f"{label} {record.ref} submitted: {profile.id} for {format_duration(duration)}. "
                f"Waiting on step 1 ({chain[0].label}): {', '.join(sorted(chain[0].pool))}.")
    return Reply(text=head, kind="request", request=view)


@dataclass(frozen=True)
class Problem:
    field: str  # the form field: duration | justification | ticket
    rule: str
    text: str
    missing: bool = False
    more: str = ""  # what the console adds to the refusal


def _fields(profile: Profile, cmd: RequestAccess, limit: timedelta, exc_hint: str
            ) -> tuple[timedelta, str | None, str | None, list[Problem]]:
    """(duration, justification, ticket, problems): the field checks in SPEC §3.1's order."""
    problems: list[Problem] = []
    duration = profile.default_duration
    if cmd.duration:
        try:
            duration = parse_duration(cmd.duration)
        except DurationError as exc:
            problems.append(Problem("duration", "duration", str(exc)))
    elif cmd.exception:
        problems.append(Problem("duration", "duration", f"an exception needs `for <duration>` (at most "
                                f"{format_duration(limit)}).", missing=True))
    if not problems and duration > limit:
        problems.append(Problem("duration", "duration>max", f"{format_duration(duration)} is over the maximum of "
                                f"{format_duration(limit)} for {profile.id}.{exc_hint}"))
    reason = cmd.reason  # cleaned by the service, like every free-text field
    if too_long("justification", reason):
        problems.append(Problem("justification", "justification", too_long("justification", reason) or ""))
    elif not reason and (profile.justification_required or cmd.exception):
        problems.append(Problem("justification", "justification",
                                f"{profile.id} needs a justification: add `because <reason>`.", missing=True))
    ticket, ticket_problem = (None, too_long("ticket", cmd.ticket)) if too_long("ticket", cmd.ticket) \
        else _ticket(profile, cmd.ticket, reason)
    if ticket_problem:
        missing = not ticket_problem.startswith("ticket")  # "a ticket is required": ask for it
        problems.append(Problem("ticket", "ticket", ticket_problem, missing=missing,
                                more=" — put the ticket id in the reason."))
    return duration, reason, ticket, problems


async def _form(deps: Deps, actor: Person, cmd: RequestAccess, missing: tuple[str, ...], errors: dict[str, str]
                ) -> Reply:
    profiles = await profile_views(deps, actor)
    form = FormRequest(profile=cmd.profile, duration=cmd.duration, justification=cmd.reason, ticket=cmd.ticket,
                       missing=missing, errors=errors, profiles=profiles, exception=cmd.exception)
    what = ", ".join(list(missing) + list(errors))
    return Reply(text=f"Please fill in: {what}.", ok=False, kind="form", form=form)
