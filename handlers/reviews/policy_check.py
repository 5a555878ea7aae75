"""Validating the ``reviews:`` block of a policy file, every problem named by line and field."""

from __future__ import annotations

import difflib
import re
import zoneinfo
from datetime import time
from functools import cache
from typing import Any

from handlers.durations import DurationError, parse_duration
from handlers.policy import ID_RE, Profile, Step
from handlers.reviews.model import Review, ReviewDuration, ReviewSchedule

REVIEW_KEYS = {"id", "title", "description", "scope", "reviewer", "fallback", "schedule", "duration", "remind_after",
               "escalate_after", "if_not_reviewed", "recommend", "justification", "sign_off"}
SCHEDULE_KEYS = {"quarterly", "cron", "at", "timezone", "holidays"}
REVIEWER_HELP = "use manager, owner, {any_of: G} or {user: EMAIL}"
SIGN_OFF_HELP = "use {any_of: G}, {all_of: G}, {n_of: N, from: G} or {user: EMAIL}"
MAX_BUSINESS_DAYS = 250  # about a year of working days
BD_RE = re.compile(r"^([0-9]{1,4})\s*bd$")
AT_RE = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
DEFAULT_REMIND = ReviewDuration(business_days=3)
DEFAULT_ESCALATE = ReviewDuration(business_days=5)


@cache
def holiday_countries() -> frozenset[str]:
    """The country codes the ``holidays`` package knows (alpha-2, alpha-3 and aliases such as UK), read from its
    registry: listing them with their subdivisions imports every country's module (~0.1 s at each start)."""
    from holidays.registry import EntityLoader

    return frozenset(code.upper() for code in EntityLoader.get_country_codes())


def holiday_subdivisions(code: str) -> tuple[str, ...]:
    """The subdivision codes of one known country (importing its module alone)."""
    import holidays

    return tuple(str(s).upper() for s in getattr(holidays, code).subdivisions)


def zone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
        return f"unknown time zone {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return None


def parse_review_duration(text: str) -> ReviewDuration:
    """``10bd`` (business days) or a plain duration like ``48h``; raises :class:`DurationError`."""
    raw = str(text).strip().lower()
    m = BD_RE.match(raw)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise DurationError(f"{raw!r}: at least 1bd")
        if n > MAX_BUSINESS_DAYS:
            raise DurationError(f"{raw!r} is more than {MAX_BUSINESS_DAYS}bd")
        return ReviewDuration(business_days=n)
    if raw.endswith("bd"):
        raise DurationError(f"{raw!r}: business days are a whole number, like 10bd")
    return ReviewDuration(span=parse_duration(raw))


def _shorter(a: ReviewDuration | None, b: ReviewDuration) -> bool | None:
    """Whether ``a`` is shorter than ``b`` when both count in the same unit (None when they do not)."""
    if a is None:
        return None
    if a.business_days is not None and b.business_days is not None:
        return a.business_days < b.business_days
    if a.span is not None and b.span is not None:
        return a.span < b.span
    return None


def _reviewer(c: Any, raw: Any, line: int | None, where: str, groups: dict[str, tuple[str, ...]]) -> Step | None:
    if raw in ("manager", "owner"):
        return Step(raw)
    if isinstance(raw, dict) and set(raw) in ({"any_of"}, {"user"}):
        return c.step(raw, line, where, groups)  # type: ignore[no-any-return]
    if isinstance(raw, dict) and set(raw) & {"all_of", "n_of"}:
        c.err(line, where, f"one person decides an item: {REVIEWER_HELP}")
        return None
    shown = "{" + ", ".join(map(str, raw)) + ": ...}" if isinstance(raw, dict) else repr(raw)
    c.err(line, where, f"unknown reviewer {shown}: {REVIEWER_HELP}")
    return None


def _duration(c: Any, raw: Any, key: str, where: str, *, required: bool) -> ReviewDuration | None:
    value = raw.get(key)
    if value is None:
        if required:
            c.err(c.line_of(raw, key), where, "required: business days like 10bd, or a duration like 48h")
        return None
    value = getattr(raw, "scalars", {}).get(key, value)
    try:
        return parse_review_duration(str(value))
    except DurationError as exc:
        c.err(c.line_of(raw, key), where, f"must be business days like 10bd or a duration like 48h ({exc})")
        return None


def _holidays(c: Any, raw: Any, line: int | None, where: str) -> tuple[str | None, str | None]:
    if isinstance(raw, dict):
        c.unknown_keys(raw, {"country", "subdivision"}, f"{where}.")
        country, subdiv = raw.get("country"), raw.get("subdivision")
    elif isinstance(raw, str):
        country, _, subdiv = raw.strip().partition("-")
        subdiv = subdiv or None
    else:
        c.err(line, where, "must be a country code like DE, DE-BY or {country: DE, subdivision: BY}")
        return None, None
    if not isinstance(country, str) or not country.strip():
        c.err(line, where, "needs a country code like DE")
        return None, None
    code = country.strip().upper()
    known = holiday_countries()
    if code not in known:
        close = difflib.get_close_matches(code, sorted(known), n=1)
        c.err(line, where, f"the holidays calendar does not know the country {code!r}"
              + (f" (did you mean {close[0]!r}?)" if close else ""))
        return None, None
    if subdiv is None:
        return code, None
    sub = str(subdiv).strip().upper()
    subdivisions = holiday_subdivisions(code)
    if sub not in subdivisions:
        c.err(line, where, f"{code} has no subdivision {sub!r} in the holidays calendar"
              + (f" (known: {', '.join(subdivisions[:12])}{', …' if len(subdivisions) > 12 else ''})"
                 if subdivisions else " (it has none)"))
        return None, None
    return code, sub


def _schedule(c: Any, raw: Any, container: Any, where: str) -> ReviewSchedule:
    from handlers.policy_check import _cron_problem

    if raw is None:
        return ReviewSchedule()
    if not isinstance(raw, dict):
        c.err(c.line_of(container, "schedule"), where, "must be {quarterly: first_business_day, at: \"08:00\", "
              "timezone: Europe/Berlin, holidays: DE} or {cron: \"0 8 1 */3 *\", timezone: ...}")
        return ReviewSchedule()
    c.unknown_keys(raw, SCHEDULE_KEYS, f"{where}.")
    quarterly = raw.get("quarterly")
    cron = raw.get("cron")
    if quarterly is not None and quarterly not in ("first_business_day", "first_monday"):
        c.err(c.line_of(raw, "quarterly"), f"{where}.quarterly", "must be first_business_day or first_monday")
        quarterly = None
    if cron is not None:
        problem = _cron_problem(cron)
        if problem:
            c.err(c.line_of(raw, "cron"), f"{where}.cron",
                  f"must be a 5-field cron string like '0 8 1 */3 *' ({problem})")
            cron = None
        if "quarterly" in raw or "at" in raw:
            c.err(c.line_of(raw, "cron"), f"{where}.cron", "replaces quarterly and at: give one or the other")
    at = time(9, 0)
    if "at" in raw:
        text = str(getattr(raw, "scalars", {}).get("at", raw["at"])).strip()
        m = AT_RE.match(text)
        if m is None:
            c.err(c.line_of(raw, "at"), f"{where}.at", f"must be a local time like \"08:00\", not {text!r}")
        else:
            at = time(int(m.group(1)), int(m.group(2)))
    tz = raw.get("timezone", "UTC")
    if not isinstance(tz, str) or not tz.strip():
        c.err(c.line_of(raw, "timezone"), f"{where}.timezone", "must name a time zone like Europe/Berlin")
        tz = "UTC"
    elif (problem := zone_problem(tz.strip())) is not None:
        c.err(c.line_of(raw, "timezone"), f"{where}.timezone", problem)
        tz = "UTC"
    country = subdiv = None
    if raw.get("holidays") is not None:
        country, subdiv = _holidays(c, raw["holidays"], c.line_of(raw, "holidays"), f"{where}.holidays")
    return ReviewSchedule(quarterly=quarterly, cron=cron.strip() if isinstance(cron, str) else None, at=at,
                          timezone=tz.strip(), country=country, subdivision=subdiv)


def _people(step: Step, groups: dict[str, tuple[str, ...]]) -> frozenset[str]:
    if step.kind == "user":
        return frozenset({(step.user or "").lower()})
    return frozenset(e.lower() for e in groups.get(step.group or "", ()))


def _most_taken(slots: list[frozenset[str]], people: frozenset[str]) -> int:
    """How many of ``people`` the ``slots`` (one signature each, one person once) can use up at most."""
    owner: dict[str, int] = {}

    def place(slot: int, seen: set[str]) -> bool:
        for person in sorted(slots[slot] & people):
            if person in seen:
                continue
            seen.add(person)
            if person not in owner or place(owner[person], seen):
                owner[person] = slot
                return True
        return False

    return sum(place(i, set()) for i in range(len(slots)))


def sign_off_problem(steps: tuple[Step, ...], groups: dict[str, tuple[str, ...]]) -> tuple[int, str] | None:
    """The first sign-off step that can be left unable to complete, and why (None when there is none).

    A removal list is signed as a request's chain (SPEC §7, §2.1): step by step, one person once. So
    a chain must not only be satisfiable in principle (enough distinct people for every step), but
    stay satisfiable whoever signs the earlier steps: the people who sign step 1 can never count for
    step 2. An ``all_of`` step over people who may also sign an earlier step, or an ``n_of`` step
    that earlier signers may leave short, would leave the campaign waiting for a signature nobody
    may give. Returns (step index, message)."""
    from handlers.chains import ResolvedStep, first_unsatisfiable

    pools = [_people(s, groups) for s in steps]
    needs = [len(pool) if s.kind == "all_of" else (s.n if s.kind == "n_of" else 1) for s, pool in zip(steps, pools,
                                                                                                   strict=True)]
    chain = [ResolvedStep(s, i, pool, max(need, 1)) for i, (s, pool, need) in enumerate(zip(steps, pools, needs,
                                                                                            strict=True))]
    bad = first_unsatisfiable(chain)
    if bad is not None:
        signatures = sum(needs[:bad.index + 1])
        people = len(frozenset().union(*pools[:bad.index + 1]))
        short = (f"{signatures} signatures from {people} {'person' if people == 1 else 'people'}"
                 if signatures > people else "more distinct people than they name")
        return bad.index, (f"the sign-off chain can never be completed at {bad.rule}: its steps up to there need "
                           f"{short}, and one person signs once")
    for i, (pool, need) in enumerate(zip(pools, needs, strict=True)):
        earlier = [p for j in range(i) for p in [pools[j]] * needs[j]]
        taken = _most_taken(earlier, pool)
        if taken and len(pool) - taken < need:
            overlap = sorted(pool & frozenset().union(*pools[:i]))
            return i, (f"the sign-off chain can never be completed at {chain[i].rule} once "
                       f"{', '.join(overlap)} {'signs' if len(overlap) == 1 else 'sign'} an earlier step: it needs "
                       f"{need} of its {len(pool)} people, earlier steps may use up {taken} of them, and one person "
                       "signs once")
    return None


def _review(c: Any, raw: Any, line: int | None, where: str, profiles: dict[str, Profile],
            groups: dict[str, tuple[str, ...]], security_team: str | None) -> Review | None:
    if not isinstance(raw, dict):
        c.err(line, where, "a review is a mapping")
        return None
    before = len(c.issues)
    c.unknown_keys(raw, REVIEW_KEYS, f"{where}.")
    rid = c.text(raw, "id", f"{where}.id")
    if rid is not None and not ID_RE.match(rid):
        c.err(c.line_of(raw, "id"), f"{where}.id", f"{rid!r} must match [a-z0-9-]+")
    title = c.text(raw, "title", f"{where}.title", required=False) or rid or ""
    scope = raw.get("scope")
    names: list[str] = []
    if not isinstance(scope, dict) or not isinstance(scope.get("profiles"), list) or not scope["profiles"]:
        c.err(c.line_of(raw, "scope"), f"{where}.scope", "required: {profiles: [profile ids]}")
    else:
        c.unknown_keys(scope, {"profiles"}, f"{where}.scope.")
        listed = scope["profiles"]
        for i, pid in enumerate(listed):
            pline = c.line_of(listed, i)
            key = str(pid).strip().lower()
            if key not in profiles:
                close = difflib.get_close_matches(key, sorted(profiles), n=1)
                c.err(pline, f"{where}.scope.profiles[{i}]", f"no profile {str(pid)!r}"
                      + (f" (did you mean {close[0]!r}?)" if close else ""))
            elif key in names:
                c.err(pline, f"{where}.scope.profiles[{i}]", f"{key} is listed twice")
            else:
                names.append(key)
    reviewer = None
    if "reviewer" not in raw:
        c.err(c.line_of(raw, "reviewer"), f"{where}.reviewer", f"required: {REVIEWER_HELP}")
    else:
        reviewer = _reviewer(c, raw["reviewer"], c.line_of(raw, "reviewer"), f"{where}.reviewer", groups)
    if "fallback" in raw:
        fallback = _reviewer(c, raw["fallback"], c.line_of(raw, "fallback"), f"{where}.fallback", groups)
    elif security_team in groups:
        fallback = Step("any_of", group=security_team)
    else:
        fallback = None
        c.err(c.line_of(raw, "fallback"), f"{where}.fallback",
              "required when the policy names no security_team: who reviews an item whose reviewer is missing, "
              "inactive or the person reviewed (e.g. {any_of: security})")
    schedule = _schedule(c, raw.get("schedule"), raw, f"{where}.schedule")
    duration = _duration(c, raw, "duration", f"{where}.duration", required=True)
    remind = _duration(c, raw, "remind_after", f"{where}.remind_after", required=False) \
        if "remind_after" in raw else DEFAULT_REMIND
    escalate = _duration(c, raw, "escalate_after", f"{where}.escalate_after", required=False) \
        if "escalate_after" in raw else DEFAULT_ESCALATE
    if duration is not None:
        for key, value in (("remind_after", remind), ("escalate_after", escalate)):
            if key in raw and _shorter(value, duration) is False:
                c.err(c.line_of(raw, key), f"{where}.{key}",
                      f"is not shorter than duration ({value.label() if value else ''} >= {duration.label()}): "
                      "the campaign would close first")
    if_not = raw.get("if_not_reviewed", "keep")
    if if_not not in ("remove", "keep"):
        c.err(c.line_of(raw, "if_not_reviewed"), f"{where}.if_not_reviewed", "must be remove or keep")
    inactive_days = None
    recommend = raw.get("recommend")
    if recommend is not None:
        if not isinstance(recommend, dict):
            c.err(c.line_of(raw, "recommend"), f"{where}.recommend", "must be {inactive_days: 30}")
        else:
            c.unknown_keys(recommend, {"inactive_days"}, f"{where}.recommend.")
            days = recommend.get("inactive_days")
            if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650:
                c.err(c.line_of(recommend, "inactive_days"), f"{where}.recommend.inactive_days",
                      "must be a whole number of days from 1 to 3650")
            else:
                inactive_days = days
    keep_required, remove_required = False, True
    just = raw.get("justification")
    if just is not None:
        if not isinstance(just, dict):
            c.err(c.line_of(raw, "justification"), f"{where}.justification",
                  "must be {keep: optional|required, remove: optional|required}")
        else:
            c.unknown_keys(just, {"keep", "remove"}, f"{where}.justification.")
            for key in ("keep", "remove"):
                if key in just and just[key] not in ("optional", "required"):
                    c.err(c.line_of(just, key), f"{where}.justification.{key}", "must be optional or required")
            keep_required = just.get("keep") == "required"
            remove_required = just.get("remove", "required") == "required"
    sign_off: tuple[Step, ...] = ()
    if raw.get("sign_off") is not None:
        steps = c.chain(raw["sign_off"], raw, "sign_off", f"{where}.sign_off", groups)
        for i, step in enumerate(steps):
            if step.kind in ("manager", "owner"):
                c.err(c.line_of(raw["sign_off"], i), f"{where}.sign_off[{i}]",
                      f"{step.kind} has no meaning for a removal list: {SIGN_OFF_HELP}")
        if isinstance(raw["sign_off"], list) and len(steps) == len(raw["sign_off"]) and \
                not any(s.kind in ("manager", "owner") for s in steps):
            problem = sign_off_problem(steps, groups)
            if problem is not None:
                at, text = problem
                c.err(c.line_of(raw["sign_off"], at), f"{where}.sign_off[{at}]", f"review {rid!r}: {text}")
        sign_off = steps
    if len(c.issues) > before:
        return None
    assert rid and reviewer and fallback and duration
    return Review(id=rid, title=title, profiles=tuple(names), reviewer=reviewer, fallback=fallback,
                  schedule=schedule, duration=duration, remind_after=remind, escalate_after=escalate,
                  if_not_reviewed=if_not, inactive_days=inactive_days, keep_reason_required=keep_required,
                  remove_reason_required=remove_required, sign_off=sign_off)


def check_reviews(c: Any, data: Any, profiles: list[Profile], groups: dict[str, tuple[str, ...]],
                  security_team: str | None) -> tuple[Review, ...]:
    """The reviews of the policy; problems go to the checker ``c`` with their lines."""
    raw = data.get("reviews")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.err(c.line_of(data, "reviews"), "reviews", "must be a list of reviews")
        return ()
    by_id = {p.id: p for p in profiles}
    # a profile that failed validation is still a profile for the scope check: say its id is known
    for entry in data.get("profiles") or []:
        pid = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(pid, str):
            by_id.setdefault(pid.strip().lower(), None)  # type: ignore[arg-type]
    out: list[Review] = []
    seen: dict[str, int | None] = {}
    for i, entry in enumerate(raw):
        rid = entry.get("id") if isinstance(entry, dict) else None
        rid = rid.strip() if isinstance(rid, str) else rid  # the id as loaded: `" q1"` is `q1`
        if isinstance(rid, str) and rid in seen:
            c.err(c.line_of(entry, "id"), f"reviews[{i}].id", f"{rid!r} is already used at line {seen[rid]}")
        elif isinstance(rid, str):
            seen[rid] = c.line_of(entry, "id")
        review = _review(c, entry, c.line_of(raw, i), f"reviews[{i}]", by_id, groups, security_team)
        if review is not None:
            out.append(review)
    return tuple(out)
