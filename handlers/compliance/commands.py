"""The security team's compliance words (SPEC §4.1): ``resume removals``, ``drift``, ``drift remove``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.compliance.brake import resume_removals
from handlers.context import SYSTEM, Deps
from handlers.drift import drift_ref
from handlers.grants import plan_membership_removal, run_op
from handlers.ports import Person
from handlers.views import Reply


@dataclass(frozen=True)
class ResumeRemovals:
    reason: str | None = None  # a card's button: the pause it showed and the count the person saw
    count: int | None = None


@dataclass(frozen=True)
class DriftList:
    pass


@dataclass(frozen=True)
class DriftRemove:
    finding: int
    reason: str | None


ComplianceCommand = ResumeRemovals | DriftList | DriftRemove
COMPLIANCE_COMMANDS = (ResumeRemovals, DriftList, DriftRemove)
_NAMES = {ResumeRemovals: "resume removals", DriftList: "drift", DriftRemove: "drift remove"}


def parse_compliance(text: str) -> ComplianceCommand | None:
    words = text.strip().lower().split()
    if words == ["resume", "removals"]:
        return ResumeRemovals()
    if words == ["drift"]:
        return DriftList()
    m = re.fullmatch(r"\s*drift\s+remove\s+d-(\d{1,9})(?:\s+because\s+(.+))?\s*", text, re.IGNORECASE | re.DOTALL)
    if m:
        return DriftRemove(int(m.group(1)), (m.group(2) or "").strip()[:500] or None)
    return None


async def handle_compliance(deps: Deps, actor: Person, cmd: ComplianceCommand) -> Reply:
    who = actor.email.lower()
    name = _NAMES[type(cmd)]
    if not deps.is_security(who):
        async with deps.store.write() as repo:
            await repo.append("command.refused", actor=who, ts=deps.now(),
                              data={"command": name, "reason": "not in the security team"})
        return Reply(text=f"`{name}` is for the security team only.", ok=False, kind="refusal", rule="security-only")
    if not actor.active:
        return Reply(text="Your account is not active; the bot cannot act for you.", ok=False, kind="refusal",
                     rule="inactive")
    match cmd:
        case ResumeRemovals():
            return await resume_removals(deps, who, cmd.reason, cmd.count)
        case DriftList():
            return await drift_list(deps)
        case DriftRemove():
            return await drift_remove(deps, who, cmd)


async def drift_list(deps: Deps) -> Reply:
    async with deps.store.read() as repo:
        findings = await repo.open_drift()
    if not findings:
        return Reply(text="No open drift findings.")
    lines = [f"{drift_ref(d.id)}: {d.email} " + ("is in" if d.kind == "member" else "holds a grant but is not in")
             + f" {d.provider}/{d.group} since {d.first_seen:%Y-%m-%d %H:%M} UTC" for d in findings]
    return Reply(text="Open drift findings:\n" + "\n".join(lines))


async def drift_remove(deps: Deps, who: str, cmd: DriftRemove) -> Reply:
    """Remove a drifted member through the provider within the command, as ``revoke`` does."""
    ref = drift_ref(cmd.finding)
    if not cmd.reason:
        return Reply(text=f"Say why: `drift remove {ref} because <reason>`.", ok=False, kind="refusal", rule="reason")
    now = deps.now()
    async with deps.store.write() as repo:
        finding = next((d for d in await repo.open_drift() if d.id == cmd.finding), None)
        if finding is None:
            return Reply(text=f"There is no open drift finding {ref}.", ok=False, kind="refusal", rule="not-found")
        if finding.kind != "member":
            return Reply(text=f"{ref} is a grant holder who is not a member: nothing to remove. End the grant "
                         "with `revoke REQ-n because …` or let the holder request again.", ok=False,
                         kind="refusal", rule="not-a-member")
        op = await plan_membership_removal(repo, finding.provider, finding.group, finding.email, "drift", now)
        await repo.append("drift.remove_requested", actor=who, ts=now, data={
            "id": ref, "provider": finding.provider, "group": finding.group, "user": finding.email,
            "reason": cmd.reason})
    if op is None:
        return Reply(text=f"{ref}: {finding.email} is covered by a grant or already being removed.", ok=False,
                     kind="refusal", rule="busy")
    status = await run_op(deps, op.id or 0)
    if status != "done":
        return Reply(text=f"{ref}: removing {finding.email} from {finding.provider}/{finding.group} is queued "
                     f"({status}); it is retried until it succeeds.", ok=True)
    async with deps.store.write() as repo:
        await repo.resolve_drift(finding.id or 0, deps.now())
        await repo.append("drift.resolved", actor=SYSTEM, ts=deps.now(), data={
            "id": ref, "provider": finding.provider, "group": finding.group, "user": finding.email,
            "resolution": "removed", "by": who})
    return Reply(text=f"{ref} resolved: {finding.email} was removed from {finding.provider}/{finding.group}.")
