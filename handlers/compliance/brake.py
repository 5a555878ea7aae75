"""The safety brake (SPEC §3.6): removals the source of truth triggers in bulk wait for a person.

Leavers, movers and a review's removals count per sweep or campaign close, one per membership. Above
``safety.max_removals`` none of them runs: ``automation.paused`` {reason, count, sample} is recorded
(again only when the count changes) and the security team is told. ``resume removals`` from a security
team member records ``automation.resumed`` {count: the count they saw}; the next sweep whose count is
no larger runs them. When the source is fixed first, the count falls back under the limit and the pause
ends by itself (``automation.resumed`` {count: 0}). Expiry, release and revoke never pass through here.
"""

from __future__ import annotations

from typing import Any

from handlers.context import SYSTEM, Deps
from handlers.ports import Notice
from handlers.views import Reply

SAMPLE = 10
REASONS = ("terminated", "ineligible", "review")  # each source of bulk removals has its own pause


def _key(reason: str) -> str:
    return f"safety_brake:{reason}"


async def brake_state(deps: Deps, reason: str) -> dict[str, Any]:
    async with deps.store.read() as repo:
        return await repo.get_state(_key(reason)) or {}


async def may_remove(deps: Deps, count: int, sample: list[str], reason: str, *, dry_run: bool = False) -> bool:
    """Count ``count`` bulk removals triggered by ``reason`` against the brake; True when they may run.

    ``sample`` names a few of them (``user from provider/group``) for the security team. A review's close
    calls this with its removals before executing them, as the leaver and mover sweeps do.
    """
    limit = deps.policy.safety.max_removals
    now = deps.now()
    key = _key(reason)
    async with deps.store.write() as repo:
        state = await repo.get_state(key) or {}
        paused = bool(state.get("paused"))
        if count <= limit:
            if paused and not dry_run:
                await repo.set_state(key, {}, now)
                await repo.append("automation.resumed", actor=SYSTEM, ts=now, data={"count": 0, "reason": reason})
            return True
        approved = state.get("resumed_count")
        if paused and approved is not None and count <= int(approved):
            if not dry_run:
                await repo.set_state(key, {}, now)
            return True
        if dry_run or (paused and state.get("count") == count and state.get("reason") == reason):
            return False
        shown = sample[:SAMPLE]
        await repo.set_state(key, {"paused": True, "count": count, "reason": reason, "sample": shown}, now)
        await repo.append("automation.paused", actor=SYSTEM, ts=now,
                          data={"reason": reason, "count": count, "limit": limit, "sample": shown})
    text = (f"Removals paused: {count} {reason} removals in one sweep is above safety.max_removals ({limit}). "
            f"For example: {'; '.join(shown)}. Check the identity provider; say `resume removals` to run them.")
    await deps.notifier.notify([Notice(m, "brake", text, None) for m in sorted(deps.policy.security_members())])
    return False


async def resume_removals(deps: Deps, who: str, count: int | None = None) -> Reply:
    """``resume removals`` (security team): the removals the pause held run at the next sweep.

    ``count`` is the number the person was shown (a card's button carries it): when the pauses now hold
    a different number, nothing is resumed and they are told to look again.
    """
    now = deps.now()
    resumed = []
    async with deps.store.write() as repo:
        states = {reason: await repo.get_state(_key(reason)) or {} for reason in REASONS}
        held = sum(int(s.get("count") or 0) for s in states.values() if s.get("paused"))
        if count is not None and held and count != held:
            return Reply(text=f"Not resumed: the paused removals are now {held}, not the {count} you saw. Look at "
                         "the latest notice and resume again.", ok=False, kind="refusal", rule="count-changed")
        for reason in REASONS:
            state = states[reason]
            if not state.get("paused"):
                continue
            count = int(state.get("count") or 0)
            await repo.set_state(_key(reason), {**state, "resumed_count": count, "resumed_by": who}, now)
            await repo.append("automation.resumed", actor=who, ts=now, data={"count": count, "reason": reason})
            resumed.append(f"{count} {reason}")
    if not resumed:
        return Reply(text="Nothing is paused: removals run as usual.", ok=True)
    return Reply(text=f"Resumed: the paused removals ({', '.join(resumed)}) run at the next sweep.")
