"""Drift (SPEC §3.6): what a managed group holds that the store cannot explain, either way.

A member of a managed group with no grant behind them is drift, and so is a holder of an active
grant who is not a member (someone removed them at the provider). Memberships the bot itself is
changing are neither: a call queued, at the provider, or finished while the groups were read
explains whatever the listing shows, so those are left for the next sweep. Each finding is
reported once and resolves by itself when the group and the grants agree again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from handlers.audit import format_ts
from handlers.compliance.findings import drift_ref, outcome_notices, readd_key, resolution_text, resolve_finding
from handlers.compliance.settle import (
    cancel_accept_of_gone,
    finish_restores,
    gone_resolution,
    restore_holders,
    settle_accepts,
)
from handlers.compliance.views import DriftView
from handlers.context import SYSTEM, Deps
from handlers.outbox import deliver_pending
from handlers.ports import GroupProvider, Notice, OneMembersGroups
from handlers.records import ACTIVE, HOLDING_STATES, DriftRecord, RequestRecord
from handlers.reviews.queries import kept_by_review

if TYPE_CHECKING:
    from handlers.sweeps import SweepReport

Key = tuple[str, str, str]  # (provider, group, user); within a sweep the group is its id (``GroupIds.ident``)
CARDS = 20  # findings of one sweep told one card each; more come as one line


__all__ = ["detect_drift", "drift_ref", "escalate_drift"]


async def _snapshot(deps: Deps, since: datetime) -> tuple[list[RequestRecord], set[Key]]:
    """The grants holding now, and the memberships with a call pending or finished since ``since``."""
    async with deps.store.read() as repo:
        holding = await repo.find_requests(states=HOLDING_STATES)
        busy = {op.member for op in await repo.unsettled_ops(since)}
    return holding, busy


async def every_member(provider: GroupProvider, group: str) -> set[str]:
    """Every member of a group as drift names it: people by address and, where the provider lists them (Entra),
    service principals (``serviceprincipal:<id>``) and nested groups (``nestedgroup:<id>``)."""
    listing = getattr(provider, "drift_members", None) or provider.list_members
    return {m.lower() for m in await listing(group)}


async def groups_holding(provider: GroupProvider, member: str, groups: Sequence[str]) -> set[str]:
    """Those of ``groups`` at ``provider`` that ``member`` (as drift names it) is a direct member of: asked about
    the one member where the provider can (``member_of``), else from each group's whole listing."""
    if isinstance(provider, OneMembersGroups):
        return await provider.member_of(member, groups)
    key = member.strip().lower()
    return {group for group in groups if key in await every_member(provider, group)}


GONE_SINCE = "drift:gone_since"  # finding id → when a sweep first found its member out of the group by other means


async def detect_drift(deps: Deps, report: SweepReport) -> None:
    """Compare every managed group with the grants; record and report what does not agree."""
    async with deps.store.read() as repo:
        await settle_accepts(deps, report, await repo.open_drift())
    now = deps.now()
    managed = sorted({(p.provider, p.group) for p in deps.policy.profiles})
    # The store is read before and after the groups: a grant or a call seen in either explains a
    # membership, so nothing that changed while the groups were listed is taken for drift.
    holding_before, busy_before = await _snapshot(deps, now)
    listed: dict[tuple[str, str], set[str]] = {}
    for provider_name, group in managed:
        provider = deps.providers.get(provider_name)
        if provider is None:
            continue
        try:
            listed[(provider_name, group)] = await every_member(provider, group)
        except Exception as exc:  # a provider that cannot answer now is tried again next sweep
            report.failed.append(f"drift {provider_name}/{group}: {exc}")
    holding_after, busy_after = await _snapshot(deps, now)
    async with deps.store.read() as repo:
        open_findings = await repo.open_drift()
        kept = await kept_by_review(repo)
    # Grants, calls, findings and reviews name a group as the policy spelled it then (a name, or an id); the
    # groups are matched by the id the provider knows them by, so a policy that now names a group the other way
    # does not make its holders drift. A reference never resolved to an id is matched as written.
    ident = deps.groups.ident

    def by_id(provider_name: str, group: str, email: str) -> Key:
        return (*ident(provider_name, group), email)

    spelled = {ident(p, g): g for p, g in listed}  # the group as the current policy names it
    listed = {ident(p, g): members for (p, g), members in listed.items()}
    busy = {by_id(*m) for m in busy_before | busy_after}
    # a standing membership kept by the latest closed review of it is not drift until the next campaign
    kept_ids = {by_id(*k) for k in kept}
    covered = {by_id(r.provider, r.group, r.requester) for r in holding_before + holding_after} | kept_ids
    active_before = {r.id for r in holding_before if r.state == ACTIVE}
    held = {by_id(r.provider, r.group, r.requester): r for r in holding_after
            if r.state == ACTIVE and r.id in active_before}

    found: dict[Key, RequestRecord | None] = {}  # None: a member without a grant; else the grant without its member
    for group_key, members in listed.items():
        for email in sorted(members):
            key = (*group_key, email)
            if key not in covered and key not in busy:
                found[key] = None
    for key, record in held.items():
        if key[:2] in listed and key[2] not in listed[key[:2]] and key not in busy:
            found[key] = record

    def kind(record: RequestRecord | None) -> str:
        return "member" if record is None else "missing"

    def named(key: Key, record: RequestRecord | None) -> Key:
        """A finding as it is recorded and told: a member in the group as the policy names it, a holder who is
        not a member in the group as their grant names it."""
        return (key[0], spelled[key[:2]] if record is None else record.group, key[2])

    known = {by_id(d.provider, d.group, d.email): d for d in open_findings}
    gone = [d for key, d in known.items()
            if key[:2] in listed and key not in busy and (key not in found or kind(found[key]) != d.kind)]
    new = {key: record for key, record in found.items()
           if key not in known or known[key].kind != kind(record)}
    for key, record in new.items():
        report.drift.append(_drift_line(named(key, record), record))
    if report.dry_run:
        return
    refs: dict[Key, str] = {}
    missing: list[tuple[DriftRecord, RequestRecord]] = []
    resolved: list[tuple[DriftRecord, str]] = []
    async with deps.store.write() as repo:
        since = await repo.get_state(GONE_SINCE) or {}
        oldest = min((d.first_seen for d in gone), default=now)
        removed_by_us = {by_id(*op.member) for op in await repo.unsettled_ops(oldest) if op.op == "remove"
                         and op.status == "done"}  # the bot's own removals (a leaver's) explain an absence at once
        judged = {str(d.id) for d in open_findings if ident(d.provider, d.group) in listed
                  and by_id(d.provider, d.group, d.email) not in busy}
        waiting = {i: at for i, at in since.items() if i not in judged  # not judged this sweep (its group could not
                   and any(str(d.id) == i for d in open_findings)}  # be listed): its wait goes on
        for finding in gone:
            key = by_id(finding.provider, finding.group, finding.email)
            resolution, request_id, by = await gone_resolution(repo, finding, key in kept_ids)
            if resolution == "gone" and key[2] not in listed[key[:2]] and key not in removed_by_us:
                # out of the group by other means: only once two sweeps at least the unknown grace apart agree (a
                # half-written directory file, or a listing cut short, must not resolve a finding that the next
                # whole one reports again)
                # on the clock the sweep is judged by, as a leaver's grace, never from before the source was read
                first = since.get(str(finding.id)) or format_ts(max(report.as_of, now))
                waited = report.as_of - datetime.fromisoformat(first.replace("Z", "+00:00"))
                if waited < deps.policy.safety.unknown_grace:
                    waiting[str(finding.id)] = first
                    continue
            withdrawn = await cancel_accept_of_gone(repo, finding, now) if resolution == "gone" else None
            if await resolve_finding(repo, finding, resolution, now, request_id=request_id or withdrawn, by=by):
                resolved.append((finding, resolution_text(finding, resolution, request_id or withdrawn)))
        if waiting != since:
            await repo.set_state(GONE_SINCE, waiting, now)
        # another process's sweep (a worker, `accessbot sweep`) may have recorded the same finding since the
        # findings were read: under the write lock it is found open, and not recorded or told a second time
        recorded = {by_id(d.provider, d.group, d.email): d.kind for d in await repo.open_drift()}
        for key, record in [(key, record) for key, record in new.items() if recorded.get(key) == kind(record)]:
            del new[key]
            report.drift.remove(_drift_line(named(key, record), record))
        for key, record in new.items():
            provider_name, group, email = named(key, record)
            finding = DriftRecord(provider=provider_name, group=group, email=email, first_seen=now, kind=kind(record))
            await repo.add_drift(finding)
            refs[key] = drift_ref(finding.id)
            data = {"id": drift_ref(finding.id), "provider": provider_name, "group": group, "user": email}
            if record is not None:
                data.update(member=False, request_id=record.ref)
                missing.append((finding, record))
            await repo.append("drift.detected", actor=SYSTEM, ts=now, data=data)
        # the security team's cards of the new findings, and the outcome on the cards of those resolved, go to the
        # outbox with them (handlers/outbox.py)
        await repo.queue_notices(outcome_notices(deps, resolved) + _security_notices(deps, [
            _new_card(refs[key], named(key, record), now) for key, record in new.items() if record is None], []), now)
    gone = [d for d in gone if str(d.id) not in waiting]  # not resolved yet: still open
    still_open = [d for d in open_findings if d not in gone]
    # a holder found missing by an earlier sweep that stopped (a crash, a deploy) after recording the finding and
    # before planning its re-add: still missing, with a grant that still runs, and no re-add on record. Planned
    # here; restore_holders claims it under the write lock, so a sweep running beside this one plans it once.
    unplanned = [(d, record) for d in still_open if d.kind != "member"
                 and (record := found.get(by_id(d.provider, d.group, d.email))) is not None]
    if unplanned:
        async with deps.store.read() as repo:
            unplanned = [(d, r) for d, r in unplanned if await repo.get_state(readd_key(d.id or 0)) is None]
    # a holder who is not a member is put back, or loses the grant (SPEC §3.6): said, not left to a person (the
    # holder's and the security team's notices are written to the outbox with what decides them)
    report.drift_settled += await restore_holders(deps, missing + unplanned)
    report.drift_settled += await finish_restores(deps, still_open)
    await escalate_drift(deps, report, still_open)
    await deliver_pending(deps)


def _new_card(ref: str, key: Key, now: datetime) -> tuple[str, DriftView]:
    """The text and the card of a new finding of a member with no grant (``key`` as the finding is named)."""
    p, g, e = key
    text = (f"Drift {ref}: {e} is in {p}/{g} with no active grant (`drift remove {ref} because …` "
            f"or `drift accept {ref} for <duration> because …`)")
    return text, DriftView(id=ref, provider=p, group=g, user=e, member=True, first_seen=format_ts(now),
                           request_id=None)


def _drift_line(key: Key, record: RequestRecord | None) -> str:
    provider_name, group, email = key
    return (f"{email} in {provider_name}/{group}" if record is None
            else f"{email} not in {provider_name}/{group} despite {record.ref}")


def _security_notices(deps: Deps, told: list[tuple[str, DriftView]], said: list[str]) -> list[Notice]:
    """One message per new finding (a card with its buttons), up to ``CARDS``; the rest, and what the
    bot settled itself (``said``), in one line."""
    members = sorted(deps.policy.security_members())
    notices = [Notice(m, "drift", text, None, view) for text, view in told[:CARDS] for m in members]
    lines = [t for t, _ in told[CARDS:]]
    if lines:
        lines[0] = f"{len(told) - CARDS} more drift findings (say `drift` for the list): {lines[0]}"
    lines += [line for line in said if line]
    if lines:
        notices += [Notice(m, "drift", "Drift: " + "; ".join(lines), None) for m in members]
    return notices


async def escalate_drift(deps: Deps, report: SweepReport, still_open: list[DriftRecord]) -> None:
    """Open findings older than ``safety.drift_sla`` go to the security team again, once each."""
    sla = deps.policy.safety.drift_sla
    late = [d for d in still_open if report.as_of - d.first_seen >= sla]
    if not late or report.dry_run:
        return
    now = deps.now()
    escalated = []
    async with deps.store.write() as repo:
        for finding in late:
            current = await repo.get_drift(finding.id or 0)  # resolved since it was read (a holder put back)
            if current is None or current.resolved_at is not None:
                continue
            if await repo.first_seen(f"drift.escalated:{finding.id}", now):
                await repo.append("drift.escalated", actor=SYSTEM, ts=now, data={
                    "id": drift_ref(finding.id), "provider": finding.provider, "group": finding.group,
                    "user": finding.email})
                escalated.append(finding)
        # written to the outbox with the escalation (handlers/outbox.py), sent at the end of the drift sweep
        await repo.queue_notices(_security_notices(deps, [
            (f"Drift {drift_ref(d.id)} still open past the SLA: {d.email} "
             + (f"in {d.provider}/{d.group}" if d.kind == "member" else f"not in {d.provider}/{d.group}"),
             DriftView(id=drift_ref(d.id), provider=d.provider, group=d.group, user=d.email,
                       member=d.kind == "member", first_seen=format_ts(d.first_seen), escalated=True))
            for d in escalated], []), now)


async def finding_view(deps: Deps, finding: int) -> DriftView | None:
    """An open finding as its card shows it (None when it is not open)."""
    async with deps.store.read() as repo:
        found = next((d for d in await repo.open_drift() if d.id == finding), None)
    if found is None:
        return None
    return DriftView(id=drift_ref(found.id), provider=found.provider, group=found.group, user=found.email,
                     member=found.kind == "member", first_seen=format_ts(found.first_seen))
