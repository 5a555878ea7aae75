"""The security team's compliance words (SPEC §4.1): ``resume removals``."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.compliance.brake import resume_removals
from handlers.context import Deps
from handlers.ports import Person
from handlers.views import Reply


@dataclass(frozen=True)
class ResumeRemovals:
    pass


COMPLIANCE_COMMANDS = (ResumeRemovals,)


def parse_compliance(text: str) -> ResumeRemovals | None:
    words = text.lower().split()
    if words == ["resume", "removals"]:
        return ResumeRemovals()
    return None


async def handle_compliance(deps: Deps, actor: Person, cmd: ResumeRemovals) -> Reply:
    who = actor.email.lower()
    if not deps.is_security(who):
        async with deps.store.write() as repo:
            await repo.append("command.refused", actor=who, ts=deps.now(),
                              data={"command": "resume removals", "reason": "not in the security team"})
        return Reply(text="`resume removals` is for the security team only.", ok=False, kind="refusal",
                     rule="security-only")
    if not actor.active:
        return Reply(text="Your account is not active; the bot cannot act for you.", ok=False, kind="refusal",
                     rule="inactive")
    return await resume_removals(deps, who)
