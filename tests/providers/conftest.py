"""Fixtures for the provider suites: stand-ins and one ``provider_env`` per identity provider.

``provider_env`` is parametrized over :data:`PROVIDER_ENVS` (ids ``entra``, ``okta``, ``okta-oauth``,
``directory``). Each value yields a :class:`ProviderEnv`:

    .provider                  the Directory + GroupProvider under test
    .seed_user(email, **attrs) name, department, title, employment_type, manager (an email
                               seeded before), active, groups (group refs)
    .seed_group(name) -> ref   the reference the provider names the group by
    .members(ref)              the remote side's truth, sorted lower-case emails
    .standin                   the stand-in (faults, request log), or None for a provider
                               without one (fault tests skip)
    .groups_by_name            whether a person's groups list the groups' names as well as their
                               refs (Okta lists ids only: a name anyone could copy is no membership)

To add a provider, register an async generator factory ``(request) -> ProviderEnv`` in
``PROVIDER_ENVS`` (e.g. ``PROVIDER_ENVS["directory"] = directory_env``); the contract suite
picks it up.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioning.directory import DirectoryProvider
from provisioning.entra import EntraProvider
from provisioning.okta import OktaProvider
from tests.standins import StandIn
from tests.standins.graph import GraphStandIn
from tests.standins.okta import OktaStandIn
from tests.standins.tls import LocalTLS, make_tls

# Fast settings so that retries and time-outs cost milliseconds.
FAST = {"max_attempts": 3, "max_retry_wait": 2.0, "backoff_base": 0.02, "request_timeout": 0.5}


class ProviderEnv:
    """What a contract test needs from one provider; subclasses fill in the seeding."""

    provider: Any
    standin: StandIn | None = None
    groups_by_name: bool = True

    def seed_user(self, email: str, **attrs: Any) -> None:
        raise NotImplementedError

    def seed_group(self, name: str) -> str:
        raise NotImplementedError

    def members(self, group_ref: str) -> list[str]:
        raise NotImplementedError


class EntraEnv(ProviderEnv):
    def __init__(self, graph: GraphStandIn, **overrides: Any) -> None:
        self.standin = self.graph = graph
        self.provider = EntraProvider(
            tenant_id=graph.tenant, client_id=graph.client_id, client_secret=graph.client_secret,
            graph_url=graph.graph_url, authority_url=graph.url, **{**FAST, **overrides},
        )

    def seed_user(self, email: str, *, name: str = "", department: str | None = None, title: str | None = None,
                  employment_type: str | None = None, manager: str | None = None, active: bool = True,
                  groups: tuple[str, ...] | list[str] = (), upn: str | None = None) -> None:
        self.graph.add_user(email, upn=upn, display_name=name, department=department, job_title=title,
                            employee_type=employment_type, enabled=active, manager=manager)
        for ref in groups:
            self.graph.add_member(ref, email)

    def seed_group(self, name: str) -> str:
        return self.graph.add_group(name)

    def members(self, group_ref: str) -> list[str]:
        return self.graph.member_emails(group_ref)


class OktaEnv(ProviderEnv):
    groups_by_name = False  # people's groups are read as ids; member_of names are resolved to ids at the load

    def __init__(self, okta: OktaStandIn, **overrides: Any) -> None:
        self.standin = self.okta = okta
        self.provider = OktaProvider(org_url=okta.url, token=okta.token, **{**FAST, **overrides})

    def seed_user(self, email: str, *, name: str = "", department: str | None = None, title: str | None = None,
                  employment_type: str | None = None, manager: str | None = None, active: bool = True,
                  groups: tuple[str, ...] | list[str] = (), login: str | None = None, status: str | None = None,
                  manager_by_login: bool = False) -> None:
        first, _, last = name.partition(" ")
        self.okta.add_user(email, login=login, first_name=first, last_name=last, department=department, title=title,
                           user_type=employment_type, status=status or ("ACTIVE" if active else "SUSPENDED"),
                           manager=manager, manager_by_login=manager_by_login)
        for ref in groups:
            self.okta.add_member(ref, email)

    def seed_group(self, name: str) -> str:
        return self.okta.add_group(name)

    def members(self, group_ref: str) -> list[str]:
        return self.okta.member_emails(group_ref)


class OktaServiceAppEnv(OktaEnv):
    """Okta through an OAuth 2.0 service app: client credentials, ``private_key_jwt``."""

    CLIENT_ID = "0oa-accessbot-service"

    def __init__(self, okta: OktaStandIn, **overrides: Any) -> None:
        from provisioning.okta_auth import ServiceApp

        private_pem, public_pem = service_app_key()
        okta.add_service_app(self.CLIENT_ID, public_pem)
        self.standin = self.okta = okta
        self.credentials = ServiceApp(org_url=okta.url, client_id=self.CLIENT_ID, private_key=private_pem,
                                      key_id="accessbot-key-1")
        self.provider = OktaProvider(org_url=okta.url, credentials=self.credentials, **{**FAST, **overrides})


@functools.cache
def service_app_key() -> tuple[str, str]:
    """One RSA key pair for the test session: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


class DirectoryEnv(ProviderEnv):
    """The embedded directory: people in a YAML file, memberships in a fresh SQLite store's overlay.

    It has no remote side, so fault tests skip (``standin`` is None); the truth is the file's
    groups with the store's overlay applied, read back through the store.
    """

    def __init__(self, path: Path, store: Any, url: str) -> None:
        from store.db import make_sync_engine
        from store.overlay import StoreOverlay

        self.path = path
        self.store = store
        self.engine = make_sync_engine(url)  # the truth, read without the event loop
        self.data: dict[str, Any] = {"users": [], "groups": {}}
        self._write()
        self.provider = DirectoryProvider(path, StoreOverlay(store))

    def _write(self) -> None:
        before = self.path.stat().st_mtime_ns if self.path.exists() else 0
        self.path.write_text(yaml.safe_dump(self.data, sort_keys=False))
        # the provider re-reads the file when its mtime changes: make sure it does within one tick
        after = max(self.path.stat().st_mtime_ns, before + 1_000_000)
        os.utime(self.path, ns=(after, after))

    def seed_user(self, email: str, *, name: str = "", department: str | None = None, title: str | None = None,
                  employment_type: str | None = None, manager: str | None = None, active: bool = True,
                  groups: tuple[str, ...] | list[str] = ()) -> None:
        entry: dict[str, Any] = {"email": email, "name": name or email.split("@")[0], "active": active}
        entry |= {k: v for k, v in (("department", department), ("title", title),
                                    ("employment_type", employment_type), ("manager", manager)) if v is not None}
        self.data["users"].append(entry)
        for ref in groups:
            self.data["groups"].setdefault(ref, []).append(email)
        self._write()

    def seed_group(self, name: str) -> str:
        self.data["groups"].setdefault(name, [])
        self._write()
        return name

    def members(self, group_ref: str) -> list[str]:
        from sqlalchemy import select

        from store.schema import directory_memberships as dm

        members = {e.lower() for e in self.data["groups"].get(group_ref, [])}
        with self.engine.connect() as conn:
            for email, present in conn.execute(select(dm.c.email, dm.c.present).where(dm.c.group_name == group_ref)):
                (members.add if present else members.discard)(email)
        return sorted(members)


@pytest.fixture(scope="session")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def graph_server(local_tls: LocalTLS) -> Iterator[GraphStandIn]:
    server = GraphStandIn(local_tls)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def okta_server() -> Iterator[OktaStandIn]:
    server = OktaStandIn()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def graph(graph_server: GraphStandIn, local_tls: LocalTLS, monkeypatch: pytest.MonkeyPatch) -> GraphStandIn:
    """The Graph stand-in, emptied, with this process trusting its certificate."""
    graph_server.reset()
    monkeypatch.setenv("SSL_CERT_FILE", local_tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", local_tls.ca_file)
    return graph_server


@pytest.fixture
def okta(okta_server: OktaStandIn) -> OktaStandIn:
    okta_server.reset()
    return okta_server


def remote_env(make: Callable[[Any], ProviderEnv], stand_in: str
               ) -> Callable[[pytest.FixtureRequest], AsyncIterator[ProviderEnv]]:
    """A provider env over the named stand-in fixture, its provider closed afterwards."""

    async def env_for(request: pytest.FixtureRequest) -> AsyncIterator[ProviderEnv]:
        env = make(request.getfixturevalue(stand_in))
        try:
            yield env
        finally:
            await env.provider.close()

    return env_for


async def directory_env(request: pytest.FixtureRequest) -> AsyncIterator[ProviderEnv]:
    """The embedded directory provider on a fresh SQLite store in the test's tmp_path."""
    from store.db import upgrade
    from store.repository import SqlStore

    where: Path = request.getfixturevalue("tmp_path")
    url = f"sqlite:///{where}/directory-contract.db"
    await asyncio.to_thread(upgrade, url)
    store = SqlStore(url)
    env = DirectoryEnv(where / "directory.yaml", store, url)
    try:
        yield env
    finally:
        env.engine.dispose()
        await store.close()


PROVIDER_ENVS: dict[str, Callable[[pytest.FixtureRequest], AsyncIterator[ProviderEnv]]] = {
    "entra": remote_env(EntraEnv, "graph"),
    "okta": remote_env(OktaEnv, "okta"),
    "okta-oauth": remote_env(OktaServiceAppEnv, "okta"),
    "directory": directory_env,
}


@pytest.fixture(params=list(PROVIDER_ENVS))
async def provider_env(request: pytest.FixtureRequest) -> AsyncIterator[ProviderEnv]:
    async for env in PROVIDER_ENVS[request.param](request):
        yield env


@pytest.fixture
async def entra(graph: GraphStandIn) -> AsyncIterator[EntraEnv]:
    env = EntraEnv(graph)
    yield env
    await env.provider.close()


@pytest.fixture
async def okta_provider_env(okta: OktaStandIn) -> AsyncIterator[OktaEnv]:
    env = OktaEnv(okta)
    yield env
    await env.provider.close()
