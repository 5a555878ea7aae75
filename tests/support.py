"""Helpers shared by the core tests: copies of the example files, the real CLI, the real app."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.bootstrap import App, build_app
from bot.settings import Settings
from handlers.ports import Notice
from handlers.views import Reply

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def save_changed(path: Path, text: str) -> None:
    """Write a watched file (the policy, the directory) so that its change is seen even within one mtime tick."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


async def put_in_force(app: App, policy: str | Path, text: str) -> None:
    """Save a new version of the policy file and have it put in force, as ``serve`` does within seconds."""
    from bot.policy_watch import PolicyWatch

    save_changed(Path(policy), text)
    assert await PolicyWatch(app, str(policy), quiet=True, wait=True).check() is not None


@dataclass
class Files:
    policy: Path
    directory: Path

    def edit_directory(self, fn) -> None:  # type: ignore[no-untyped-def]
        data = yaml.safe_load(self.directory.read_text())
        fn(data)
        save_changed(self.directory, yaml.safe_dump(data, sort_keys=False))

    def set_active(self, email: str, active: bool) -> None:
        def change(data: dict) -> None:
            for u in data["users"]:
                if u["email"] == email:
                    u["active"] = active

        self.edit_directory(change)

    def add_to_group(self, group: str, email: str) -> None:
        def change(data: dict) -> None:
            data["groups"].setdefault(group, [])
            data["groups"][group] = [*(data["groups"][group] or []), email]

        self.edit_directory(change)


def copy_examples(tmp_path: Path, source: Path = EXAMPLES) -> Files:
    """The example policy and directory (or those of ``source``), copied where the test may change them."""
    policy = tmp_path / "policy.yaml"
    directory = tmp_path / "directory.yaml"
    shutil.copy(source / "policy.yaml", policy)
    shutil.copy(source / "directory.yaml", directory)
    return Files(policy, directory)


class MutableClock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at = self.at + timedelta(**kw)


class RecordingNotifier:
    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def notify(self, notices: list[Notice]) -> None:
        self.notices.extend(notices)

    def to(self, email: str, kind: str | None = None) -> list[Notice]:
        return [n for n in self.notices if n.recipient == email and (kind is None or n.kind == kind)]


class Harness:
    """The real app in-process: every command goes through the same service as the channels."""

    def __init__(self, app: App, clock: MutableClock, notifier: RecordingNotifier, files: Files) -> None:
        self.app = app
        self.clock = clock
        self.notifier = notifier
        self.files = files

    async def say(self, email: str, text: str) -> Reply:
        person = await self.app.service.identify(email)
        assert person is not None, email
        return await self.app.service.handle_text(person, text)

    async def events(self, type_: str | None = None) -> list[dict]:
        return [e.as_dict() async for e in self.app.store.audit_events() if type_ is None or e.type == type_]

    async def request(self, n: int):  # type: ignore[no-untyped-def]
        async with self.app.store.read() as repo:
            return await repo.get_request(n)

    async def members(self, group: str) -> list[str]:
        return await self.app.deps.providers["directory"].list_members(group)


@asynccontextmanager
async def second_process(h: Harness, notifier: RecordingNotifier | None = None) -> AsyncIterator[App]:
    """Another process on the harness's database and files: its own app (its own store and memos), the same
    clock."""
    settings = Settings(database_url=h.app.settings.database_url, policy=str(h.files.policy),
                        directory=str(h.files.directory), env={})
    async with build_app(settings, clock=h.clock, notifier=notifier or RecordingNotifier()) as other:
        yield other


def before_looking_up(monkeypatch: Any, app: App, email: str, action: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run ``action`` once, when ``app`` first asks its directory about ``email`` (before the answer): another
    process acting between what ``app`` read and what it writes. The list gets what ``action`` returned."""
    provider = app.deps.providers["directory"]
    look_up = provider.get_user
    ran: list[Any] = []

    async def meanwhile(who: str) -> Any:
        if who == email and not ran:
            ran.append(await action())
        return await look_up(who)

    monkeypatch.setattr(provider, "get_user", meanwhile)
    return ran


@asynccontextmanager
async def harness(database_url: str, tmp_path: Path, *, clock: MutableClock | None = None,
                  env: dict[str, str] | None = None) -> AsyncIterator[Harness]:
    files = copy_examples(tmp_path)
    clock = clock or MutableClock()
    notifier = RecordingNotifier()
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory),
                        env=dict(env or {}))
    async with build_app(settings, clock=clock, notifier=notifier) as app:
        yield Harness(app, clock, notifier, files)


def cli(*args: str, input: str | None = None, db: str | None = None, files: Files | None = None,
        check: bool = False, timeout: float = 120, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run the real ``accessbot`` command line in a subprocess."""
    cmd = [sys.executable, "-m", "bot.cli", *args]
    if db is not None:
        cmd += ["--database-url", db]
    if files is not None:
        cmd += ["--policy", str(files.policy), "--directory", str(files.directory)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                            env={**clean, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def chat(email: str, *lines: str, db: str, files: Files, env: dict[str, str] | None = None) -> str:
    """Pipe lines into ``accessbot chat``: exit 0 when all were understood and allowed, 1 when one was refused."""
    result = cli("chat", "--as", email, input="\n".join(lines) + "\n", db=db, files=files, env=env)
    assert result.returncode in (0, 1), result.stderr + result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def hidden_characters(events: list[dict]) -> list[tuple[int, str]]:
    """(seq, character) of every control or bidi character in the events' fields (none may reach the log)."""
    found = []
    for event in events:
        for ch in json.dumps(event, ensure_ascii=False):
            code = ord(ch)
            if code < 32 or 127 <= code <= 159 or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069 or code in (
                    0x200E, 0x200F, 0x061C, 0xFEFF):
                found.append((event.get("seq"), ch))
    return found


def provider_policy(provider: str, group: str, *, version: str, security: tuple[str, ...] = ("sam.sec@example.com",),
                    approval: str = "[owner]", auto_approve: bool = True, exception: str | None = None,
                    eligible: str | None = None) -> str:
    """A one-profile policy (``tools``) over a group of a real provider's stand-in: the tests of leavers,
    drift and failing look-ups at Graph and Okta. ``exception``: the exception chain, ``eligible``: one
    eligibility rule, as YAML."""
    lines = [f'version: "{version}"', "approver_groups:", f"  security: [{', '.join(security)}]",
             "security_team: security", "profiles:", "  - id: tools", "    title: Tools",
             "    owner: pat.lead@example.com", f"    provider: {provider}", f"    group: {group}"]
    if eligible:
        lines += ["    eligible:", f"      - {eligible}"]
    lines += ["    duration: {default: 1h, max: 8h}", f"    approval: {approval}"]
    if auto_approve:
        lines += ["    auto_approve:", "      - {department: Engineering, max_duration: 8h}"]
    if exception:
        lines += ["    exception:", f"      approval: {exception}", "      max_duration: 30d"]
    return "\n".join(lines) + "\n"


@dataclass
class OktaGroup:
    """An Okta group at the stand-in that the example policy's profiles grant, the person's Okta id, and the settings
    of an app that provisions there (the directory file stays the identity source)."""

    files: Files
    settings: Settings
    gid: str  # the group's Okta id
    user: str  # the person's Okta id
    path: str  # the membership's path at Okta (/groups/{gid}/users/{user}): for path faults and request counts


def okta_group(okta: Any, database_url: str, tmp_path: Path, *, email: str = "alice@example.com",
               profiles: tuple[str, ...] = ("sg-prod-db-read",), policy_tail: str = "") -> OktaGroup:
    """``prod-db-read`` at ``okta`` (an ``OktaStandIn``), ``email`` there (in Engineering), and the profiles granting
    the example directory groups ``profiles`` pointed at it, ``policy_tail`` appended to the policy."""
    gid = okta.add_group("prod-db-read")
    user = okta.add_user(email, department="Engineering")
    files = copy_examples(tmp_path)
    text = files.policy.read_text()
    for group in profiles:
        text = text.replace(f"    provider: directory\n    group: {group}\n",
                            f"    provider: okta\n    group: {gid}\n", 1)
    files.policy.write_text(text + policy_tail)
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory),
                        env={}, identity="directory", okta_url=okta.url, okta_token=okta.token)
    return OktaGroup(files, settings, gid, user, f"/groups/{gid}/users/{user}")


@asynccontextmanager
async def okta_holder(okta: Any, database_url: str, tmp_path: Path, *, email: str = "alice@example.com",
                      request: str = "request prod-db-read for 30m because INC-7 page"
                      ) -> AsyncIterator[tuple[Harness, OktaGroup]]:
    """An app provisioning at ``okta`` (:func:`okta_group`), and ``email``'s grant of its group, active (Alice is on
    call: auto-approved), with the harness's clock and recording notifier."""
    group = okta_group(okta, database_url, tmp_path, email=email)
    clock, notifier = MutableClock(), RecordingNotifier()
    async with build_app(group.settings, clock=clock, notifier=notifier) as app:
        h = Harness(app, clock, notifier, group.files)
        r = await h.say(email, request)
        assert r.ok and (await h.request(1)).state == "active", r.text
        yield h, group


@contextmanager
def graph_over_tls(tmp_path: Path, monkeypatch: Any, *extensions: str) -> Iterator[Any]:
    """The Graph stand-in on TLS its clients trust (``SSL_CERT_FILE``), with these directory extensions registered."""
    from tests.standins.graph import GraphStandIn
    from tests.standins.tls import make_tls

    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    with GraphStandIn(tls) as server:
        for name in extensions:
            server.register_extension(name)
        yield server


def entra_settings(db: str, tmp_path: Path, graph: Any, policy: str) -> Settings:
    """Settings with Entra (the Graph stand-in) as the identity source and ``policy`` written to a file."""
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    return Settings(database_url=db, policy=str(path), directory=str(EXAMPLES / "directory.yaml"),
                    identity="entra", entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                    entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)


@contextmanager
def statements(app: App, keep: Callable[[str, Any], bool] | None = None) -> Iterator[list[str]]:
    """The SQL statements the app sends meanwhile (SQLAlchemy's listener sees those of store/fast.py too), each on
    one line; with ``keep``, those it keeps (it is given each statement and its parameters)."""
    from sqlalchemy import event

    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if keep is None or keep(statement, parameters):
            seen.append(" ".join(statement.split()))

    engine = app.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


@asynccontextmanager
async def held_table(url: str, table: str) -> AsyncIterator[None]:
    """PostgreSQL: ``table`` locked (ACCESS EXCLUSIVE) by a connection of its own until the block ends, so that every
    statement reading it waits meanwhile (a read held on its way, without touching the code that sends it)."""
    import asyncio

    import psycopg

    holder = await asyncio.to_thread(psycopg.connect, url)
    try:
        await asyncio.to_thread(holder.execute, f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        await asyncio.to_thread(holder.commit)
        await asyncio.to_thread(holder.close)


async def until(condition: Callable[[], object]) -> None:
    """Wait (10 s at most) until ``condition()`` holds: a state of the app under test, which sets no event."""
    import asyncio

    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - a state of the app under test, which sets no event
            await asyncio.sleep(0.005)
