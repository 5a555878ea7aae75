"""The embedded identity provider: a YAML file of people and groups (SPEC §2.2).

The file is read afresh whenever it changed on disk, so editing it hires, moves or terminates
someone for the next command or sweep. Memberships that provisioning adds or removes are kept
in the store (the overlay) and applied on top of the file's groups.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from handlers.context import scope_cache
from handlers.files import read_regular
from handlers.ports import Member, MembershipOverlay, Person, ProviderError

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USER_KEYS = {"email", "name", "department", "title", "employment_type", "manager", "active", "slack_id",
             "aad_object_id"}


class DirectoryError(ProviderError):
    """The directory file is unreadable or malformed; the message names the line. As for any identity
    provider that cannot answer, a command that needed it is answered so (``provider-unavailable``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


@dataclass(frozen=True)
class _Snapshot:
    users: dict[str, dict[str, Any]]
    groups: dict[str, frozenset[str]]
    # Look-ups each command makes, indexed once per parse: a person's groups, and who carries an
    # ``aad_object_id`` (lower case) or a ``slack_id`` (the first such user in the file, as a scan finds).
    groups_of: dict[str, frozenset[str]] = field(default_factory=dict)
    by_key: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def indexed(cls, users: dict[str, dict[str, Any]], groups: dict[str, frozenset[str]]) -> _Snapshot:
        groups_of: dict[str, set[str]] = {}
        for name, members in groups.items():
            for member in members:
                groups_of.setdefault(member, set()).add(name)
        by_key: dict[str, dict[str, str]] = {key: {} for key in FIND_KEYS}
        for email, entry in users.items():
            for key, lower in FIND_KEYS.items():
                found = entry.get(key)
                if found is not None:
                    by_key[key].setdefault(str(found).lower() if lower else str(found), email)
        return cls(users, groups, {m: frozenset(g) for m, g in groups_of.items()}, by_key)


FIND_KEYS = {"aad_object_id": True, "slack_id": False}  # key -> compared in lower case


def sign_in_time(value: Any) -> datetime | None:
    """A ``last_sign_in`` as written in the file (a date, a timestamp, ISO 8601 text) in UTC; ValueError if not one."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _line(node: Any) -> int:
    return node.start_mark.line + 1 if node is not None and hasattr(node, "start_mark") else 0


def _twice(node: Any) -> list[tuple[int, str]]:
    """(line, key) of each key a mapping of the composed file gives twice; each node looked at once (aliases)."""
    found: list[tuple[int, str]] = []
    seen: set[int] = set()
    todo = [node]
    while todo:
        node = todo.pop()
        if id(node) in seen or not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        found.append((_line(key), key.value))
                    keys.add(key.value)
                todo.append(value)
        else:
            todo.extend(node.value)
    return sorted(found)


def parse_directory(raw: bytes, source: str = "<directory>") -> _Snapshot:
    try:
        root = yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DirectoryError(f"{source}: not UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise DirectoryError(f"{source}: {where}invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise DirectoryError(f"{source}: line 1: the file must be a mapping with `users` and `groups`")
    nodes = {k.value: v for k, v in root.value} if isinstance(root, yaml.MappingNode) else {}
    errors: list[str] = [f"line {line}: {key}: given twice (YAML would keep the last without a word)"
                         for line, key in _twice(root)]
    linked: dict[tuple[str, str], str] = {}  # (aad_object_id | slack_id, value) -> the email it links
    users: dict[str, dict[str, Any]] = {}
    raw_users = data.get("users") or []
    if not isinstance(raw_users, list):
        errors.append(f"line {_line(nodes.get('users'))}: users: must be a list")
        raw_users = []
    user_nodes = nodes.get("users").value if isinstance(nodes.get("users"), yaml.SequenceNode) else []
    for i, entry in enumerate(raw_users):
        line = _line(user_nodes[i]) if i < len(user_nodes) else 0
        if not isinstance(entry, dict):
            errors.append(f"line {line}: users[{i}]: must be a mapping")
            continue
        email = str(entry.get("email") or "").strip().lower()
        if not EMAIL_RE.match(email):
            errors.append(f"line {line}: users[{i}].email: missing or not an email")
            continue
        if email in users:
            errors.append(f"line {line}: users[{i}].email: {email} appears twice")
        for key, lower in FIND_KEYS.items():  # one chat account is one person
            value = str(entry.get(key) or "").strip()
            value = value.lower() if lower else value
            if value and linked.setdefault((key, value), email) != email:
                errors.append(f"line {line}: users[{i}].{key}: {value} is already {linked[(key, value)]}'s")
        active = entry.get("active", True)
        if not isinstance(active, bool):
            errors.append(f"line {line}: users[{i}].active: must be true or false")
        manager = entry.get("manager")
        if manager is not None and not EMAIL_RE.match(str(manager).strip()):
            errors.append(f"line {line}: users[{i}].manager: not an email")
        try:
            sign_in_time(entry.get("last_sign_in"))
        except ValueError:
            errors.append(f"line {line}: users[{i}].last_sign_in: not a date or an ISO 8601 timestamp")
        if entry.get("kind", "user") not in ("user", "service"):
            errors.append(f"line {line}: users[{i}].kind: must be user or service")
        owner = entry.get("owner")
        if owner is not None and not EMAIL_RE.match(str(owner).strip()):
            errors.append(f"line {line}: users[{i}].owner: not an email")
        users[email] = {**entry, "email": email}
    groups: dict[str, frozenset[str]] = {}
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, dict):
        errors.append(f"line {_line(nodes.get('groups'))}: groups: must be a mapping of name to emails")
        raw_groups = {}
    for name, members in raw_groups.items():
        if members is None:
            members = []
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            errors.append(f"line {_line(nodes.get('groups'))}: groups.{name}: must be a list of emails")
            continue
        groups[str(name)] = frozenset(m.strip().lower() for m in members)
    if errors:
        raise DirectoryError(f"{source}:\n" + "\n".join(f"  {e}" for e in errors))
    return _Snapshot.indexed(users, groups)


class DirectoryProvider:
    """Implements ``Directory`` and ``GroupProvider`` over the directory file and the store overlay."""

    name = "directory"

    def __init__(self, path: str | os.PathLike[str], overlay: MembershipOverlay) -> None:
        self.path = Path(path)
        self.overlay_store = overlay
        self._stat: tuple[int, ...] | None = None
        self._cache: tuple[bytes, _Snapshot] | None = None  # (sha256 of the bytes, what they say)
        self.parses = 0  # how many times the file was parsed: only when its bytes changed
        # the overlay as last read, indexed by person (rebuilt when the overlay store answers a new one)
        self._indexed: tuple[dict[tuple[str, str], bool], dict[str, dict[tuple[str, str], bool]]] | None = None
        # the people built from that snapshot and that overlay (see _lookup)
        self._people: tuple[_Snapshot, tuple[Any, Any], dict[str, Person]] | None = None

    def snapshot(self) -> _Snapshot:
        """The file as it reads now: a ``stat`` a call (one a look-up scope: a command or a sweep sees one
        version of the file); read and hashed when that changed; parsed when the bytes did."""
        scope = scope_cache()
        if scope is not None:
            snap = scope.get(("directory-file", id(self)))
            if snap is None:
                snap = scope[("directory-file", id(self))] = self._snapshot()
            return snap  # type: ignore[no-any-return]
        return self._snapshot()

    def _snapshot(self) -> _Snapshot:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise DirectoryError(f"{self.path}: cannot read the directory file ({exc.strerror})") from None
        key = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)
        if self._cache is not None and self._stat == key:
            return self._cache[1]
        try:
            raw = read_regular(self.path)
        except OSError as exc:
            raise DirectoryError(f"{self.path}: cannot read the directory file ({exc.strerror})") from None
        digest = hashlib.sha256(raw).digest()
        if self._cache is None or self._cache[0] != digest:
            self._cache = (digest, parse_directory(raw, str(self.path)))
            self.parses += 1
        self._stat = key
        return self._cache[1]

    async def _groups(self, *, email: str | None = None, group: str | None = None) -> dict[str, set[str]]:
        snap = self.snapshot()
        if email is not None and group is None:  # one person's groups, from the index
            groups = {name: {email} for name in snap.groups_of.get(email, ())}
        else:
            groups = {name: set(members) for name, members in snap.groups.items() if group is None or name == group}
        # One read of the overlay serves every look-up of a person in this command or sweep. A group's
        # listing is read as it is now: drift compares it with grants read just before and after, so a
        # membership another process changed since the scope began must not come from memory.
        indexed = await self._overlay_index() if group is None else None
        if indexed is not None:
            changes = indexed[0] if email is None else indexed[1].get(email, {})
        else:
            changes = await self.overlay_store.overlay_for(email=email, group=group)
        for (name, who), present in changes.items():
            members = groups.setdefault(name, set())
            if present:
                members.add(who)
            else:
                members.discard(who)
        return groups

    async def _overlay_index(self) -> tuple[dict[tuple[str, str], bool], dict[str, dict[tuple[str, str], bool]]] | None:
        """The overlay, whole and by person, read once in a look-up scope (None outside one). The same
        tuple while the overlay store answers the same overlay (nothing changed since)."""
        scope = scope_cache()
        if scope is None:
            return None
        key = ("directory-overlay", id(self))
        if key not in scope:
            everyone = await self.overlay_store.overlay()
            if self._indexed is None or self._indexed[0] is not everyone:  # the overlay changed
                by_email: dict[str, dict[tuple[str, str], bool]] = {}
                for (g, e), p in everyone.items():
                    by_email.setdefault(e, {})[g, e] = p
                self._indexed = (everyone, by_email)
            scope[key] = self._indexed
        return scope[key]  # type: ignore[no-any-return]

    async def _lookup(self, entry: dict[str, Any]) -> Person:
        """A person of the file with their groups. In a look-up scope the ``Person`` built is kept while
        neither the file's snapshot nor the overlay changed: both are the same objects then."""
        email = entry["email"]
        snap = self.snapshot()
        indexed = await self._overlay_index()
        if indexed is None:
            return self._person(entry, await self._groups(email=email))
        people = self._people
        if people is None or people[0] is not snap or people[1] is not indexed:
            people = self._people = (snap, indexed, {})
        person = people[2].get(email)
        if person is None:
            person = people[2][email] = self._person(entry, await self._groups(email=email))
        return person

    def _person(self, entry: dict[str, Any], groups: dict[str, set[str]]) -> Person:
        email = entry["email"]
        extra = {k: v for k, v in entry.items() if k not in USER_KEYS}
        manager = entry.get("manager")
        return Person(
            email=email, name=str(entry.get("name") or email), department=entry.get("department"),
            title=entry.get("title"), employment_type=entry.get("employment_type"),
            manager=str(manager).strip().lower() if manager else None,
            active=entry.get("active", True) is True,
            groups=frozenset(g for g, members in groups.items() if email in members),
            slack_id=entry.get("slack_id"), aad_object_id=entry.get("aad_object_id"), extra=extra,
        )

    async def get_user(self, email: str) -> Person | None:
        entry = self.snapshot().users.get(email.strip().lower())
        return await self._lookup(entry) if entry else None

    async def find_by_slack_id(self, slack_id: str) -> Person | None:
        return await self._find("slack_id", slack_id)

    async def find_by_aad_object_id(self, object_id: str) -> Person | None:
        return await self._find("aad_object_id", object_id.lower())

    async def _find(self, key: str, value: str) -> Person | None:
        snap = self.snapshot()
        email = snap.by_key[key].get(value)
        entry = snap.users.get(email) if email is not None else None
        return await self._lookup(entry) if entry else None

    async def add_member(self, group: str, email: str) -> None:
        if email.strip().lower() not in self.snapshot().users:
            raise ProviderError(f"directory: no user {email!r} to add to {group}", transient=False, status=404)
        await self.overlay_store.set_membership(group, email.lower(), True)
        self._forget_overlay()

    async def remove_member(self, group: str, email: str) -> None:
        await self.overlay_store.set_membership(group, email.lower(), False)
        self._forget_overlay()

    def _forget_overlay(self) -> None:
        scope = scope_cache()
        if scope is not None:
            scope.pop(("directory-overlay", id(self)), None)

    async def list_members(self, group: str) -> list[str]:
        return sorted((await self._groups(group=group)).get(group, set()))

    async def member_of(self, member: str, groups: Sequence[str]) -> set[str]:
        """Those of ``groups`` this person is in: the file's index of their groups and their overlay."""
        key = member.strip().lower()
        held = await self._groups(email=key)
        return {group for group in groups if key in held.get(group, set())}

    async def snapshot_members(self, group: str) -> list[Member]:
        """The group's members with their attributes, manager, last sign-in and (service accounts) owner."""
        users = self.snapshot().users
        members = []
        for email in sorted((await self._groups(group=group)).get(group, set())):
            entry = users.get(email)
            if entry is None:
                members.append(Member(email=email, found=False))
                continue
            person = self._person(entry, {})
            owner = entry.get("owner")
            members.append(Member(
                email=email, name=person.name, department=person.department, title=person.title,
                employment_type=person.employment_type, manager=person.manager, active=person.active,
                last_sign_in=sign_in_time(entry.get("last_sign_in")), kind=str(entry.get("kind") or "user"),
                owner=str(owner).strip().lower() if owner else None))
        return members
