"""The safety brake on re-routes (SPEC §3.6, as for removals): a sweep that would pass more than
``safety.max_reroutes`` waiting ``manager`` steps to new managers at once passes none of them.

The reminders sweep trusts the identity provider's manager attribute; a provider answering wrong managers for
many people at once would otherwise hand many approvals to the wrong people in one sweep. Above the limit the
sweep records ``approval.reroutes_held`` {count, limit, requests, reroutes: [{request, step, from, to}]} (again
only when the set held changes) and tells the security team through the outbox, in the same transaction. While
held, each step stays with the manager it asked (who may still decide it; the manager the provider names now is
refused, rule ``reroute-held``).

The hold ends:

- by ``resume reroutes`` from a security team member (``approval.reroutes_released`` {count, requests} by them):
  the next sweep passes on the re-routes the hold showed, or fewer of them, never others (a different set over
  the limit is a new hold);
- by itself when none of the re-routes it held is still wanted (the provider answers the old managers again, or
  the requests were decided or withdrawn): ``approval.reroutes_released`` {count: 0} by ``system``. A sweep that
  could not look everyone up never ends or replaces a hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.chains import ResolvedStep
from handlers.context import SYSTEM, Deps, scope_cache
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from handlers.records import RequestRecord, req_number
from handlers.repository import Repository
from handlers.views import Reply

KEY = "reroute_brake"
SHOWN = 10  # re-routes named in the security team's notice (the event names them all)


@dataclass(frozen=True)
class Reroute:
    """One re-route a sweep wants: the open step (1-based) of ``ref``'s ``round`` from ``old`` to ``new``."""

    ref: str
    round: int
    step: int
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.ref}#{self.round}.{self.step}:{','.join(self.old)}>{','.join(self.new)}"

    def item(self) -> dict[str, Any]:
        return {"request": self.ref, "round": self.round, "step": self.step, "from": list(self.old),
                "to": list(self.new)}

    def text(self) -> str:
        return f"{self.ref} {', '.join(self.old) or '-'} → {', '.join(self.new)}"


def _held(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(state.get("held") or {})


async def may_reroute(deps: Deps, wanted: Sequence[Reroute], *, dry_run: bool = False,
                      complete: bool = True) -> bool:
    """Count a sweep's re-routes against ``safety.max_reroutes``; True when they may all run now.

    ``complete=False``: some requests could not be judged (a look-up failed), so the count is not the whole
    story: a hold in force stays as it is (neither ended nor replaced)."""
    limit = deps.policy.safety.max_reroutes
    now = deps.now()
    keys = {r.key for r in wanted}
    _forget_state()  # read afresh: another process's sweep may have held or released since this scope read it
    if len(keys) <= limit and not await _state(deps):
        return True  # no hold in force and none needed: a read, no write lock (most sweeps)
    _forget_state()
    async with deps.store.write() as repo:
        state = await repo.get_state(KEY) or {}
        held = _held(state)
        released = held and state.get("released_by") is not None
        if held and not complete and not released:
            if not dry_run:
                await _keep_waiting(repo, state, wanted, now)
            return False
        if len(keys) <= limit:
            if held and not released and keys & set(held):
                if not dry_run:
                    await _keep_waiting(repo, state, wanted, now)
                return False  # some of what the hold showed is still wanted: it waits for a release, however few
            if held and not dry_run and complete:
                await repo.set_state(KEY, {}, now)
                await repo.mark_reroutes_held({})
                if not released:  # the provider was fixed first (or the requests moved on): the hold ends by itself
                    await repo.append("approval.reroutes_released", actor=SYSTEM, ts=now, data={
                        "count": 0, "requests": sorted({str(i.get("request")) for i in held.values()})})
            elif released and not dry_run:
                await _passed_on(repo, state, keys, now)
            return True
        if released and keys <= set(held):
            if not dry_run and complete:
                await repo.set_state(KEY, {}, now)
                await repo.mark_reroutes_held({})
            elif not dry_run:
                await _passed_on(repo, state, keys, now)
            return True
        if dry_run or (held and set(held) == keys):
            return False  # the same set as the hold in force: recorded once
        ordered = sorted(wanted, key=lambda r: (_ref_number(r.ref), r.key))
        requests = sorted({r.ref for r in wanted}, key=_ref_number)
        await repo.set_state(KEY, {"held": {r.key: r.item() for r in ordered}, "count": len(keys), "limit": limit,
                                   "since": state.get("since") or now.isoformat()}, now)
        # each held request is marked: a view reads the hold only for a request whose open step it marks
        await _mark(repo, {r.key: r.item() for r in ordered})
        await repo.append("approval.reroutes_held", actor=SYSTEM, ts=now, data={
            "count": len(keys), "limit": limit, "requests": requests, "reroutes": [r.item() for r in ordered]})
        shown = [r.text() for r in ordered[:SHOWN]]
        more = f" and {len(ordered) - SHOWN} more" if len(ordered) > SHOWN else ""
        text = (f"Re-routes held: the identity provider names a new manager for {len(keys)} waiting approvals at "
                f"once, above safety.max_reroutes ({limit}); none was passed on and each stays with the manager it "
                f"asked. {'; '.join(shown)}{more}. Check the identity provider's manager data; say `resume reroutes` "
                "to pass them on at the next sweep.")
        await repo.queue_notices([Notice(m, "brake", text) for m in sorted(deps.policy.security_members())], now)
    await deliver_pending(deps)
    return False


async def _keep_waiting(repo: Repository, state: dict[str, Any], wanted: Sequence[Reroute], now: datetime) -> None:
    """A hold in force (not released) keeps a sweep's new re-routes waiting with those it holds: they join the
    hold (listed, marked, and released with it), so their steps stay with the managers they asked as the sweep
    says, instead of going to whoever the provider names now at their first click."""
    held = _held(state)
    new = sorted((r for r in wanted if r.key not in held), key=lambda r: (_ref_number(r.ref), r.key))
    if not new:
        return
    held.update({r.key: r.item() for r in new})
    await repo.set_state(KEY, {**state, "held": held, "count": len(held)}, now)
    await _mark(repo, held)


async def _mark(repo: Repository, held: dict[str, dict[str, Any]]) -> None:
    await repo.mark_reroutes_held({n: _int(i.get("round")) * 100 + _int(i.get("step")) - 1 for i in held.values()
                                   if (n := req_number(i.get("request"))) is not None})


async def _passed_on(repo: Repository, state: dict[str, Any], keys: set[str], now: datetime) -> None:
    """A released hold, and a sweep that could not look everyone up passes on ``keys``: they leave the hold (their
    steps are no longer pinned to the managers they are passed away from); the rest of the release waits for the
    next sweep."""
    left = {k: v for k, v in _held(state).items() if k not in keys}
    if not left:
        await repo.set_state(KEY, {}, now)
        await repo.mark_reroutes_held({})
        return
    await repo.set_state(KEY, {**state, "held": left, "count": len(left)}, now)
    await _mark(repo, left)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _ref_number(ref: str) -> int:
    return req_number(ref) or 0


_SCOPE_KEY = ("reroute-brake",)


async def _state(deps: Deps) -> dict[str, Any]:
    """The brake's stored state, read once per look-up scope (a click, a command, a sweep; dropped by what
    changes it): every view of a waiting manager step consults it."""
    scope = scope_cache()
    if scope is not None and _SCOPE_KEY in scope:
        return scope[_SCOPE_KEY]
    async with deps.store.read() as repo:
        state = await repo.get_state(KEY) or {}
    if scope is not None:
        scope[_SCOPE_KEY] = state
    return state


async def hold_state(deps: Deps) -> dict[str, Any]:
    """The brake's stored state ({held, count, limit, since, released_by, released_at}; empty when nothing is
    held), as this look-up scope read it."""
    return dict(await _state(deps))


def _forget_state() -> None:
    scope = scope_cache()
    if scope is not None:
        scope.pop(_SCOPE_KEY, None)


async def held_reroute(deps: Deps, record: RequestRecord) -> dict[str, Any] | None:
    """The held re-route of ``record``'s open step ({request, round, step, from, to}), or None."""
    state = await _state(deps)
    for item in _held(state).values():
        if item.get("request") == record.ref and item.get("round") == record.round \
                and item.get("step") == record.step + 1:
            return item
    return None


async def pin_held(deps: Deps, record: RequestRecord, chain: list[ResolvedStep]) -> list[ResolvedStep]:
    """``chain`` with its open ``manager`` step left with the manager it asked while its re-route is held:
    they may decide it, and the manager the provider names now may not (``held_for``)."""
    if record.id is None or record.step >= len(chain) or chain[record.step].step.kind != "manager" \
            or record.reroute_held != record.round * 100 + record.step:
        return chain  # not marked held (most requests): nothing to read
    item = await held_reroute(deps, record)
    if item is None:
        return chain
    step = chain[record.step]
    old = frozenset(str(a).lower() for a in item.get("from") or ())
    asked = record.asked_now
    if asked is not None:
        # the hold names whom the step stays with; the request itself records whom it asked (with the event that
        # asked them): only those may decide it, whatever a stored hold says (a hand-edited one naming others)
        old = (old & asked) or (asked - step.pool)
    if not old:
        return chain
    pinned = list(chain)
    pinned[record.step] = ResolvedStep(step=step.step, index=step.index, pool=old, need=1, asked=old,
                                       held_for=step.pool)
    return pinned


async def resume_reroutes(deps: Deps, who: str) -> Reply:
    """``resume reroutes`` (security team): the re-routes the hold showed run at the next sweep."""
    now = deps.now()
    _forget_state()
    async with deps.store.write() as repo:
        state = await repo.get_state(KEY) or {}
        held = _held(state)
        if not held:
            return Reply(text="No re-routes are held: manager changes are passed on as usual.", ok=True)
        if state.get("released_by"):
            return Reply(text=f"Already released by {state['released_by']}: the {len(held)} held re-routes run at "
                         "the next sweep.")
        requests = sorted({str(i.get("request")) for i in held.values()}, key=_ref_number)
        await repo.set_state(KEY, {**state, "released_by": who, "released_at": now.isoformat()}, now)
        await repo.append("approval.reroutes_released", actor=who, ts=now,
                          data={"count": len(held), "requests": requests})
    return Reply(text=f"Released: the {len(held)} held re-routes ({', '.join(requests)}) are passed on at the next "
                 "sweep, if the identity provider still names the same new managers.")
