"""Validating a policy file: YAML read with line numbers, every problem named by line and field."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import yaml

from handlers.chain_check import chains_of, never_finishes
from handlers.durations import DurationError, format_duration, parse_duration
from handlers.policy import (
    _CRON_FIELDS,
    _MONTHS,
    EMAIL_RE,
    ID_RE,
    PROFILE_KEYS,
    STEP_HELP,
    TOP_KEYS,
    ExceptionRule,
    Policy,
    PolicyError,
    PolicyIssue,
    Profile,
    Reminders,
    Rule,
    Schedule,
    Step,
    TicketRule,
)
from handlers.text import is_digits


# -- YAML with line numbers ----------------------------------------------------------------------
class _Map(dict):  # type: ignore[type-arg]
    line: int = 0
    key_line: int | None = None  # the line of the key this mapping is the value of: where a missing key is missed
    lines: dict[str, int]
    scalars: dict[str, str]  # the text as written, for numbers that must stay text (version: 2026.10)
    duplicates: list[tuple[str, int, int]]  # (key, line, line of the first occurrence)


class _Seq(list):  # type: ignore[type-arg]
    line: int = 0
    lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    own = {id(k) for k, _ in node.value}
    loader.flatten_mapping(node)  # `<<: *anchor` merge keys: merged pairs come first, own keys override them
    out = _Map()
    out.line = node.start_mark.line + 1
    out.lines = {}
    out.scalars = {}
    out.duplicates = []
    written: set[str] = set()
    for key_node, value_node in node.value:
        key = str(loader.construct_object(key_node, deep=True))
        line = key_node.start_mark.line + 1
        if id(key_node) in own:
            if key in written:
                out.duplicates.append((key, line, out.lines[key]))
            written.add(key)
        value = loader.construct_object(value_node, deep=True)
        if isinstance(value, _Map) and value.key_line is None:
            value.key_line = line
        out[key] = value
        out.lines[key] = line
        if isinstance(value_node, yaml.ScalarNode):
            out.scalars[key] = value_node.value
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)  # type: ignore[arg-type]
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)  # type: ignore[arg-type]


class _Checker:
    def __init__(self, *, stored: bool = False) -> None:
        self.issues: list[PolicyIssue] = []
        # a version the store recorded when it was in force: checks written since, that only guide the author of a
        # new file (a chain no requester could finish), do not make it unreadable (see ``parse_policy``)
        self.stored = stored

    def err(self, line: int | None, where: str, message: str) -> None:
        self.issues.append(PolicyIssue(line, where, message))

    @staticmethod
    def line_of(container: Any, key: Any) -> int | None:
        if isinstance(container, _Map):
            return container.lines.get(key, container.key_line or container.line)
        if isinstance(container, _Seq) and isinstance(key, int) and key < len(container.lines):
            return container.lines[key]
        return getattr(container, "line", None)

    def duration(self, container: Any, key: str, where: str, *, required: bool = True) -> timedelta | None:
        value = container.get(key) if isinstance(container, dict) else None
        if value is None:
            if required:
                self.err(self.line_of(container, key), where, "required: a duration like 4h")
            return None
        if isinstance(container, _Map) and key in container.scalars:
            value = container.scalars[key]  # as written: YAML would read `1:30` as the number 90
        try:
            return parse_duration(str(value))
        except DurationError as exc:
            self.err(self.line_of(container, key), where, f"must be a duration like 4h ({exc})")
            return None

    def text(self, container: dict, key: str, where: str, *, required: bool = True) -> str | None:
        value = container.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.err(self.line_of(container, key), where, "required")
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.err(self.line_of(container, key), where, "must be text")
            return None
        return str(value).strip()

    def unknown_keys(self, mapping: _Map, allowed: set[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.err(mapping.lines.get(key), f"{where}{key}", f"unknown key{hint}")

    def group_name(self, value: Any, line: int | None, where: str, groups: Mapping[str, tuple[str, ...]]
                   ) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.err(line, where, "must name one approver group")
            return None
        if value.strip() not in groups:
            close = difflib.get_close_matches(value.strip(), sorted(groups), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.err(line, where, f"no approver group {value.strip()!r}{hint}")
            return None
        return value.strip()

    def step(self, raw: Any, line: int | None, where: str, groups: Mapping[str, tuple[str, ...]]) -> Step | None:
        if raw in ("manager", "owner"):
            return Step(raw)
        if isinstance(raw, str):
            self.err(line, where, f"unknown step {raw!r}: {STEP_HELP}")
            return None
        if not isinstance(raw, dict):
            self.err(line, where, f"not a step: {STEP_HELP}")
            return None
        keys = set(raw)
        if keys in ({"any_of"}, {"all_of"}):
            kind = keys.pop()
            group = self.group_name(raw[kind], line, f"{where}.{kind}", groups)
            return Step(kind, group=group) if group else None  # type: ignore[arg-type]
        if "n_of" in keys and keys <= {"n_of", "from"}:
            n = raw["n_of"]
            if "from" not in raw:
                self.err(line, where, "n_of needs the group too: {n_of: 2, from: GROUP}")
                return None
            group = self.group_name(raw["from"], line, f"{where}.from", groups)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                self.err(line, f"{where}.n_of", "must be a whole number of at least 1")
                return None
            if group is None:
                return None
            if n > len(groups[group]):
                self.err(line, f"{where}.n_of", f"{n} is more than the {len(groups[group])} people in {group}")
                return None
            return Step("n_of", group=group, n=n)
        if keys == {"user"}:
            email = str(raw["user"]).strip().lower()
            if not EMAIL_RE.match(email):
                self.err(line, f"{where}.user", "must be an email")
                return None
            return Step("user", user=email)
        close = difflib.get_close_matches(next(iter(keys), ""), ["any_of", "all_of", "n_of", "user"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if len(keys) == 1 and close else ""
        self.err(line, where, f"unknown step {{{', '.join(map(str, raw))}: ...}}{hint}: {STEP_HELP}")
        return None

    def chain(self, raw: Any, container: Any, key: str, where: str,
              groups: Mapping[str, tuple[str, ...]]) -> tuple[Step, ...]:
        if not isinstance(raw, list) or not raw:
            self.err(self.line_of(container, key), where, "must be a non-empty list of steps")
            return ()
        steps = [self.step(s, self.line_of(raw, i), f"{where}[{i}]", groups) for i, s in enumerate(raw)]
        return tuple(replace(s, line=self.line_of(raw, i)) for i, s in enumerate(steps) if s is not None)

    def rules(self, raw: Any, container: Any, key: str, where: str, *, auto: bool,
              max_duration: timedelta | None) -> tuple[Rule, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.err(self.line_of(container, key), where, "must be a list of rules")
            return ()
        out = []
        for i, item in enumerate(raw):
            line = self.line_of(raw, i)
            if not isinstance(item, dict) or not item:
                self.err(line, f"{where}[{i}]", "a rule is a non-empty mapping of attribute: value")
                continue
            attrs = {k: v for k, v in item.items() if k not in ("max_duration", "count_granted")}
            limit = None
            if "max_duration" in item:
                if not auto:
                    self.err(line, f"{where}[{i}].max_duration", "only auto_approve rules take max_duration")
                else:
                    limit = self.duration(item, "max_duration", f"{where}[{i}].max_duration")
                    if limit and max_duration and limit > max_duration:
                        self.err(self.line_of(item, "max_duration"), f"{where}[{i}].max_duration",
                                 "is above the profile's max duration "
                                 f"({format_duration(limit)} > {format_duration(max_duration)})")
            count_granted = item.get("count_granted", False)
            if "count_granted" in item:
                at, field_ = self.line_of(item, "count_granted"), f"{where}[{i}].count_granted"
                if not isinstance(count_granted, bool):
                    self.err(at, field_, "must be true or false")
                elif key == "ineligible":
                    self.err(at, field_, "ineligible rules count every membership; count_granted is for "
                             "eligible and auto_approve")
                elif "member_of" not in attrs:
                    self.err(at, field_, "only a rule with member_of can count granted memberships")
            if not attrs:
                self.err(line, f"{where}[{i}]", "needs at least one attribute to match")
                continue
            for k, v in attrs.items():
                values = v if isinstance(v, list) else [v]
                if not values or any(x is None or isinstance(x, dict | list) for x in values):
                    self.err(self.line_of(item, k), f"{where}[{i}].{k}", "must be a value or a list of values")
                elif k == "active" and any(not isinstance(x, bool) for x in values):
                    self.err(self.line_of(item, k), f"{where}[{i}].{k}", "must be true or false")
            out.append(Rule(attrs={k: (tuple(v) if isinstance(v, list) else v) for k, v in attrs.items()},
                            max_duration=limit, count_granted=count_granted is True,
                            line=self.line_of(item, "member_of") if "member_of" in attrs else line))
        return tuple(out)


def _profile(c: _Checker, raw: Any, line: int | None, where: str, groups: Mapping[str, tuple[str, ...]]
             ) -> Profile | None:
    if not isinstance(raw, _Map):
        c.err(line, where, "a profile is a mapping")
        return None
    before = len(c.issues)
    c.unknown_keys(raw, PROFILE_KEYS, f"{where}.")
    pid = c.text(raw, "id", f"{where}.id")
    if pid is not None and not ID_RE.match(pid):
        c.err(raw.lines.get("id"), f"{where}.id", f"{pid!r} must match [a-z0-9-]+")
    title = c.text(raw, "title", f"{where}.title")
    owner = c.text(raw, "owner", f"{where}.owner")
    if owner is not None and not EMAIL_RE.match(owner):
        c.err(raw.lines.get("owner"), f"{where}.owner", "must be an email")
    if "description" in raw and not isinstance(raw.get("description"), str):
        c.err(c.line_of(raw, "description"), f"{where}.description", "must be text")
    risk = raw.get("risk", "medium")
    if risk not in ("low", "medium", "high"):
        c.err(c.line_of(raw, "risk"), f"{where}.risk", "must be low, medium or high")
    provider = raw.get("provider", "directory")
    if provider not in ("directory", "entra", "okta"):
        c.err(c.line_of(raw, "provider"), f"{where}.provider", "must be directory, entra or okta")
    group = c.text(raw, "group", f"{where}.group")
    duration = raw.get("duration")
    default = maximum = None
    if not isinstance(duration, dict):
        c.err(c.line_of(raw, "duration"), f"{where}.duration", "required: {default: 4h, max: 8h}")
    else:
        c.unknown_keys(duration, {"default", "max"}, f"{where}.duration.")
        default = c.duration(duration, "default", f"{where}.duration.default")
        maximum = c.duration(duration, "max", f"{where}.duration.max")
        if default and maximum and default > maximum:
            c.err(c.line_of(duration, "default"), f"{where}.duration.default", "is longer than max")
    justification = raw.get("justification", "optional")
    if justification not in ("required", "optional"):
        c.err(c.line_of(raw, "justification"), f"{where}.justification", "must be required or optional")
    ticket = None
    if raw.get("ticket") is not None:
        t = raw["ticket"]
        if not isinstance(t, dict):
            c.err(c.line_of(raw, "ticket"), f"{where}.ticket", "must be {required: true, pattern: '...'}")
        else:
            c.unknown_keys(t, {"required", "pattern"}, f"{where}.ticket.")
            pattern = t.get("pattern")
            if pattern is not None:
                try:
                    re.compile(str(pattern))
                except re.error as exc:
                    c.err(c.line_of(t, "pattern"), f"{where}.ticket.pattern", f"not a valid regular expression: {exc}")
            required = t.get("required", False)
            if not isinstance(required, bool):
                c.err(c.line_of(t, "required"), f"{where}.ticket.required", "must be true or false")
            ticket = TicketRule(required=bool(required), pattern=str(pattern) if pattern is not None else None)
    approval = c.chain(raw.get("approval"), raw, "approval", f"{where}.approval", groups)
    eligible = c.rules(raw.get("eligible"), raw, "eligible", f"{where}.eligible", auto=False, max_duration=None)
    ineligible = c.rules(raw.get("ineligible"), raw, "ineligible", f"{where}.ineligible", auto=False,
                         max_duration=None)
    auto = c.rules(raw.get("auto_approve"), raw, "auto_approve", f"{where}.auto_approve", auto=True,
                   max_duration=maximum)
    exception = None
    if raw.get("exception") is not None:
        e = raw["exception"]
        if not isinstance(e, dict):
            c.err(c.line_of(raw, "exception"), f"{where}.exception", "must be {approval: [...], max_duration: 30d}")
        else:
            c.unknown_keys(e, {"approval", "max_duration"}, f"{where}.exception.")
            steps = c.chain(e.get("approval"), e, "approval", f"{where}.exception.approval", groups)
            limit = c.duration(e, "max_duration", f"{where}.exception.max_duration")
            if steps and limit:
                exception = ExceptionRule(approval=steps, max_duration=limit)
    removed_holder = raw.get("removed_holder", "readd")
    if removed_holder not in ("readd", "end"):
        c.err(c.line_of(raw, "removed_holder"), f"{where}.removed_holder", "must be readd or end")
    if len(c.issues) > before:
        return None
    assert pid and title and owner and group and default and maximum
    profile = Profile(
        id=pid, title=title, owner=owner.lower(), risk=risk, provider=provider, group=group,
        eligible=eligible, ineligible=ineligible, default_duration=default, max_duration=maximum,
        justification_required=justification == "required", ticket=ticket, approval=approval,
        auto_approve=auto, exception=exception, removed_holder=removed_holder)
    for key, steps in () if c.stored else chains_of(profile):  # a chain no requester can finish (one person once)
        problem = never_finishes(steps, profile.owner, groups,
                                 "approval chain" if key == "approval" else "exception chain")
        if problem is not None:
            at, text = problem
            c.err(steps[at].line, f"{where}.{key}[{at}]", f"profile {pid!r}: {text}")
    return None if len(c.issues) > before else profile


def _reminders(c: _Checker, data: _Map) -> Reminders:
    raw = data.get("reminders")
    if raw is None:
        return Reminders()
    if not isinstance(raw, dict):
        c.err(c.line_of(data, "reminders"), "reminders", "must be {remind_after: 4h, escalate_after: 24h}")
        return Reminders()
    c.unknown_keys(raw, {"remind_after", "escalate_after"}, "reminders.")
    remind = c.duration(raw, "remind_after", "reminders.remind_after", required=False) or Reminders.remind_after
    escalate = c.duration(raw, "escalate_after", "reminders.escalate_after", required=False) \
        or Reminders.escalate_after
    return Reminders(remind_after=remind, escalate_after=escalate)


def _cron_problem(cron: Any) -> str | None:
    """None for a valid ``minute hour day month weekday`` string, else what is wrong with it."""
    if not isinstance(cron, str):
        return "not text"
    fields = cron.split()
    if len(fields) != 5:
        return f"{len(fields)} fields"
    for text, (low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.lower().split(","):
            m = re.fullmatch(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]{1,2}))?", item)
            if not m or m.group(2) == "0":
                return f"{text!r} is not a cron field"
            if m.group(1) == "*":
                continue
            for value in m.group(1).split("-"):
                number = names.index(value) + (low if names is _MONTHS else 0) if value in names else (
                    int(value) if is_digits(value) else None)
                if number is None or not low <= number <= high:
                    return f"{value!r} is out of range in {text!r}"
    return None


def _schedule(c: _Checker, data: _Map) -> Schedule:
    raw = data.get("schedule")
    if raw is None:
        return Schedule()
    if not isinstance(raw, dict):
        c.err(c.line_of(data, "schedule"), "schedule", "must be a mapping")
        return Schedule()
    base = Schedule()
    names = ("sweep_interval", "expiry_warning", "termination_sla", "retry_budget", "provider_lease")
    c.unknown_keys(raw, {*names, "drift_cron"}, "schedule.")
    values: dict[str, Any] = {n: c.duration(raw, n, f"schedule.{n}", required=False) or getattr(base, n)
                              for n in names}
    cron = raw.get("drift_cron", base.drift_cron)
    problem = _cron_problem(cron)
    if problem:
        c.err(c.line_of(raw, "drift_cron"), "schedule.drift_cron",
              f"must be a 5-field cron string like '0 6 * * *' ({problem})")
        cron = base.drift_cron
    return Schedule(drift_cron=cron.strip(), **values)


def _duplicates(c: _Checker, node: Any, path: str, seen: set[int] | None = None) -> None:
    """YAML keeps the last of two equal keys without a word: a second `approval:` would win silently. Each
    node is looked at once, however many aliases name it (nested aliases would otherwise make billions of
    paths out of a few hundred bytes)."""
    seen = set() if seen is None else seen
    if not isinstance(node, _Map | _Seq) or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, _Map):
        for key, line, first in node.duplicates:
            c.err(line, f"{path}{key}", f"duplicate key: already given at line {first}")
        for key, value in node.items():
            _duplicates(c, value, f"{path}{key}.", seen)
    else:
        for i, value in enumerate(node):
            _duplicates(c, value, f"{path.rstrip('.')}[{i}].", seen)


def build_policy(raw: bytes, source: str = "<policy>", *, stored: bool = False) -> Policy:
    try:
        return _build_policy(raw, source, stored)
    except RecursionError:  # nesting deeper than any policy needs (the YAML parser recurses)
        raise PolicyError([PolicyIssue(None, "yaml", "nested too deeply to be a policy")]) from None


def _build_policy(raw: bytes, source: str, stored: bool) -> Policy:
    c = _Checker(stored=stored)
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_Loader)  # a SafeLoader subclass
    except UnicodeDecodeError as exc:
        raise PolicyError([PolicyIssue(None, source, f"not UTF-8 text ({exc.reason})")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([PolicyIssue(mark.line + 1 if mark else None, "yaml", f"invalid YAML: {problem}")]) from None
    if not isinstance(data, _Map):
        raise PolicyError([PolicyIssue(1, "policy", "the file must be a mapping with version and profiles")])
    _duplicates(c, data, "")
    c.unknown_keys(data, TOP_KEYS, "")
    version = c.text(data, "version", "version")
    if version is not None and isinstance(data["version"], int | float):
        version = data.scalars.get("version", version).strip()  # 2026.10 stays "2026.10", not "2026.1"
    groups: dict[str, tuple[str, ...]] = {}
    raw_groups = data.get("approver_groups") or {}
    if not isinstance(raw_groups, dict):
        c.err(c.line_of(data, "approver_groups"), "approver_groups", "must map group names to lists of emails")
        raw_groups = {}
    for name, members in raw_groups.items():
        where = f"approver_groups.{name}"
        line = c.line_of(raw_groups, name)
        if not isinstance(members, list) or not members:
            c.err(line, where, "must be a non-empty list of emails")
            continue
        emails: list[str] = []
        for j, member in enumerate(members):
            email = str(member).strip().lower()
            if not isinstance(member, str) or not EMAIL_RE.match(email):
                c.err(c.line_of(members, j), f"{where}[{j}]", f"{member!r} is not an email")
            elif email in emails:
                c.err(c.line_of(members, j), f"{where}[{j}]", f"{email} is listed twice (each person counts once)")
            else:
                emails.append(email)
        groups[str(name)] = tuple(emails)
    security = data.get("security_team")
    if security is not None and str(security) not in groups:
        c.err(c.line_of(data, "security_team"), "security_team", f"no approver group {security!r}")
    profiles: list[Profile] = []
    raw_profiles = data.get("profiles")
    if not isinstance(raw_profiles, list) or not raw_profiles:
        c.err(c.line_of(data, "profiles"), "profiles", "must be a non-empty list of profiles")
        raw_profiles = []
    seen: dict[str, int | None] = {}
    for i, entry in enumerate(raw_profiles):
        line = c.line_of(raw_profiles, i)
        pid = entry.get("id") if isinstance(entry, dict) else None
        pid = pid.strip() if isinstance(pid, str) else pid  # the id as loaded: `" q"` is `q`, and both would be one
        if isinstance(pid, str) and pid in seen:
            c.err(c.line_of(entry, "id"), f"profiles[{i}].id", f"{pid!r} is already used at line {seen[pid]}")
        elif isinstance(pid, str):
            seen[pid] = c.line_of(entry, "id")
        profile = _profile(c, entry, line, f"profiles[{i}]", groups)
        if profile is not None:
            profiles.append(profile)
    reminders = _reminders(c, data)
    schedule = _schedule(c, data)
    from handlers.reviews.policy_check import check_reviews  # the reviews block (SPEC §7) builds on this module

    reviews = check_reviews(c, data, profiles, groups, str(security) if security is not None else None)
    from handlers.evidence_schedule import check_evidence

    evidence = check_evidence(c, data, {str(e.get("id")).strip().lower() for e in raw_profiles if isinstance(e, dict)})
    from handlers.compliance.safety import check_safety  # the safety block (SPEC §3.6)

    safety = check_safety(c, data)
    if c.issues:
        raise PolicyError(sorted(c.issues, key=lambda i: (i.line or 0)))
    assert version is not None
    return Policy(version=version, sha256=hashlib.sha256(raw).hexdigest(), raw=raw, approver_groups=groups,
                  security_team=str(security) if security is not None else None, profiles=tuple(profiles),
                  reminders=reminders, schedule=schedule, reviews=reviews, evidence=evidence, safety=safety)
