"""Read-only answers: profiles, mine, status, and the security team's views."""

from __future__ import annotations

import copy

from handlers.approvals import not_found, sees
from handlers.context import Deps
from handlers.present import request_view, resolved_chain
from handlers.records import ACTIVE, APPROVED, HOLDING_STATES, OPEN_STATES, PENDING, DecisionRecord, RequestRecord
from handlers.requests import profile_views
from handlers.views import Reply, RequestView

HELP_ANYONE = [
    ("help", "this list"),
    ("profiles", "the access profiles, and whether you are eligible"),
    ("request <profile> [for <duration>] [because <reason>]",
     "ask for access (a ticket id in the reason is picked up)"),
    ("exception <profile> for <duration> because <reason>", "ask for access outside eligibility or over the maximum"),
    ("mine", "your open requests, active grants and the approvals waiting on you"),
    ("extend REQ-n by <duration> [because <reason>]", "ask for more time on your grant"),
    ("release REQ-n", "end your grant now"),
    ("cancel REQ-n", "withdraw your pending request"),
    ("approve REQ-n [<comment>]", "approve the step waiting on you"),
    ("deny REQ-n because <reason>", "deny the step waiting on you"),
    ("status REQ-n", "a request, its chain and its events"),
    ("dashboard", "a one-time sign-in link to the web dashboard"),
]
HELP_SECURITY = [
    ("pending", "every open request and whom it waits on"),
    ("who has <profile>", "active grants of a profile, and members without a grant"),
    ("history <email>", "a person's requests and grants"),
    ("revoke REQ-n because <reason>", "end a grant now"),
    ("verify", "verify the audit chain"),
    ("evidence <from> <to>", "an evidence pack for a period (dates YYYY-MM-DD)"),
    ("report drift|terminations|access [<profile>]", "compliance reports"),
    ("drift [remove D-n because <reason>]", "open drift findings; remove a member no grant explains"),
    ("drift accept D-n for <duration> because <reason>",
     "keep a drifted member through the profile's exception chain (denied: removed)"),
    ("resume removals [terminated|ineligible|RV-n]", "run the bulk removals the safety brake paused (one pause)"),
    ("resume reroutes", "pass on the manager changes the safety brake held (at the next sweep)"),
]


def help_reply(deps: Deps, actor: str, prefix: str = "") -> Reply:
    rows = HELP_ANYONE + (HELP_SECURITY if deps.is_security(actor) else [])
    width = max(len(c) for c, _ in rows)
    lines = [prefix] if prefix else []
    lines.append("Commands:")
    lines += [f"  {c.ljust(width)}  {d}" for c, d in rows]
    lines.append('Free phrasing works when it is clear, e.g. "I need prod-db-read for 2 hours to fix INC-4411".')
    return Reply(text="\n".join(lines), kind="help", ok=not prefix, data={"commands": [c for c, _ in rows]})


async def profiles(deps: Deps, actor: str) -> Reply:
    views = await profile_views(deps, await deps.person(actor))
    lines = [f"Profiles (policy {deps.policy.version}):"]
    for v in views:
        mark = "eligible" if v.eligible else f"not eligible ({v.reason})"
        extra = []
        if v.justification_required:
            extra.append("justification")
        if v.ticket_required:
            extra.append("ticket")
        needs = f"; needs {' and '.join(extra)}" if extra else ""
        lines.append(f"  {v.id}  {v.title} [{v.risk}] — {mark}; default {v.default_duration}, "
                     f"max {v.max_duration}{needs}")
    return Reply(text="\n".join(lines), kind="profiles", profiles=views)


def describe(view: RequestView) -> str:
    bits = [f"{view.id} {view.profile} ({view.kind}) {view.state}"]
    if view.kind == "exception":
        bits.append("EXCEPTION")
    if view.state == ACTIVE and view.time_left:
        bits.append(f"{view.time_left} left, until {view.expires_at}")
    if view.extension:
        bits.append(f"extension by {view.extension} pending")
    if view.waiting_on:
        bits.append(f"waiting on {', '.join(view.waiting_on)}")
    if view.requester:
        bits.append(f"for {view.requester}")
    return " — ".join(bits)


async def _views(deps: Deps, records: list[RequestRecord]) -> tuple[RequestView, ...]:
    return tuple([await request_view(deps, r) for r in records])


async def mine(deps: Deps, actor: str) -> Reply:
    async with deps.store.read() as repo:
        own = await repo.find_requests(requester=actor, states=OPEN_STATES)
        waiting = await repo.find_requests(states=(PENDING, ACTIVE))
    own_views = await _views(deps, own)
    for_me = [v for v in await _views(deps, [w for w in waiting if w.requester != actor])
              if actor in v.waiting_on]
    lines = []
    lines.append("Your open requests and grants:" if own_views else "You have no open requests or grants.")
    lines += [f"  {describe(v)}" for v in own_views]
    if for_me:
        lines.append("Waiting on your decision:")
        lines += [f"  {describe(v)}" for v in for_me]
    return Reply(text="\n".join(lines), kind="requests", requests=own_views + tuple(for_me),
                 data={"waiting_on_me": [v.id for v in for_me]})


async def may_see(deps: Deps, actor: str, record: RequestRecord, decisions: list[DecisionRecord] | None = None
                   ) -> bool:
    if actor == record.requester or deps.is_security(actor):
        return True
    if decisions is None:
        async with deps.store.read() as repo:
            decisions = await repo.decisions(record.id or 0)
    if any(d.approver == actor for d in decisions):
        return True
    policy = await deps.policy_for(record)
    chain = await resolved_chain(deps, policy, policy.profile(record.profile), record,
                                 await deps.person(record.requester))
    return sees(deps, actor, record, decisions, chain)  # the rule itself; the checks above only save look-ups


async def hidden_from(deps: Deps, actor: str, n: int) -> bool:
    """True when request ``n`` exists and ``actor`` may not see it."""
    async with deps.store.read() as repo:
        record = await repo.get_request(n)
    return record is not None and not await may_see(deps, actor, record)


def status_text(view: RequestView) -> str:
    lines = [f"{view.id}: {view.profile} — {view.profile_title} [{view.risk}]"
             + (" — EXCEPTION" if view.kind == "exception" else ""),
             f"  requester: {view.requester_name} <{view.requester}>",
             f"  state: {view.state}" + (f" ({view.end_reason})" if view.end_reason not in (None, view.state) else ""),
             f"  duration: {view.duration}; submitted {view.submitted_at}; policy {view.policy_version}"]
    if view.justification:
        lines.append(f"  justification: {view.justification}")
    if view.ticket:
        lines.append(f"  ticket: {view.ticket}")
    if view.expires_at:
        lines.append(f"  expires: {view.expires_at}" + (f" ({view.time_left} left)" if view.time_left else ""))
    if view.extension:
        lines.append(f"  extension requested: {view.extension}")
    if view.steps:
        lines.append(f"  chain of the extension by {view.extension}:" if view.extension else "  chain:")
        for s in view.steps:
            who = (f"approved by {', '.join(s.approved_by)}" if s.approved_by
                   else f"from {', '.join(s.approvers) or '-'}")
            lines.append(f"    {s.index}. {s.label} [{s.status}] need {s.need}, {who}"
                         + (f"; passing it to {', '.join(s.held_for)} is held by the safety brake "
                            "(safety.max_reroutes)" if s.held_for else ""))
    if view.events:
        lines.append("  events:")
        lines += [f"    #{e.seq} {e.ts} {e.type} by {e.actor}" + (f" ({e.summary})" if e.summary else "")
                  for e in view.events]
    return "\n".join(lines)


async def shared_request(deps: Deps, n: int) -> tuple[RequestRecord | None, list[DecisionRecord]]:
    """Request ``n`` and its decisions as read after this call began, the read shared with the callers asking for the
    same request at the same time (handlers/shared_reads.py); the record is this caller's own copy."""
    async def read() -> tuple[RequestRecord | None, list[DecisionRecord]]:
        async with deps.store.read() as repo:
            return await repo.request_with_decisions(n)

    record, decisions = await deps.shared_reads.get(("request", n), read)
    return (copy.copy(record) if record is not None else None), list(decisions)


async def status(deps: Deps, actor: str, n: int, *, events: bool = True) -> Reply | None:
    """None when the actor may not see it (the caller records the refusal). ``events=False``: the view
    without its event list (a card shows none)."""
    if events:
        async with deps.store.read() as repo:
            record, decisions = await repo.request_with_decisions(n)
            events_ = await repo.events_for(n) if record else []
    else:  # a card's view: read once for everyone asking for it at the same time (handlers/shared_reads.py)
        record, decisions = await shared_request(deps, n)
        events_ = []
    if record is None:
        return not_found(n)
    if not await may_see(deps, actor, record, decisions):
        return None
    view = await request_view(deps, record, decisions=decisions, events=events_)
    return Reply(text=status_text(view), kind="request", request=view)


async def pending(deps: Deps) -> Reply:
    async with deps.store.read() as repo:
        records = await repo.find_requests(states=(PENDING, APPROVED, ACTIVE))
    views = [v for v in await _views(deps, records) if v.state != ACTIVE or v.extension]
    lines = ["Open requests:" if views else "Nothing is waiting."]
    lines += [f"  {describe(v)}" for v in views]
    return Reply(text="\n".join(lines), kind="requests", requests=tuple(views), title="Pending")


async def who_has(deps: Deps, profile_id: str) -> Reply:
    profile = deps.policy.profile(profile_id)
    if profile is None:
        close = deps.policy.closest_profiles(profile_id)
        return Reply(text=f"There is no profile {profile_id[:100]!r}." + (f" Did you mean: {', '.join(close)}?"
                     if close else ""), ok=False, kind="refusal", rule="unknown-profile")
    async with deps.store.read() as repo:
        records = await repo.find_requests(profile=profile.id, states=HOLDING_STATES)
        # grants of the same group however the policy named it when they were made (by name, or by id)
        group = deps.groups.ident(profile.provider, profile.group)
        same_group = [r for r in await repo.find_requests(states=HOLDING_STATES, provider=profile.provider)
                      if deps.groups.ident(r.provider, r.group) == group]
    views = await _views(deps, records)
    lines = [f"{profile.id} ({profile.provider}/{profile.group}):"]
    lines += [f"  {v.requester} — {v.id}, until {v.expires_at or '(provisioning)'}" for v in views]
    if not views:
        lines.append("  no active grants")
    covered = {r.requester for r in same_group}
    unexplained: list[str] = []
    provider = deps.providers.get(profile.provider)
    if provider is not None:
        try:
            unexplained = [m for m in await provider.list_members(profile.group) if m.lower() not in covered]
        except Exception as exc:
            lines.append(f"  (could not list the group's members: {exc})")
    if unexplained:
        lines.append("  members without a grant (drift): " + ", ".join(sorted(unexplained)))
    return Reply(text="\n".join(lines), kind="requests", requests=views, title=f"Who has {profile.id}",
                 data={"without_grant": sorted(unexplained)})


async def history(deps: Deps, email: str) -> Reply:
    async with deps.store.read() as repo:
        records = await repo.find_requests(requester=email.lower())
    views = await _views(deps, records)
    lines = [f"History of {email}:" if views else f"{email} has no requests."]
    for v in views:
        end = f", ended ({v.end_reason})" if v.end_reason else ""
        lines.append(f"  {v.id} {v.profile} ({v.kind}) {v.state} — submitted {v.submitted_at}, {v.duration}{end}")
    return Reply(text="\n".join(lines), kind="requests", requests=views, title=f"History of {email}")


async def verify(deps: Deps) -> Reply:
    result = await deps.store.verify_audit()
    if result.ok:
        return Reply(text=f"OK {result.count} events {result.head_hash}", data={"ok": True, "count": result.count})
    return Reply(text=f"BROKEN at seq {result.bad_seq}: {result.reason}", ok=False,
                 data={"ok": False, "bad_seq": result.bad_seq})
