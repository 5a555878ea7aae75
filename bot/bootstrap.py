"""The one composition root: every dependency is built here and injected by parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from bot.cron import next_cron_fire
from bot.extensions import optional_modules
from bot.settings import Settings
from handlers.context import Deps, MemoDirectory, SystemClock, decision_readers
from handlers.group_resolution import GroupResolutionError, Resolution, resolve_groups
from handlers.groups import GroupIds
from handlers.policy import Policy, load_policy
from handlers.ports import Clock, Directory, GroupProvider, Notifier
from handlers.service import AccessService
from provisioning.directory import DirectoryProvider
from store.db import upgrade
from store.overlay import StoreOverlay
from store.repository import SqlStore

if TYPE_CHECKING:
    from provisioning.okta import OktaProvider

log = structlog.get_logger("accessbot")
# Modules that add chat commands: each has ``install(service, settings)``.
COMMAND_EXTENSIONS = ("bot.evidence_commands", "bot.web.commands")


@dataclass
class App:
    settings: Settings
    store: SqlStore
    deps: Deps
    service: AccessService
    closers: list[Any]
    state: dict[str, Any] = field(default_factory=dict)  # what health and the scheduler share (bot/health.py)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()


def okta_provider(settings: Settings) -> OktaProvider:
    """The Okta client the settings describe: a service app's credentials win over an API token."""
    from provisioning.okta import OktaProvider

    credentials = None
    if settings.okta_client_id and settings.okta_private_key:
        from provisioning.okta_auth import DEFAULT_SCOPES, ServiceApp

        try:
            credentials = ServiceApp.from_file(org_url=settings.okta_url, client_id=settings.okta_client_id,
                                               key_file=settings.okta_private_key,
                                               key_id=settings.okta_key_id or None,
                                               scopes=tuple(settings.okta_scopes.split()) or DEFAULT_SCOPES)
        except ValueError as exc:
            raise SystemExit(f"ACCESSBOT_OKTA_PRIVATE_KEY: {exc}") from None
    return OktaProvider(org_url=settings.okta_url, token=settings.okta_token, credentials=credentials)


def build_providers(settings: Settings, store: SqlStore) -> tuple[dict[str, GroupProvider], Directory, list[Any]]:
    directory_provider = DirectoryProvider(settings.directory, StoreOverlay(store))
    providers: dict[str, GroupProvider] = {"directory": directory_provider}
    closers: list[Any] = []
    if settings.entra_configured:
        from provisioning.entra import EntraProvider

        entra = EntraProvider(
            tenant_id=settings.entra_tenant_id, client_id=settings.entra_client_id,
            client_secret=settings.entra_client_secret or None,
            certificate_path=settings.entra_certificate or None,
            certificate_thumbprint=settings.entra_certificate_thumbprint or None,
            graph_url=settings.graph_url, authority_url=settings.authority_url)
        providers["entra"] = entra
        closers.append(entra.close)
    if settings.okta_configured:
        okta = okta_provider(settings)
        providers["okta"] = okta
        closers.append(okta.close)
    source = settings.identity_source
    if source not in providers:
        raise SystemExit(f"ACCESSBOT_IDENTITY={source} but that provider is not configured")
    directory: Directory = providers[source]  # type: ignore[assignment]
    return providers, directory, closers


async def _resolve_groups(deps: Deps, settings: Settings, *, persist: bool) -> Resolution:
    """Group names resolved to ids once, before anything calls a provider; refuse to start on a bad one."""
    deps.groups = GroupIds(identity=settings.identity_source)
    try:
        resolution = await resolve_groups(deps, persist=persist)
    except GroupResolutionError as exc:
        raise SystemExit(f"accessbot: cannot start with the policy {settings.policy}:\n  "
                         + "\n  ".join(exc.problems)) from None
    for problem in resolution.stale:
        log.warning("group of an open grant not resolved", problem=problem)
    for (provider, ref), why in sorted(resolution.pending.items()):
        log.warning("policy group name not resolved yet: checks needing it answer 'could not check' until "
                    f"{provider} answers", group=ref, provider=provider, reason=why)
    for warning in resolution.warnings:
        log.warning("policy", issue=str(warning))
    return resolution


def _session_ender(store: SqlStore) -> Any:
    """What each sweep runs to end the dashboard sessions of people no longer active."""
    async def end(deps: Deps) -> int:
        from handlers.dashboard.signin import end_inactive_sessions
        from store.dashboard import SqlDashboardSource

        return await end_inactive_sessions(deps, SqlDashboardSource(store))
    return end


@asynccontextmanager
async def build_app(settings: Settings, *, migrate: bool = True, clock: Clock | None = None,
                    notifier: Notifier | None = None, policy: Policy | None = None,
                    record_policy: bool = True, as_of: Clock | None = None) -> AsyncIterator[App]:
    """Open the store (migrating it when asked), load the policy, wire the service.

    ``clock`` is the real clock (everything recorded); ``as_of`` only the clock timers are judged by.
    """
    policy = policy or load_policy(settings.policy)
    if migrate:
        import asyncio

        from store.roles import DatabaseSetupError

        try:
            await asyncio.to_thread(upgrade, settings.database_url,
                                    owner_url=settings.env.get("ACCESSBOT_DATABASE_OWNER_URL") or None)
        except DatabaseSetupError as exc:
            raise SystemExit(f"accessbot: {exc}") from None
    store = SqlStore(settings.database_url, pool_size=settings.db_pool_size)
    closers: list[Any] = [store.close]
    try:
        providers, directory, provider_closers = build_providers(settings, store)
        closers += provider_closers
        deps = Deps(store=store, directory=MemoDirectory(directory), providers=providers, policy=policy,
                    clock=clock or SystemClock(), judging_clock=as_of, cron=next_cron_fire,
                    decision_readers=decision_readers(store.connections))
        if notifier is not None:
            deps.notifier = notifier
        resolution = await _resolve_groups(deps, settings, persist=record_policy)
        if settings.env.get("ACCESSBOT_ANCHOR_FILE"):
            from store.anchors import FileAnchor

            deps.anchor = FileAnchor(store, settings.env["ACCESSBOT_ANCHOR_FILE"])
        deps.end_inactive_sessions = _session_ender(store)
        service = AccessService(deps)
        for module in optional_modules(COMMAND_EXTENSIONS):
            module.install(service, settings)
        if record_policy:
            await service.start()
        app = App(settings=settings, store=store, deps=deps, service=service, closers=closers)
        app.state["policy_warnings"] = resolution.warnings
        yield app
    finally:
        for closer in reversed(closers):
            await closer()
