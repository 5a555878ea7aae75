"""Drift (SPEC §3.6): what a managed group holds that the store cannot explain, either way.

A member of a managed group with no grant behind them is drift, and so is a holder of an active
grant who is not a member (someone removed them at the provider). Memberships the bot itself is
changing are neither: a call queued, at the provider, or finished while the groups were read
explains whatever the listing shows, so those are left for the next sweep. Each finding is
reported once and resolves by itself when the group and the grants agree again.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from handlers.compliance.findings import drift_ref, resolve_finding
from handlers.compliance.settle import (
    cancel_accept_of_gone,
    finish_restores,
    gone_resolution,
    restore_holders,
    settle_accepts,
)
from handlers.context import SYSTEM, Deps
from handlers.ports import Notice
from handlers.records import ACTIVE, HOLDING_STATES, DriftRecord, RequestRecord
from handlers.reviews.queries import kept_by_review

if TYPE_CHECKING:
    from handlers.sweeps import SweepReport

Key = tuple[str, str, str]  # (provider, group, user)


__all__ = ["detect_drift", "drift_ref", "escalate_drift"]


async def _snapshot(deps: Deps, since: datetime) -> tuple[list[RequestRecord], set[Key]]:
    """The grants holding now, and the memberships with a call pending or finished since ``since``."""
    async with deps.store.read() as repo:
        holding = await repo.find_requests(states=HOLDING_STATES)
        busy = {op.member for op in await repo.unsettled_ops(since)}
    return holding, busy


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
            listed[(provider_name, group)] = {m.lower() for m in await provider.list_members(group)}
        except Exception as exc:  # a provider that cannot answer now is tried again next sweep
            report.failed.append(f"drift {provider_name}/{group}: {exc}")
    holding_after, busy_after = await _snapshot(deps, now)
    async with deps.store.read() as repo:
        open_findings = await repo.open_drift()
        kept = await kept_by_review(repo)
    busy = busy_before | busy_after
    # a standing membership kept by the latest closed review of it is not drift until the next campaign
    covered = {(r.provider, r.group, r.requester) for r in holding_before + holding_after} | kept
    active_before = {r.id for r in holding_before if r.state == ACTIVE}
    held = {(r.provider, r.group, r.requester): r for r in holding_after
            if r.state == ACTIVE and r.id in active_before}

    found: dict[Key, RequestRecord | None] = {}  # None: a member without a grant; else the grant without its member
    for (provider_name, group), members in listed.items():
        for email in sorted(members):
            key = (provider_name, group, email)
            if key not in covered and key not in busy:
                found[key] = None
    for key, record in held.items():
        if key[:2] in listed and key[2] not in listed[key[:2]] and key not in busy:
            found[key] = record

    def kind(record: RequestRecord | None) -> str:
        return "member" if record is None else "missing"

    known = {(d.provider, d.group, d.email): d for d in open_findings}
    gone = [d for key, d in known.items()
            if key[:2] in listed and key not in busy and (key not in found or kind(found[key]) != d.kind)]
    new = {key: record for key, record in found.items()
           if key not in known or known[key].kind != kind(record)}
    for (provider_name, group, email), record in new.items():
        if record is None:
            report.drift.append(f"{email} in {provider_name}/{group}")
        else:
            report.drift.append(f"{email} not in {provider_name}/{group} despite {record.ref}")
    if report.dry_run:
        return
    refs: dict[Key, str] = {}
    missing: list[tuple[DriftRecord, RequestRecord]] = []
    async with deps.store.write() as repo:
        for finding in gone:
            key = (finding.provider, finding.group, finding.email)
            resolution, request_id, by = await gone_resolution(repo, finding, key in kept)
            withdrawn = await cancel_accept_of_gone(repo, finding, now) if resolution == "gone" else None
            await resolve_finding(repo, finding, resolution, now, request_id=request_id or withdrawn, by=by)
        for (provider_name, group, email), record in new.items():
            finding = DriftRecord(provider=provider_name, group=group, email=email, first_seen=now, kind=kind(record))
            await repo.add_drift(finding)
            refs[(provider_name, group, email)] = drift_ref(finding.id)
            data = {"id": drift_ref(finding.id), "provider": provider_name, "group": group, "user": email}
            if record is not None:
                data.update(member=False, request_id=record.ref)
                missing.append((finding, record))
            await repo.append("drift.detected", actor=SYSTEM, ts=now, data=data)
    still_open = [d for d in open_findings if d not in gone]
    # a holder who is not a member is put back, or loses the grant (SPEC §3.6): said, not left to a person
    restored = await restore_holders(deps, report, missing) + await finish_restores(deps, still_open)
    await escalate_drift(deps, report, still_open)
    text = "; ".join(
        f"{refs[(p, g, e)]}: {e} is in {p}/{g} with no active grant (`drift remove {refs[(p, g, e)]} because …` "
        f"or `drift accept {refs[(p, g, e)]} for <duration> because …`)"
        for (p, g, e), r in new.items() if r is None)
    text = "; ".join(t for t in (text, *restored) if t)
    if text:
        await deps.notifier.notify([Notice(m, "drift", "Drift: " + text, None)
                                    for m in sorted(deps.policy.security_members())])


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
            if await repo.first_seen(f"drift.escalated:{finding.id}", now):
                await repo.append("drift.escalated", actor=SYSTEM, ts=now, data={
                    "id": drift_ref(finding.id), "provider": finding.provider, "group": finding.group,
                    "user": finding.email})
                escalated.append(finding)
    if escalated:
        text = "Drift still open past the SLA: " + "; ".join(
            f"{drift_ref(d.id)}: {d.email} in {d.provider}/{d.group}" for d in escalated)
        await deps.notifier.notify([Notice(m, "drift", text, None) for m in sorted(deps.policy.security_members())])
