"""The invariants a soak asserts from the outside, over the exported audit events (stdlib only).

* every request's events form a legal life (:func:`lives`);
* nobody approves their own request, nobody counts twice in one round, and a step moves on only
  with the approvals it needs: one, ``n`` for ``n_of``, every person it asked for ``all_of``;
* a provisioned grant runs for its duration from the moment it was recorded, never longer;
* nothing is reported as drift while only the bot changed memberships.

Each check returns a list of violations, one sentence each, naming the request and the event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

Event = Mapping[str, Any]
ENDED = {"expired", "released", "revoked", "denied", "cancelled", "failed"}
ANYWHERE = {"command.refused"}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds(text: str) -> float:
    """``1h30m`` → 5400 (the units the bot prints: d, h, m, s)."""
    total, number = 0.0, ""
    for ch in text:
        if ch.isdigit() or ch == ".":
            number += ch
        else:
            total += float(number or 0) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[ch]
            number = ""
    return total


@dataclass
class Life:
    ref: str
    requester: str = ""
    profile: str = ""
    state: str = "none"
    extension: bool = False  # an extension round is open
    round: int = 0
    granted: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    asked: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (round, step) -> approvers
    open_step: int = 0
    duration: float = 0.0
    denied: bool = False


def _need(kind: str, n: int, asked: list[str]) -> int:
    if kind == "all_of":
        return len(asked)
    if kind == "n_of":
        return n
    return 1


def lives(events: Iterable[Event], chains: Mapping[str, list[tuple[str, int]]]) -> tuple[dict[str, Life], list[str]]:
    """Replay every request's events. ``chains``: profile id → its steps as (kind, n) for the
    standard chain (key ``profile``) and the exception chain (key ``profile!exception``)."""
    out: dict[str, Life] = {}
    bad: list[str] = []
    kinds: dict[str, str] = {}

    def fail(life: Life, e: Event, why: str) -> None:
        bad.append(f"{life.ref} #{e['seq']} {e['type']}: {why} (state {life.state})")

    def step_done(life: Life, e: Event, step: int) -> None:
        """The round's ``step`` (1-based) is closing: it must have the approvals it needs."""
        chain = chains.get(life.profile + ("!exception" if kinds.get(life.ref) == "exception" else ""), [])
        if not chain or step < 1 or step > len(chain):
            return
        kind, n = chain[step - 1]
        asked = life.asked.get((life.round, step), [])
        got = [a for s, a in life.granted[life.round] if s == step]
        if len(got) < _need(kind, n, asked):
            fail(life, e, f"step {step} ({kind}) moved on with {len(got)} approval(s) of {_need(kind, n, asked)}"
                          f" needed (asked {asked}, approved by {got})")
        if kind == "all_of" and sorted(got) != sorted(asked):
            fail(life, e, f"all_of step {step} approved by {got}, asked {asked}")

    for e in events:
        ref = e.get("request_id")
        if not ref or e["type"] in ANYWHERE:
            continue
        life = out.setdefault(ref, Life(ref))
        t, d, s = e["type"], e.get("data") or {}, life.state
        if t == "request.refused":  # an extension refused (the grant may have ended meanwhile)
            if s == "none":
                fail(life, e, "a refusal about a request never submitted")
            continue
        if t == "request.submitted":
            if s != "none":
                fail(life, e, "submitted twice")
            life.state, life.requester, life.profile = "pending", e["actor"], e.get("profile") or ""
            life.duration = seconds(d.get("duration") or "0s")
            kinds[ref] = d.get("kind", "standard")
            continue
        in_chain = s == "pending" or (s == "active" and life.extension)
        if t == "approval.requested":
            if not in_chain:
                fail(life, e, "approvers asked outside a chain")
            step = int(d.get("step", 0))
            if step > 1:
                step_done(life, e, step - 1)
            life.asked[(life.round, step)] = list(d.get("approvers") or [])
            life.open_step = step
        elif t in ("approval.granted", "approval.denied"):
            if not in_chain:
                fail(life, e, "a decision outside a chain")
            if e["actor"] == life.requester:
                fail(life, e, "self-approval")
            if any(a == e["actor"] for _, a in life.granted[life.round]):
                fail(life, e, f"{e['actor']} counted twice in round {life.round}")
            if life.denied:
                fail(life, e, f"a decision after round {life.round} was denied")
            if int(d.get("step", 0)) != life.open_step:
                fail(life, e, f"decision on step {d.get('step')} while step {life.open_step} is open")
            if e["actor"] not in life.asked.get((life.round, life.open_step), []):
                fail(life, e, f"{e['actor']} decided though the step did not ask them")
            if t == "approval.granted":
                life.granted[life.round].append((int(d.get("step", 0)), e["actor"]))
            else:
                life.denied = True
                if d.get("extension"):
                    life.extension = False  # a denied extension leaves the grant as it was
        elif t in ("approval.refused", "approval.reminded", "approval.escalated"):
            if not in_chain:
                fail(life, e, "outside a chain")
        elif t == "request.approved":
            if s != "pending":
                fail(life, e, "approved when not pending")
            if not d.get("auto"):
                step_done(life, e, life.open_step)
            life.state = "approved"
        elif t == "request.denied":
            if s != "pending":
                fail(life, e, "denied when not pending")
            life.state = "denied"
        elif t == "request.cancelled":
            if d.get("extension"):
                if not (s == "active" and life.extension):
                    fail(life, e, "an extension withdrawn with none pending")
                life.extension = False
            else:
                if s != "pending":
                    fail(life, e, "cancelled when not pending")
                life.state = "cancelled"
        elif t == "request.failed":
            if d.get("extension"):
                if not (s == "active" and life.extension):
                    fail(life, e, "an extension failed with none pending")
                life.extension = False
            else:
                if s not in ("pending", "approved"):
                    fail(life, e, "failed when not pending")
                life.state = "failed"
        elif t == "request.extension_requested":
            if s != "active" or life.extension:
                fail(life, e, "extension asked when not active or already pending")
            life.extension, life.round, life.open_step, life.denied = True, life.round + 1, 0, False
        elif t == "grant.extended":
            if not (s == "active" and life.extension):
                fail(life, e, "extended with no extension pending")
            step_done(life, e, life.open_step)
            life.extension = False
        elif t == "grant.provisioned":
            if s != "approved":
                fail(life, e, "provisioned when not approved")
            life.state = "active"
            held = (ts(d["expires_at"]) - ts(e["ts"])).total_seconds()
            if held > life.duration + 2:
                fail(life, e, f"runs {held:.0f} s from when it was recorded, for a duration of {life.duration:.0f} s")
        elif t == "grant.provision_failed":
            if s != "approved":
                fail(life, e, "provisioning failed when not approved")
            life.state = "failed"
        elif t in ("grant.released", "grant.revoked", "grant.expired"):
            unprovisioned = d.get("provisioned") is False
            if s == "approved" and not unprovisioned and t != "grant.expired":
                fail(life, e, "ended before it was provisioned without saying so")
            elif s == "active" and unprovisioned:
                fail(life, e, "says it was not provisioned, but it was")
            elif s not in ("active", "approved") or (t == "grant.expired" and s != "active"):
                fail(life, e, "ended when not holding")
            life.state, life.extension = t.split(".")[1], False
        elif t in ("grant.revoke_failed", "grant.revoke_completed"):
            if s not in ENDED:
                fail(life, e, "a removal reported for a grant that has not ended")
        else:
            fail(life, e, "an event type this check does not know")
    return out, bad


def drift_reports(events: Iterable[Event]) -> list[str]:
    """The soak changes memberships only through the bot: any drift finding is a false one."""
    return [f"#{e['seq']} drift.detected {e.get('data')}" for e in events if e["type"] == "drift.detected"]


def expected_members(lives_: Mapping[str, Life], groups: Mapping[str, tuple[str, str]]
                     ) -> dict[tuple[str, str], set[str]]:
    """(provider, group) → the requesters of the active grants. ``groups``: profile → (provider, group)."""
    out: dict[tuple[str, str], set[str]] = {pg: set() for pg in groups.values()}
    for life in lives_.values():
        if life.state == "active" and life.profile in groups:
            out[groups[life.profile]].add(life.requester)
    return out


def grant_ages(events: Iterable[Event]) -> timedelta:
    """The longest a grant was held by the record (provisioned to ended), for the figures."""
    started: dict[str, datetime] = {}
    longest = timedelta(0)
    for e in events:
        ref = e.get("request_id")
        if e["type"] == "grant.provisioned" and ref:
            started[ref] = ts(e["ts"])
        elif e["type"] in ("grant.expired", "grant.released", "grant.revoked") and ref in started:
            longest = max(longest, ts(e["ts"]) - started.pop(ref))
    return longest
