"""Teams test harness: the real app served on 127.0.0.1, a stand-in Bot Connector, a local OpenID issuer.

``teams`` (async fixture) starts ``create_web_app`` with the Teams channel mounted in emulator
mode (``ACCESSBOT_TEAMS_EMULATOR=1``); ``teams_secured`` does the same with an app id, validating
tokens against the local issuer and serving the tenant :data:`TENANT` only. Activities come from
``tests/fixtures/teams/*.json`` with the sender, service URL, text or card action filled in.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from bot.bootstrap import App, build_app
from bot.notify import FanoutNotifier
from bot.server import create_web_app
from bot.settings import Settings
from bot.teams import TEAMS_KEY, TeamsChannel
from tests.support import MutableClock, copy_examples
from tests.teams.standins import BotConnector, OpenIdIssuer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "teams"
# Activity ids: Teams gives every activity its own, and the route handles an id it has seen only once
_ACTIVITY_IDS = itertools.count(1)
APP_ID = "6a3c1f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"

# email → Azure AD object id (alice's is in examples/directory.yaml; the rest only in the test copy)
AAD = {
    "alice@example.com": "7d1e2a40-0a1b-4c2d-9e3f-a1b2c3d4e5f6",
    "bob@example.com": "1b0b0000-0000-4000-8000-00000000b0b1",
    "carol@example.com": "1ca40100-0000-4000-8000-0000000ca401",
    "mark.mgr@example.com": "0a8e3c11-2b2d-4e6f-8a9b-0c1d2e3f4a5b",
    "pat.lead@example.com": "1ba70000-0000-4000-8000-0000000ba701",
    "dana.dba@example.com": "1da4a000-0000-4000-8000-000000da4a01",
    "sam.sec@example.com": "15a40000-0000-4000-8000-00000005a401",
    "sasha.sec@example.com": "15a5a000-0000-4000-8000-00000005a5a1",
    # dev.dba@example.com has none: found through the Teams roster's email instead
}


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def teams_id(email: str) -> str:
    return "29:1" + email.split("@")[0].replace(".", "-")


def conversation_id(email: str) -> str:
    return "a:1" + email.split("@")[0].replace(".", "-") + "-personal"


@pytest.fixture(scope="session")
def connector() -> Iterator[BotConnector]:
    stand_in = BotConnector().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="session")
def issuer() -> Iterator[OpenIdIssuer]:
    stand_in = OpenIdIssuer().start()
    yield stand_in
    stand_in.stop()


@dataclass
class TeamsHarness:
    app: App
    channel: TeamsChannel | None  # None: the channel is off (no app id, no emulator flag)
    connector: BotConnector
    url: str
    http: aiohttp.ClientSession
    clock: MutableClock
    issuer: OpenIdIssuer | None = None

    def activity(self, name: str, email: str, **fields: Any) -> dict[str, Any]:
        """The fixture activity from ``email``, with an activity id of its own (``id=`` in ``fields`` to choose it:
        posting the same id twice is Teams re-sending the activity)."""
        act = copy.deepcopy(fixture(name))
        act["id"] = f"{act['id']}-{next(_ACTIVITY_IDS)}"
        act["serviceUrl"] = self.connector.url
        act["from"] = {"id": teams_id(email), "name": email}
        if email in AAD:
            act["from"]["aadObjectId"] = AAD[email]
        act["conversation"]["id"] = conversation_id(email)
        act["conversation"]["tenantId"] = TENANT
        act.update(fields)
        return act

    async def post(self, activity: dict[str, Any], *, token: str | None = None,
                   auth: str | None = None, no_auth: bool = False) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if auth is not None:
            headers["Authorization"] = auth
        if self.issuer is not None and token is None and auth is None and not no_auth:
            headers["Authorization"] = "Bearer " + self.issuer.token(audience=APP_ID,
                                                                     service_url=activity["serviceUrl"])
        async with self.http.post(f"{self.url}/api/messages", data=json.dumps(activity), headers=headers) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            return resp.status, body

    async def say(self, email: str, text: str) -> tuple[int, Any]:
        status, body = await self.post(self.activity("message_personal", email, text=text))
        await self.idle()
        return status, body

    async def idle(self) -> None:
        if self.channel is not None:
            await self.channel.notifier.idle()

    async def click(self, email: str, verb: str, data: dict[str, Any], reply_to: str = "1763884850123"
                    ) -> dict[str, Any]:
        act = self.activity("invoke_adaptive_card_action", email, replyToId=reply_to)
        act["value"]["action"] = {"type": "Action.Execute", "verb": verb, "data": data}
        status, body = await self.post(act)
        await self.idle()
        assert status == 200, body
        assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive", body
        return body["value"]

    async def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e.as_dict() async for e in self.app.store.audit_events() if type_ is None or e.type == type_]

    async def request(self, n: int) -> Any:
        async with self.app.store.read() as repo:
            return await repo.get_request(n)


def _directory_with_aad(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    for user in data["users"]:
        if user["email"] in AAD:
            user["aad_object_id"] = AAD[user["email"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


async def _serve(settings: Settings, connector: BotConnector, issuer: OpenIdIssuer | None
                 ) -> AsyncIterator[TeamsHarness]:
    connector.reset()
    connector.roster.clear()
    clock = MutableClock()
    notifier = FanoutNotifier()
    async with build_app(settings, notifier=notifier, clock=clock) as app:
        web_app = create_web_app(app, notifier, scheduler=False)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            try:
                yield TeamsHarness(app, web_app.get(TEAMS_KEY), connector, f"http://127.0.0.1:{port}", http,
                                   clock, issuer)
            finally:
                if TEAMS_KEY in web_app:
                    await web_app[TEAMS_KEY].notifier.idle()
                await runner.cleanup()


def _settings(db: str, tmp_path: Path, **kw: Any) -> Settings:
    files = copy_examples(tmp_path)
    _directory_with_aad(files.directory)
    return Settings(database_url=db, policy=str(files.policy), directory=str(files.directory), **kw)


@pytest.fixture
async def teams(sqlite_url: str, tmp_path: Path, connector: BotConnector) -> AsyncIterator[TeamsHarness]:
    async for h in _serve(_settings(sqlite_url, tmp_path, teams_emulator="1"), connector, None):
        yield h


@pytest.fixture
async def teams_any_db(database_url: str, tmp_path: Path, connector: BotConnector) -> AsyncIterator[TeamsHarness]:
    async for h in _serve(_settings(database_url, tmp_path, teams_emulator="1"), connector, None):
        yield h


@pytest.fixture
async def teams_secured(sqlite_url: str, tmp_path: Path, connector: BotConnector, issuer: OpenIdIssuer
                        ) -> AsyncIterator[TeamsHarness]:
    env = {"ACCESSBOT_TEAMS_OPENID_METADATA_URL": issuer.metadata_url,
           "ACCESSBOT_TEAMS_TOKEN_URL": f"{connector.url}/token"}
    settings = _settings(sqlite_url, tmp_path, app_id=APP_ID, app_password="secret", teams_tenants=TENANT, env=env)
    async for h in _serve(settings, connector, issuer):
        yield h
