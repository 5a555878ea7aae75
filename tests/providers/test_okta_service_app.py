"""Okta through an OAuth 2.0 service app: client credentials with ``private_key_jwt``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers.ports import ProviderError
from provisioning.okta import OktaProvider
from provisioning.okta_auth import ServiceApp
from tests.providers.conftest import FAST, OktaServiceAppEnv, service_app_key
from tests.standins.okta import OktaStandIn
from tests.support import ROOT, copy_examples

TOKEN_PATH = "/oauth2/v1/token"


@pytest.fixture
async def app_env(okta: OktaStandIn):  # type: ignore[no-untyped-def]
    env = OktaServiceAppEnv(okta)
    yield env
    await env.provider.close()


def _provider(okta: OktaStandIn, private_pem: str, **kw: object) -> OktaProvider:
    credentials = ServiceApp(org_url=okta.url, client_id=OktaServiceAppEnv.CLIENT_ID, private_key=private_pem, **kw)
    return OktaProvider(org_url=okta.url, credentials=credentials, **FAST)  # type: ignore[arg-type]


async def _refused(provider: OktaProvider) -> ProviderError:
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.get_user("ana@example.com")
    finally:
        await provider.close()
    return caught.value


async def test_one_access_token_serves_many_calls(app_env: OktaServiceAppEnv, okta: OktaStandIn) -> None:
    ref = okta.add_group("g")
    okta.add_user("ana@example.com", department="Engineering")
    provider = app_env.provider
    assert (await provider.get_user("ana@example.com")).department == "Engineering"
    await provider.add_member(ref, "ana@example.com")
    assert await provider.list_members(ref) == ["ana@example.com"]
    await provider.remove_member(ref, "ana@example.com")
    [token_call] = okta.received("POST", TOKEN_PATH)
    api_calls = [r for r in okta.received() if r.path.startswith("/api/v1/")]
    assert len(api_calls) >= 4
    assert {r.headers["Authorization"].split()[0] for r in api_calls} == {"Bearer"}
    # the assertion: signed with the app's key, for the token endpoint, short-lived, with its kid
    assert token_call.body["grant_type"] == "client_credentials"
    assert set(token_call.body["scope"].split()) == {"okta.users.read", "okta.groups.manage"}
    assertion = token_call.body["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    claims = jwt.decode(assertion, service_app_key()[1], algorithms=["RS256"], audience=okta.url + TOKEN_PATH)
    assert header["kid"] == "accessbot-key-1"
    assert claims["iss"] == claims["sub"] == OktaServiceAppEnv.CLIENT_ID and claims["exp"] - claims["iat"] <= 300


async def test_a_revoked_token_is_replaced_once(app_env: OktaServiceAppEnv, okta: OktaStandIn) -> None:
    okta.add_user("ana@example.com")
    await app_env.provider.get_user("ana@example.com")
    okta.revoke_access_tokens()
    assert (await app_env.provider.get_user("ana@example.com")) is not None
    assert len(okta.received("POST", TOKEN_PATH)) == 2
    log = [(r.path, r.status) for r in okta.received()]
    second_token = max(i for i, (path, _) in enumerate(log) if path == TOKEN_PATH)
    assert log[second_token - 1][1] == 401  # the old token refused, then a new one
    assert all(status == 200 for _, status in log[second_token + 1:])


async def test_a_key_okta_does_not_know_is_a_permanent_error(okta: OktaStandIn) -> None:
    okta.add_service_app(OktaServiceAppEnv.CLIENT_ID, service_app_key()[1])
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    caught = await _refused(_provider(okta, other))
    assert caught.transient is False and caught.status == 401
    assert "invalid_client" in str(caught) and "signature" in str(caught).lower()
    assert len(okta.received("POST", TOKEN_PATH)) == 1  # not retried: it would be refused again
    assert [r for r in okta.received() if r.path.startswith("/api/v1/")] == []


async def test_a_scope_the_app_was_not_granted_is_named(okta: OktaStandIn) -> None:
    okta.add_service_app(OktaServiceAppEnv.CLIENT_ID, service_app_key()[1], scopes=("okta.users.read",))
    caught = await _refused(_provider(okta, service_app_key()[0]))
    assert caught.transient is False and "invalid_scope" in str(caught)
    assert "okta.groups.manage" in str(caught)


async def test_a_token_endpoint_that_is_down_is_retried(app_env: OktaServiceAppEnv, okta: OktaStandIn) -> None:
    okta.add_user("ana@example.com")
    okta.fail_next(1, status=503, retry_after=0)  # the first request of the test: the token call
    assert (await app_env.provider.get_user("ana@example.com")) is not None
    assert [r.status for r in okta.received("POST", TOKEN_PATH)] == [503, 200]


def test_the_cli_provisions_at_okta_through_the_service_app(okta: OktaStandIn, tmp_path: Path) -> None:
    """The real entry point: settings from the environment, a chat that approves into an Okta group."""
    private_pem, public_pem = service_app_key()
    okta.add_service_app("0oa-cli", public_pem)
    gid = okta.add_group("okta-ops")
    for email in ("bob@example.com", "mark.mgr@example.com"):
        okta.add_user(email)
    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text() + f"""
  - id: okta-ops
    title: Operations group at Okta
    owner: pat.lead@example.com
    risk: low
    provider: okta
    group: {gid}
    eligible:
      - department: Engineering
    duration: {{default: 1h, max: 4h}}
    approval: [manager]
""")
    key = tmp_path / "okta.pem"
    key.write_text(private_pem)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    env |= {"ACCESSBOT_OKTA_URL": okta.url, "ACCESSBOT_OKTA_CLIENT_ID": "0oa-cli",
            "ACCESSBOT_OKTA_PRIVATE_KEY": str(key), "ACCESSBOT_IDENTITY": "directory",
            "ACCESSBOT_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db", "ACCESSBOT_POLICY": str(files.policy),
            "ACCESSBOT_DIRECTORY": str(files.directory)}

    def chat(email: str, line: str) -> str:
        done = subprocess.run([sys.executable, "-m", "bot.cli", "chat", "--as", email], input=line + "\n",
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done.stdout

    chat("bob@example.com", "request okta-ops for 1h")
    out = chat("mark.mgr@example.com", "approve REQ-1")
    assert "Approved REQ-1" in out
    assert okta.member_emails(gid) == ["bob@example.com"]
    assert okta.received("POST", TOKEN_PATH) and all(
        r.headers["Authorization"].startswith("Bearer ") for r in okta.received() if r.path.startswith("/api/v1/"))
    # a key file that is not there is a clear start-up error, not a traceback
    env["ACCESSBOT_OKTA_PRIVATE_KEY"] = str(tmp_path / "missing.pem")
    done = subprocess.run([sys.executable, "-m", "bot.cli", "chat", "--as", "bob@example.com"], input="mine\n",
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "ACCESSBOT_OKTA_PRIVATE_KEY" in done.stderr and "missing.pem" in done.stderr
