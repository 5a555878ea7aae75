"""The security team's compliance words (SPEC §4.1): ``resume removals``, ``resume reroutes``, ``drift``,
``drift remove``, ``drift accept``.

The buttons of the compliance cards reuse the same functions: :func:`drift_remove` (deps, actor, finding
number, reason), :func:`handlers.compliance.accept.drift_accept` (deps, actor, finding number, duration,
reason) and :func:`handlers.compliance.brake.resume_removals` (deps, actor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.compliance.accept import drift_accept
from handlers.compliance.accept_links import plan_drift_removal, settle_removal
from handlers.compliance.brake import resume_removals
from handlers.compliance.findings import accept_key, drift_ref, remove_key, tell_outcome
from handlers.compliance.reroute_brake import resume_reroutes
from handlers.context import Deps
from handlers.grammar import _split_reason
from handlers.ports import Person
from handlers.views import Reply, refused


@dataclass(frozen=True)
class ResumeRemovals:
    reason: str | None = None  # a card's button: the pause it showed and the count the person saw
    count: int | None = None
    pause: str | None = None  # and which removals it held (a digest): a different set is another pause
    named: str | None = None  # ``resume removals <pause>`` in words: that pause only (terminated, ineligible, RV-n)


@dataclass(frozen=True)
class ResumeReroutes:
    """``resume reroutes``: the manager changes the safety brake held are passed on at the next sweep."""


@dataclass(frozen=True)
class DriftList:
    pass


@dataclass(frozen=True)
class DriftRemove:
    finding: int
    reason: str | None


@dataclass(frozen=True)
class DriftAccept:
    finding: int
    duration: str | None
    reason: str | None


ComplianceCommand = ResumeRemovals | ResumeReroutes | DriftList | DriftRemove | DriftAccept
COMPLIANCE_COMMANDS = (ResumeRemovals, ResumeReroutes, DriftList, DriftRemove, DriftAccept)
_NAMES = {ResumeRemovals: "resume removals", ResumeReroutes: "resume reroutes", DriftList: "drift",
          DriftRemove: "drift remove", DriftAccept: "drift accept"}


def parse_compliance(text: str) -> ComplianceCommand | None:
    """The compliance words, or None. Free text is kept whole: the service refuses what is over its limit."""
    words = text.strip().lower().split()
    if words == ["resume", "removals"]:
        return ResumeRemovals()
    if words[:2] == ["resume", "removals"] and 3 <= len(words) <= 4:
        named = " ".join(words[2:])
        m = re.fullmatch(r"(?:review\s+)?rv-([0-9]{1,9})", named)
        if m:
            return ResumeRemovals(named=f"review RV-{int(m.group(1))}")
        if named in ("terminated", "ineligible"):
            return ResumeRemovals(named=named)
    if words in (["resume", "reroutes"], ["resume", "re-routes"]):
        return ResumeReroutes()
    if words == ["drift"]:
        return DriftList()
    m = re.fullmatch(r"\s*drift\s+remove\s+d-([0-9]{1,9})(?:\s+because\s+(.+))?\s*", text, re.IGNORECASE | re.DOTALL)
    if m:
        return DriftRemove(int(m.group(1)), (m.group(2) or "").strip() or None)
    m = re.fullmatch(r"\s*drift\s+accept\s+d-([0-9]{1,9})(\s.*)?", text, re.IGNORECASE | re.DOTALL)
    if m:
        head, reason = _split_reason(m.group(2) or "")
        duration = re.fullmatch(r"for\s+(.+)", head, re.IGNORECASE | re.DOTALL)
        if head and duration is None:
            return None  # not the accept grammar: answered with help
        return DriftAccept(int(m.group(1)), duration.group(1).strip() if duration else None, reason or None)
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
            return await resume_removals(deps, who, cmd.reason, cmd.count, cmd.pause, named=cmd.named)
        case ResumeReroutes():
            return await resume_reroutes(deps, who)
        case DriftList():
            return await drift_list(deps)
        case DriftRemove():
            return await drift_remove(deps, who, cmd.finding, cmd.reason)
        case DriftAccept():
            return await drift_accept(deps, who, cmd.finding, cmd.duration, cmd.reason)


async def drift_list(deps: Deps) -> Reply:
    async with deps.store.read() as repo:
        findings = await repo.open_drift()
        doing = {d.id: (await repo.get_state(accept_key(d.id or 0)), await repo.get_state(remove_key(d.id or 0)))
                 for d in findings}
    if not findings:
        return Reply(text="No open drift findings.")
    lines = []
    for d in findings:
        filed, removing = doing[d.id]
        note = (f" — removal queued (by {removing.get('by')})" if removing else
                f" — exception {filed.get('request_id')} waiting (filed by {filed.get('by')})" if filed else "")
        lines.append(f"{drift_ref(d.id)}: {d.email} " + ("is in" if d.kind == "member" else
                     "holds a grant but is not in") + f" {d.provider}/{d.group} since {d.first_seen:%Y-%m-%d %H:%M} UTC"
                     + note)
    return Reply(text="Open drift findings:\n" + "\n".join(lines))


async def drift_remove(deps: Deps, who: str, finding_id: int, reason: str | None) -> Reply:
    """Remove a drifted member through the provider within the command, as ``revoke`` does."""
    ref = drift_ref(finding_id)
    if not reason:
        return refused("reason", f"say why: `drift remove {ref} because <reason>`.")
    now = deps.now()
    async with deps.store.write() as repo:
        finding = await repo.get_drift(finding_id)
        if finding is None:
            return refused("not-found", f"there is no open drift finding {ref}.")
        if finding.resolved_at is not None:
            return refused("resolved", f"{ref} is already resolved; see `report drift`.")
        if finding.kind != "member":
            return refused("not-a-member", f"{ref} is a grant holder who is not a member: nothing to remove (the bot "
                           "restores or ends that grant by itself).")
        filed = await repo.get_state(accept_key(finding_id))
        if filed is not None:
            existing = filed.get("request_id")
            return refused("accept-pending", f"{ref} is being accepted through {existing}: deny it there (or wait "
                           "for its chain); a denial removes the member.", data={"existing": existing})
        if await repo.get_state(remove_key(finding_id)) is not None:
            where = f"{finding.provider}/{finding.group}"
            return refused("removing", f"{finding.email} is being removed from {where} already.")
        op = await plan_drift_removal(repo, finding, who, now, reason=reason)
        if op is not None:
            await repo.append("drift.remove_requested", actor=who, ts=now, data={
                "id": ref, "provider": finding.provider, "group": finding.group, "user": finding.email,
                "reason": reason})
    if op is None:
        return refused("busy", f"{ref}: {finding.email} is covered by a grant or already being removed.")
    where = f"{finding.provider}/{finding.group}"
    status = await settle_removal(deps, finding, said=f"{ref} resolved: {who} removed {finding.email} from {where}, "
                                                      f"because {reason}.")
    if status != "done":
        await tell_outcome(deps, finding, f"{ref}: {who} is removing {finding.email} from {where} (queued, "
                                          f"{status}), because {reason}.")
        return Reply(text=f"{ref}: removing {finding.email} from {where} is queued ({status}); it is retried "
                     "until it succeeds.", ok=True)
    return Reply(text=f"{ref} resolved: {finding.email} was removed from {where}.")
