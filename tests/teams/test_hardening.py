"""The Teams door: emulator mode only on request and only for this machine; only the pinned tenants.

Each refusal is checked for its answer (401/403) and for what it must not leave behind: no audit
event, no stored conversation reference (the bot's own address included), no call to anyone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bot.bootstrap import build_app
from bot.notify import FanoutNotifier
from bot.server import CHANNELS_KEY, create_web_app
from bot.settings import Settings, load_settings
from handlers.ports import Notice
from tests.standins.graph import GraphStandIn
from tests.standins.tls import LocalTLS, make_tls
from tests.teams.conftest import AAD, APP_ID, TENANT, TeamsHarness, _serve, _settings, conversation_id
from tests.teams.standins import BotConnector

ALICE, DANA = "alice@example.com", "dana.dba@example.com"
BOB, MARK = "bob@example.com", "mark.mgr@example.com"
FOREIGN = "0badc0de-0000-4000-8000-000000000bad"
OFF_MACHINE = "https://smba.invalid/emea/"  # never resolves: a call to it could only be a mistake
KINDS = ("message_personal", "invoke_adaptive_card_action", "installation_update_add",
         "conversation_update_members_added")


async def _snapshot(h: TeamsHarness) -> tuple[int, Any, Any]:
    async with h.app.store.read() as repo:
        return len(await h.events()), await repo.address("teams", "#bot"), await repo.address("teams", ALICE)


async def _nothing_changed(h: TeamsHarness, before: tuple[int, Any, Any]) -> None:
    await h.idle()
    assert await _snapshot(h) == before
    assert h.connector.of() == []


# -- 1. no app id: nothing, unless the emulator is asked for; then this machine only ---------------
@pytest.fixture
async def teams_off(sqlite_url: str, tmp_path: Path, connector: BotConnector) -> Any:
    async for h in _serve(_settings(sqlite_url, tmp_path), connector, None):
        yield h


async def test_without_app_id_or_emulator_flag_the_route_accepts_nothing(teams_off: TeamsHarness) -> None:
    h = teams_off
    before = await _snapshot(h)
    for kind in KINDS:
        status, body = await h.post(h.activity(kind, ALICE, text="request staging-admin for 2h because x"))
        assert status == 401, kind
        assert "MicrosoftAppId" in body["error"]
    await _nothing_changed(h, before)


def test_the_emulator_flag_and_tenants_are_read_from_the_environment() -> None:
    settings = load_settings({"ACCESSBOT_TEAMS_EMULATOR": "1", "ACCESSBOT_TEAMS_TENANTS": f" {TENANT.upper()},b "},
                             dotenv=None)
    assert settings.teams_emulator_on and settings.teams_tenant_ids == {TENANT, "b"}
    assert not load_settings({}, dotenv=None).teams_emulator_on
    assert Settings(app_tenant_id="A", entra_tenant_id="b").teams_tenant_ids == {"a"}
    assert Settings(entra_tenant_id="B").teams_tenant_ids == {"b"}
    assert Settings(teams_tenants="c", app_tenant_id="a").teams_tenant_ids == {"c"}


@pytest.mark.parametrize("header", [{"X-Forwarded-For": "203.0.113.7"}, {"Forwarded": "for=203.0.113.7"},
                                    {"X-Real-IP": "203.0.113.7"}, {"X-Forwarded-Host": "bot.example.com"}])
async def test_emulator_mode_refuses_anything_that_came_through_a_proxy(teams: TeamsHarness,
                                                                        header: dict[str, str]) -> None:
    h = teams
    before = await _snapshot(h)
    act = h.activity("message_personal", ALICE, text="request staging-admin for 2h because x")
    async with h.http.post(f"{h.url}/api/messages", json=act, headers=header) as resp:
        assert resp.status == 401
    await _nothing_changed(h, before)


async def test_emulator_mode_never_calls_a_service_url_off_this_machine(teams: TeamsHarness) -> None:
    h = teams
    before = await _snapshot(h)
    for kind in KINDS:
        status, _ = await h.post(h.activity(kind, ALICE, text="request staging-admin for 2h because x",
                                            serviceUrl=OFF_MACHINE))
        assert status == 403, kind
    await _nothing_changed(h, before)
    # a reference stored earlier that points elsewhere is not used either
    async with h.app.store.write() as repo:
        await repo.save_address("teams", DANA, {"serviceUrl": OFF_MACHINE, "channelId": "msteams",
                                                "conversation": {"id": conversation_id(DANA)},
                                                "user": {"id": "29:1dana"}, "bot": {"id": "28:bot"}}, h.clock.now())
    assert h.channel is not None
    with capture_logs() as logs:
        await h.channel.notifier.notify([Notice(DANA, "info", "hello")])
        await h.idle()
    assert any(e["event"] == "service URL refused" and e["service_url"] == OFF_MACHINE for e in logs), logs
    assert h.connector.of() == []


# -- 2. only the pinned tenants ---------------------------------------------------------------------
def _tenanted(act: dict[str, Any], channel_tenant: str | None, conversation_tenant: str | None) -> dict[str, Any]:
    act["channelData"] = {"tenant": {"id": channel_tenant}} if channel_tenant else {}
    if conversation_tenant:
        act["conversation"]["tenantId"] = conversation_tenant
    else:
        act["conversation"].pop("tenantId", None)
    return act


async def test_other_tenants_get_403_and_nothing_is_recorded_or_remembered(teams_secured: TeamsHarness) -> None:
    h = teams_secured
    status, _ = await h.say(ALICE, "help")  # the bot's own address and alice's are now stored
    assert status == 200
    before = await _snapshot(h)
    assert before[1] is not None and before[2] is not None
    h.connector.reset()
    # a user of another tenant, claiming alice's object id and Teams id; tenants mixed or missing
    for channel_tenant, conversation_tenant in ((FOREIGN, FOREIGN), (TENANT, FOREIGN), (FOREIGN, TENANT),
                                                (FOREIGN, None), (None, None)):
        for kind in KINDS:
            act = _tenanted(h.activity(kind, ALICE, text="request staging-admin for 2h because x"),
                            channel_tenant, conversation_tenant)
            status, _ = await h.post(act)
            assert status == 403, (kind, channel_tenant, conversation_tenant)
    await _nothing_changed(h, before)
    # the pinned tenant, spelled in capitals, is still served
    status, _ = await h.post(_tenanted(h.activity("message_personal", ALICE, text="help"), TENANT.upper(),
                                       TENANT.upper()))
    assert status == 200


async def test_a_multi_tenant_app_with_no_tenant_known_refuses_to_start(sqlite_url: str, tmp_path: Path) -> None:
    for app_type in ("MultiTenant", ""):
        settings = _settings(sqlite_url, tmp_path, app_id=APP_ID, app_password="secret", app_type=app_type)
        async with build_app(settings) as app:
            with pytest.raises(SystemExit) as stopped:
                create_web_app(app, FanoutNotifier(), scheduler=False)
        assert "ACCESSBOT_TEAMS_TENANTS" in str(stopped.value)
    # Entra's tenant is the default when nothing else names one
    settings = _settings(sqlite_url, tmp_path, app_id=APP_ID, app_password="secret", entra_tenant_id=TENANT)
    async with build_app(settings) as app:
        web_app = create_web_app(app, FanoutNotifier(), scheduler=False)
        assert "teams" in web_app[CHANNELS_KEY]


@pytest.fixture(scope="module")
def graph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GraphStandIn, LocalTLS]]:
    tls = make_tls(tmp_path_factory.mktemp("tls"))
    server = GraphStandIn(tls)
    server.start()
    yield server, tls
    server.stop()


async def test_with_entra_as_identity_a_roster_email_alone_identifies_nobody(
        graph_server: tuple[GraphStandIn, LocalTLS], sqlite_url: str, tmp_path: Path, connector: BotConnector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    graph, tls = graph_server
    graph.reset()
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    alice_oid = graph.add_user(ALICE, display_name="Alice Ng", department="Engineering")
    graph.add_group("oncall")  # the policy's member_of names it: resolved to its id at start
    settings = _settings(sqlite_url, tmp_path, teams_emulator="1", teams_tenants=TENANT, identity="entra",
                         entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                         entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)
    async for h in _serve(settings, connector, None):
        # someone Entra does not know by object id, whose roster entry claims alice's address
        for oid in ("0bad0000-0000-4000-8000-000000000001", None):
            act = h.activity("message_personal", "mallory@example.com", text="request staging-admin for 2h because x")
            act["from"].pop("aadObjectId", None)
            if oid:
                act["from"]["aadObjectId"] = oid
            h.connector.roster[act["from"]["id"]] = {"id": act["from"]["id"], "email": ALICE,
                                                     "userPrincipalName": ALICE, "objectId": oid}
            status, _ = await h.post(act)
            await h.idle()
            assert status == 200
            assert "could not find you" in h.connector.of("reply")[-1].text
        assert await h.events("request.submitted") == []
        async with h.app.store.read() as repo:
            assert await repo.address("teams", ALICE) is None
        # alice herself, known by her object id in the tenant
        act = h.activity("message_personal", ALICE, text="mine")
        act["from"]["aadObjectId"] = alice_oid
        status, _ = await h.post(act)
        await h.idle()
        assert status == 200
        assert "could not find you" not in h.connector.of("reply", conversation_id(ALICE))[-1].text


def _bob_and_mark_at_entra(graph_server: tuple[GraphStandIn, LocalTLS], sqlite_url: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Teams in the pinned tenant with people from Entra (the Graph stand-in): bob, whose manager is mark."""
    graph, tls = graph_server
    graph.reset()
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    graph.add_user(MARK, department="Engineering", object_id=AAD[MARK])
    graph.add_user(BOB, department="Engineering", manager=MARK, object_id=AAD[BOB])
    graph.add_group("oncall")
    return _settings(sqlite_url, tmp_path, teams_emulator="1", teams_tenants=TENANT, identity="entra",
                     entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                     entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)


async def test_an_identity_provider_that_fails_mid_click_is_said_on_the_card(
        graph_server: tuple[GraphStandIn, LocalTLS], sqlite_url: str, tmp_path: Path, connector: BotConnector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The requester's look-up fails at Graph while the manager refreshes and approves: the card says the
    provider did not answer (naming nobody), no decision is recorded, and the same click goes through
    once Graph answers again."""
    graph = graph_server[0]
    settings = _bob_and_mark_at_entra(graph_server, sqlite_url, tmp_path, monkeypatch)
    async for h in _serve(settings, connector, None):
        bob = await h.app.service.identify(BOB)
        assert bob is not None
        reply = await h.app.service.handle_text(bob, "request staging-admin for 1h")
        assert reply.ok and reply.request is not None and reply.request.state == "pending", reply.text
        n = reply.request.number
        graph.fail_path(f"/users/{BOB}", status=500)
        for verb in ("refresh", "approve"):
            text = json.dumps(await h.click(MARK, verb, {"request_id": n}))
            assert "the identity provider did not answer (HTTP 500)" in text and BOB not in text, text
        assert (await h.request(n)).state == "pending"
        assert await h.events("approval.granted") == []
        graph.clear_path_faults()
        text = json.dumps(await h.click(MARK, "approve", {"request_id": n}))
        assert (await h.request(n)).state == "active", text


async def test_a_request_recorded_before_the_provider_failed_is_not_said_to_have_failed(
        graph_server: tuple[GraphStandIn, LocalTLS], sqlite_url: str, tmp_path: Path, connector: BotConnector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Bob is known by his object id; his look-up by address fails at Graph while he asks. Whatever the
    answer, it must be true: a request it says did not go through is not on record, and one on record
    was put to its approver (not left pending with nobody asked, to be refused as already-pending)."""
    graph = graph_server[0]
    settings = _bob_and_mark_at_entra(graph_server, sqlite_url, tmp_path, monkeypatch)
    async for h in _serve(settings, connector, None):
        await h.say(MARK, "help")
        cards_before = len([p for p in connector.of(conversation=conversation_id(MARK)) if p.card is not None])
        graph.fail_path(f"/users/{BOB}", status=500)
        status, _ = await h.say(BOB, "request staging-admin for 1h")
        assert status == 200
        said = connector.of("reply", conversation_id(BOB))[-1]
        text = json.dumps(said.card) if said.card is not None else (said.text or "")
        recorded = await h.request(1)
        if "did not answer" in text:
            assert recorded is None, text  # "try again" must not leave a request behind
        else:
            assert recorded is not None and recorded.state == "pending", text
            asked = [p for p in connector.of(conversation=conversation_id(MARK)) if p.card is not None]
            assert len(asked) > cards_before, "the approver was never asked"
