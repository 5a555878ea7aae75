"""The safety brake (SPEC §3.6): removals the source of truth triggers in bulk wait for a person.

Leavers, movers and a review's removals count per sweep or campaign close, one per membership (a sweep's
leavers and movers together). Above ``safety.max_removals`` none of them runs: ``automation.paused`` {reason,
count, sample} is recorded (again only when the count or the set held changes) and the security team is told,
through the outbox (handlers/outbox.py: the notice is written with the pause).
The notice of a pause resumed, ended or replaced before it was sent is dropped, unsent
(handlers/compliance/pause_stale.py). ``resume removals`` from a security team member records
``automation.resumed`` {count: the count they saw};
the next sweep whose count is no larger, and whose removals are among those held, runs them, as does one within
the limit that adds new removals to what is left of them (a new set above the limit is a new pause). When the source
is fixed first, the count falls back under the limit and the pause ends by itself (``automation.resumed``
{count: 0}). Expiry, release and revoke never pass through here.

A review's pause names the people who may not resume it (``barred``: whoever closed the campaign and whoever
decided one of its removals): SPEC §7 wants a second person above ``safety.max_removals``, and the resume is
that person when the review has no ``sign_off``. Their ``resume removals`` leaves that pause in force (recorded
as ``command.refused``) and resumes the other pauses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from typing import Any

from handlers.compliance.pause_stale import pause_key
from handlers.compliance.views import PauseView
from handlers.context import SYSTEM, Deps
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from handlers.views import Reply

SAMPLE = 10
REASONS = ("terminated", "ineligible")  # each source of bulk removals has its own pause
INDEX = "safety_brake:index"  # the other pauses now in force: a review's close (``review RV-n``)


def _key(reason: str) -> str:
    return pause_key(reason)


async def _reasons(repo: Any) -> list[str]:
    """Every source that may hold a pause: the sweeps' own and each paused review's."""
    index = await repo.get_state(INDEX) or {}
    return [*REASONS, *(r for r in index.get("reasons") or () if r not in REASONS)]


async def _index(repo: Any, reason: str, paused: bool, now: Any) -> None:
    if reason in REASONS:
        return
    index = await repo.get_state(INDEX) or {}
    listed = [r for r in index.get("reasons") or () if r != reason] + ([reason] if paused else [])
    if listed != list(index.get("reasons") or ()):
        await repo.set_state(INDEX, {"reasons": listed}, now)


async def brake_state(deps: Deps, reason: str) -> dict[str, Any]:
    async with deps.store.read() as repo:
        return await repo.get_state(_key(reason)) or {}


async def may_remove(deps: Deps, count: int, sample: list[str], reason: str, *, dry_run: bool = False,
                     together: int | None = None, complete: bool = True, barred: Collection[str] = ()) -> bool:
    """Count ``count`` bulk removals triggered by ``reason`` against the brake; True when they may run.

    ``sample`` names them all (``user from provider/group``; the security team is shown a few). A review's
    close calls this with its removals before executing them, as the leaver and mover sweeps do.
    ``together``: the removals of the whole sweep (leavers and movers count together against the limit).
    ``complete=False``: the sweep could not judge everyone (a lookup or a listing failed), so a lower count
    says nothing about the source being fixed: a pause in force holds, and is not ended.
    ``barred``: people who may not resume the pause this records (a review's closer and deciders); a pause that
    replaces one of the same ``reason`` keeps the people that one barred.

    A resume lets through the removals the security team saw (the pause's ``held`` set) or fewer of them,
    never others above the limit: a set the pause did not hold is a new pause, even at the same count. Within the
    limit, new removals run with what is left of a resumed pause, as they would have run had nothing been paused.
    """
    limit = deps.policy.safety.max_removals
    now = deps.now()
    key = _key(reason)
    total = max(count, together if together is not None else count)
    async with deps.store.write() as repo:
        state = await repo.get_state(key) or {}
        paused = bool(state.get("paused"))
        held = state.get("held")
        seen = held is None or set(sample) <= set(held)  # pauses recorded before ``held``: as before
        approved = state.get("resumed_count")
        released = paused and approved is not None  # a security team member resumed it
        under = total <= limit or count == 0
        # what the pause held, or fewer of them, at any count; or, within the limit, what is left of them with new
        # removals (those would have run had nothing been paused)
        resumed = released and ((count <= int(approved) and seen) or under)
        if paused and not complete and not resumed:
            return False  # a partial count cannot say the removals vanished: the pause holds as it is
        # what a resume let through, while the process that passed the brake carries it out: another process's
        # sweep that judged the same removals before they ran is not a new pause of what was already released
        through = set(state.get("let_through") or ()) if not paused else set()
        if through and count and set(sample) <= through:
            return True
        if through and complete and not dry_run and not set(sample) & through:
            await repo.set_state(key, {}, now)  # a sweep that judged everyone found none of them due any more
        if under and not (paused and not complete):
            if paused and not resumed and held is not None and set(sample) & set(held):
                return False  # some of what the pause held is still asked for: it waits for a resume, however few
            if paused and not dry_run:
                await repo.set_state(key, _let_through(reason, held, sample) if released else {}, now)
                await _index(repo, reason, False, now)
                if not released:  # the source was fixed first: the removals vanished
                    await repo.append("automation.resumed", actor=SYSTEM, ts=now,
                                      data={"count": 0, "reason": reason})
            return True
        if state.get("released"):
            return True  # a campaign's removals, let through once: a second process closing it is not a new pause
        if resumed:
            if not dry_run and complete:  # a partial sweep runs what it found of them; the pause (and its resume)
                # stays until a sweep that judged everyone
                # the sweeps' pauses end; a campaign's is marked released, as it runs its removals only once
                await repo.set_state(key, _let_through(reason, held, sample) if reason in REASONS
                                     else {"released": True, "count": count}, now)
                await _index(repo, reason, False, now)
            return True
        if dry_run or (paused and state.get("count") == count and state.get("reason") == reason and seen):
            return False
        shown = sample[:SAMPLE]
        pause = pause_digest(sample)
        kept_out = sorted({b.lower() for b in barred} | {str(b) for b in state.get("barred") or ()})
        await repo.set_state(key, {"paused": True, "count": count, "reason": reason, "sample": shown,
                                   "limit": limit, "held": sorted(set(sample)), "pause": pause,
                                   **({"barred": kept_out} if kept_out else {})}, now)
        await _index(repo, reason, True, now)
        await repo.append("automation.paused", actor=SYSTEM, ts=now,
                          data={"reason": reason, "count": count, "limit": limit, "sample": shown})
        text = (f"Removals paused: {count} {reason} removals at once is above safety.max_removals ({limit}). "
                f"For example: {'; '.join(shown)}. Check the identity provider; say `resume removals` to run them."
                + (f" Not resumed by {', '.join(kept_out)}: they closed the review or decided its removals, and a "
                   "second person releases them." if kept_out else ""))
        view = PauseView(reason=reason, count=count, limit=limit, sample=tuple(shown), pause=pause)
        # written to the outbox with the pause, sent once it is committed (handlers/outbox.py)
        await repo.queue_notices([Notice(m, "brake", text, None, view) for m in sorted(deps.policy.security_members())],
                                 now)
    await deliver_pending(deps)
    return False


def _let_through(reason: str, held: list[str] | None, sample: list[str]) -> dict[str, Any]:
    """The state of a sweep's pause a resume released: no pause, and the removals it let through (what the pause
    held and what ran with it), so that a sweep of another process that judged them before they ran passes them
    too rather than pause them anew. Kept until a sweep that judged everyone finds none of them due."""
    return {"let_through": sorted(set(held or ()) | set(sample)), "reason": reason}


def pause_digest(removals: list[str]) -> str:
    """Which pause: the first 12 hex digits of the SHA-256 of the removals it holds, sorted."""
    return hashlib.sha256("\n".join(sorted(set(removals))).encode()).hexdigest()[:12]


async def resume_removals(deps: Deps, who: str, reason: str | None = None, count: int | None = None,
                          pause: str | None = None, *, named: str | None = None) -> Reply:
    """``resume removals`` (security team): the removals the pause held run at the next sweep.

    The words resume every pause at the count it has now; ``resume removals terminated`` (``ineligible``,
    ``RV-n``: ``named``) only that pause, and a name no pause in force has resumes nothing (rule ``no-pause``,
    naming the pauses in force). A card's button names the pause it showed
    (``reason``) and the count the person saw: when that pause's count has changed since (or it ended),
    nothing is resumed and they are told the count now. A pause already resumed at its count is not
    resumed twice (a double click records one ``automation.resumed``). A ``count`` without a ``reason``
    is the total the person saw over every pause: when the pauses now hold another number, nothing is
    resumed (rule ``count-changed``). A pause that bars ``who`` (they closed the review or decided one of its
    removals) is not resumed by them: ``command.refused``, and the answer names who else may (rule
    ``own-removals`` when nothing else was resumed).
    """
    now = deps.now()
    resumed, already, withheld = [], [], []
    me = who.lower()
    async with deps.store.write() as repo:
        reasons = await _reasons(repo)
        if reason is None and count is not None:
            states = [await repo.get_state(_key(name)) or {} for name in reasons]
            held = sum(int(st.get("count") or 0) for st in states if st.get("paused"))
            if held and held != count:
                return Reply(text=f"Not resumed: the paused removals are now {held}, not the {count} you saw. Look "
                             "at the latest notice and resume again.", ok=False, kind="refusal", rule="count-changed")
        if named is not None and reason is None:
            paused = [name for name in reasons if (await repo.get_state(_key(name)) or {}).get("paused")]
            if named not in paused:
                return Reply(text=f"No {named} removals are paused. "
                             + (f"Paused now: {', '.join(paused)} (say `resume removals <that>`)." if paused
                                else "Nothing is paused: removals run as usual."),
                             ok=False, kind="refusal", rule="no-pause", data={"paused": paused})
            reasons = [named]
        if reason is not None:
            state = await repo.get_state(_key(reason)) or {} if reason in reasons else {}
            now_count = int(state.get("count") or 0) if state.get("paused") else 0
            if now_count == count and pause and state.get("pause") and pause != state.get("pause"):  # another set
                return Reply(text=f"The pause you saw has ended: {now_count} other {reason} removals are paused "
                             "now. Check the new notice; nothing is resumed.", ok=False, kind="refusal",
                             rule="stale-count", data={"reason": reason, "count": now_count})
            if now_count != count:
                text = (f"The pause you saw ({count} {reason} removals) has ended: nothing is resumed."
                        if not now_count else f"The count changed: {now_count} {reason} removals are paused now, "
                        f"not the {count} you saw. Check the new notice; nothing is resumed.")
                return Reply(text=text, ok=False, kind="refusal", rule="stale-count",
                             data={"reason": reason, "count": now_count})
            reasons = [reason]
        for name in reasons:
            state = await repo.get_state(_key(name)) or {}
            if not state.get("paused"):
                continue
            count_now = int(state.get("count") or 0)
            if state.get("resumed_count") == count_now:
                already.append(f"{count_now} {name} (by {state.get('resumed_by')})")
                continue
            barred = {str(b) for b in state.get("barred") or ()}
            if me in barred:  # one person never both decides removals and releases them alone
                others = sorted(set(deps.policy.security_members()) - barred)
                await repo.append("command.refused", actor=who, ts=now, data={
                    "command": "resume removals", "reason": "closed the review or decided one of its removals",
                    "pause": name})
                withheld.append(f"{count_now} {name}: you closed that review or decided one of its removals, so "
                                "another member of the security team resumes it ("
                                + (", ".join(others) if others else "nobody else on the security team may: its "
                                   "removals stay paused; start a new campaign") + ")")
                continue
            await repo.set_state(_key(name), {**state, "resumed_count": count_now, "resumed_by": who}, now)
            await repo.append("automation.resumed", actor=who, ts=now, data={"count": count_now, "reason": name})
            resumed.append(f"{count_now} {name}")
    kept = f" Still paused: {'; '.join(withheld)}." if withheld else ""
    if not resumed and withheld:
        text = (f"Already resumed: {', '.join(already)}; the removals run at the next sweep." if already else
                "Nothing is resumed.") + kept
        return Reply(text=text, ok=False, kind="refusal", rule="own-removals")
    if not resumed and already:
        return Reply(text=f"Already resumed: {', '.join(already)}; the removals run at the next sweep.")
    if not resumed:
        return Reply(text="Nothing is paused: removals run as usual.", ok=True)
    return Reply(text=f"Resumed: the paused removals ({', '.join(resumed)}) run at the next sweep.{kept}")
