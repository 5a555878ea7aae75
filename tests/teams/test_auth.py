"""Real Bot Framework token validation against a local OpenID metadata + JWKS server."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.settings import Settings
from bot.teams.auth import build_authentication
from tests.teams.conftest import APP_ID, TENANT, TeamsHarness, _serve, _settings, conversation_id
from tests.teams.standins import BotConnector, OpenIdIssuer

ALICE = "alice@example.com"


async def _nothing_recorded(h: TeamsHarness, events_before: int) -> None:
    assert len(await h.events()) == events_before
    assert h.connector.of() == []
    async with h.app.store.read() as repo:
        assert await repo.address("teams", ALICE) is None


async def test_valid_token_is_accepted_and_replies_carry_the_outbound_token(teams_secured: TeamsHarness) -> None:
    h = teams_secured
    status, _ = await h.say(ALICE, "request staging-admin for 2h")
    assert status == 200
    assert (await h.request(1)).requester == ALICE
    reply = h.connector.received("POST", f"/v3/conversations/{conversation_id(ALICE)}/activities")[0]
    assert reply.headers["Authorization"] == f"Bearer {h.connector.OUTBOUND_TOKEN}"
    token_calls = h.connector.received("POST", "/token")
    assert token_calls and token_calls[0].body["client_id"] == APP_ID
    assert token_calls[0].body["scope"] == "https://api.botframework.com/.default"


def _bad_headers(h: TeamsHarness, service_url: str) -> dict[str, str | None]:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now_token = h.issuer.token  # type: ignore[union-attr]
    return {
        "missing": None,
        "empty": "",
        "garbage": "Bearer not-a-jwt",
        "not bearer": "Basic dXNlcjpwYXNz",
        "expired": "Bearer " + now_token(audience=APP_ID, service_url=service_url, expires_in=-3600),
        "wrong audience": "Bearer " + now_token(audience="some-other-bot", service_url=service_url),
        "wrong issuer": "Bearer " + now_token(audience=APP_ID, service_url=service_url,
                                              issuer="https://evil.example.com"),
        "wrong service url": "Bearer " + now_token(audience=APP_ID, service_url="https://elsewhere.example.com/"),
        "unknown signing key": "Bearer " + now_token(audience=APP_ID, service_url=service_url, key=other_key),
        "signed by another key under our kid": "Bearer " + jwt.encode(
            jwt.decode(now_token(audience=APP_ID, service_url=service_url), options={"verify_signature": False}),
            other_key, algorithm="RS256", headers={"kid": h.issuer.kid}),  # type: ignore[union-attr]
        "unsigned": "Bearer " + jwt.encode({"iss": "https://api.botframework.com", "aud": APP_ID,
                                            "serviceurl": service_url}, None, algorithm="none"),
        # the channel's key, but no expiry: a token that, once leaked, would open the door for ever
        "no expiry": "Bearer " + jwt.encode({"iss": "https://api.botframework.com", "aud": APP_ID,
                                             "serviceurl": service_url}, h.issuer.key,  # type: ignore[union-attr]
                                            algorithm="RS256", headers={"kid": h.issuer.kid}),  # type: ignore[union-attr]
        "an expiry that is no number": "Bearer " + jwt.encode(
            {"iss": "https://api.botframework.com", "aud": APP_ID, "serviceurl": service_url, "exp": None},
            h.issuer.key, algorithm="RS256", headers={"kid": h.issuer.kid}),  # type: ignore[union-attr]
    }


@pytest.mark.parametrize("case", ["missing", "empty", "garbage", "not bearer", "expired", "wrong audience",
                                  "wrong issuer", "wrong service url", "unknown signing key",
                                  "signed by another key under our kid", "unsigned", "no expiry",
                                  "an expiry that is no number"])
async def test_invalid_tokens_are_refused_with_nothing_recorded(teams_secured: TeamsHarness, case: str) -> None:
    h = teams_secured
    before = len(await h.events())
    for name in ("message_personal", "invoke_adaptive_card_action", "installation_update_add"):
        activity = h.activity(name, ALICE, text="request staging-admin for 2h")
        header = _bad_headers(h, activity["serviceUrl"])[case]
        status, _ = await h.post(activity, auth=header, no_auth=header is None)
        assert status == 401, (case, name)
    await h.channel.notifier.idle()
    await _nothing_recorded(h, before)


async def test_emulator_mode_only_listens_to_this_machine(teams: TeamsHarness) -> None:
    # without an app id, activities are not authenticated: the route only serves loopback peers
    status, _ = await teams.say(ALICE, "help")
    assert status == 200



async def test_turns_reuse_one_connector_client_and_fetch_no_user_token(teams_secured: TeamsHarness) -> None:
    from microsoft_agents.hosting.core import ClaimsIdentity

    h = teams_secured
    for _ in range(3):
        status, _ = await h.say(ALICE, "help")
        assert status == 200
    assert len(h.connector.of("reply", conversation_id(ALICE))) == 3
    # one token, for the Bot Connector; none for the user-token service (the bot signs nobody in)
    assert [c.body["scope"] for c in h.connector.received("POST", "/token")] == ["https://api.botframework.com/.default"]
    assert h.channel is not None
    clients = h.channel.clients
    assert len(clients.cache._items) == 1  # one connector client for the one service URL
    ours = ClaimsIdentity({"aud": APP_ID, "appid": APP_ID})
    first = await clients.create_user_token_client(None, ours)  # type: ignore[arg-type]
    assert await clients.create_user_token_client(None, ClaimsIdentity({"aud": APP_ID, "appid": APP_ID})) is first  # type: ignore[arg-type]


@pytest.mark.parametrize(("app_type", "tenant_path"), [("MultiTenant", "botframework.com"),
                                                       ("SingleTenant", "4f0c1e2d-aaaa-4bbb-8ccc-0123456789ab")])
async def test_outbound_tokens_come_from_the_tenant_the_app_type_names(
        app_type: str, tenant_path: str, sqlite_url: str, tmp_path: Path, connector: BotConnector,
        issuer: OpenIdIssuer) -> None:
    settings = _settings(sqlite_url, tmp_path, app_id=APP_ID, app_password="secret", app_type=app_type,
                         app_tenant_id="4f0c1e2d-aaaa-4bbb-8ccc-0123456789ab", authority_url=connector.url,
                         teams_tenants=TENANT,
                         env={"ACCESSBOT_TEAMS_OPENID_METADATA_URL": issuer.metadata_url})
    async for h in _serve(settings, connector, issuer):
        status, _ = await h.say(ALICE, "help")
        assert status == 200 and len(h.connector.of("reply", conversation_id(ALICE))) == 1
        [token_call] = h.connector.received("POST", "/oauth2/v2.0/token")
        assert token_call.path == f"/{tenant_path}/oauth2/v2.0/token"
        assert token_call.body["client_id"] == APP_ID and token_call.body["client_secret"] == "secret"


def test_single_tenant_without_its_tenant_is_refused_at_start(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/x.db", app_id=APP_ID, app_password="secret",
                        app_type="SingleTenant")
    with pytest.raises(SystemExit) as stopped:
        build_authentication(settings)
    assert "MicrosoftAppTenantId" in str(stopped.value)


@pytest.mark.parametrize(("app_type", "auth_type", "tenant"), [
    ("MultiTenant", "ClientSecret", "botframework.com"),
    ("SingleTenant", "ClientSecret", "4f0c1e2d-aaaa-4bbb-8ccc-0123456789ab"),
    ("UserAssignedMSI", "UserManagedIdentity", "4f0c1e2d-aaaa-4bbb-8ccc-0123456789ab")])
def test_microsofts_login_is_reached_through_the_sdks_msal_connection_manager(app_type: str, auth_type: str,
                                                                               tenant: str) -> None:
    from microsoft_agents.authentication.msal import MsalAuth, MsalConnectionManager

    settings = Settings(app_id=APP_ID, app_password="secret", app_type=app_type,
                        app_tenant_id="4f0c1e2d-aaaa-4bbb-8ccc-0123456789ab")
    config, _, connections = build_authentication(settings)
    assert isinstance(connections, MsalConnectionManager)
    assert isinstance(connections.get_default_connection(), MsalAuth)
    assert (config.AUTH_TYPE.value, config.CLIENT_ID, config.TENANT_ID) == (auth_type, APP_ID, tenant)
    if auth_type == "ClientSecret":
        assert (config.CLIENT_SECRET, config.AUTHORITY) == ("secret", f"https://login.microsoftonline.com/{tenant}")
    # inbound: only the Bot Framework channel's tokens, the issuer checked (the SDK's default leaves it unchecked)
    assert config.VALIDATE_ISSUER and config.ISSUERS == ["https://api.botframework.com"]


async def test_an_accepted_token_is_validated_once_and_its_bindings_are_checked_for_every_activity(
        teams_secured: TeamsHarness) -> None:
    """The Bot Connector sends one token with every activity for its lifetime: the SDK validates it once;
    the service URL it is bound to and the tenant are still checked for each activity."""
    h = teams_secured
    assert h.channel is not None and h.issuer is not None
    inbound = h.channel.inbound
    token = h.issuer.token(audience=APP_ID, service_url=h.connector.url)
    before = inbound.validations
    for _ in range(3):
        status, _ = await h.post(h.activity("message_personal", ALICE, text="help"), token=token)
        assert status == 200
    assert inbound.validations == before + 1

    elsewhere = h.activity("message_personal", ALICE, text="request staging-admin for 2h",
                           serviceUrl="https://elsewhere.example.com/")
    assert (await h.post(elsewhere, token=token))[0] == 401  # the kept token names another service URL
    foreign = h.activity("message_personal", ALICE, text="request staging-admin for 2h")
    foreign["conversation"]["tenantId"] = "another-tenant"
    assert (await h.post(foreign, token=token))[0] == 403
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    status, _ = await h.post(h.activity("message_personal", ALICE, text="help"), token=f"{head}.{payload}.{flipped}")
    assert status == 401  # another text: validated, and refused
    assert inbound.validations == before + 2
    await h.idle()
    async with h.app.store.read() as repo:
        assert await repo.find_requests(states=["pending"]) == []
