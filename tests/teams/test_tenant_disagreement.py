"""An activity whose two tenant fields (``channelData.tenant.id``, ``conversation.tenantId``) name two different
tenants is no activity Teams sends, even when the bot serves both: refused (403) before anything is recorded
or remembered, so the tenant the bot writes to first is never the one a sender chose."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.teams.notifier import BOT_ADDRESS
from tests.teams.conftest import (  # noqa: F401  (fixtures)
    APP_ID,
    TENANT,
    TeamsHarness,
    _serve,
    _settings,
    connector,
    issuer,
)
from tests.teams.standins import BotConnector, OpenIdIssuer

OTHER = "0b5e1c2d-3f4a-4b6c-8d7e-9f0a1b2c3d4e"  # a second tenant the same bot serves
ALICE = "alice@example.com"


@pytest.fixture
async def two_tenants(sqlite_url: str, tmp_path: Path, connector: BotConnector,  # noqa: F811
                      issuer: OpenIdIssuer) -> AsyncIterator[TeamsHarness]:  # noqa: F811
    env = {"ACCESSBOT_TEAMS_OPENID_METADATA_URL": issuer.metadata_url,
           "ACCESSBOT_TEAMS_TOKEN_URL": f"{connector.url}/token"}
    settings = _settings(sqlite_url, tmp_path, app_id=APP_ID, app_password="secret",
                         teams_tenants=f"{TENANT},{OTHER}", env=env)
    async for h in _serve(settings, connector, issuer):
        yield h


async def test_an_activity_naming_two_served_tenants_is_refused(two_tenants: TeamsHarness) -> None:
    h = two_tenants
    status, _ = await h.say(ALICE, "help")
    assert status == 200
    async with h.app.store.read() as repo:
        before = await repo.address("teams", BOT_ADDRESS)
    events = len(await h.events())
    for kind in ("message_personal", "invoke_adaptive_card_action", "installation_update_add"):
        act = h.activity(kind, ALICE, text="request staging-admin for 2h because x")
        act["channelData"] = {"tenant": {"id": OTHER}}  # conversation.tenantId is TENANT
        status, body = await h.post(act)
        await h.idle()
        assert status == 403 and "tenant" in body["error"], (kind, status, body)
    assert len(await h.events()) == events
    async with h.app.store.read() as repo:
        assert await repo.address("teams", BOT_ADDRESS) == before
    # either tenant, named the same twice, is served
    for tenant in (TENANT, OTHER):
        act = h.activity("message_personal", ALICE, text="help")
        act["channelData"] = {"tenant": {"id": tenant}}
        act["conversation"]["tenantId"] = tenant.upper()
        status, _ = await h.post(act)
        assert status == 200, tenant
