"""InboundAuth's memo of accepted tokens: a kept token is never honoured where the SDK alone would refuse
it, and a token the SDK accepts does not fail differently because it is kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import jwt
import jwt.jwk_set_cache
import jwt.jwks_client
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.settings import Settings
from bot.teams.auth import InboundAuth, Unauthorized, build_authentication
from tests.teams.conftest import APP_ID, TENANT
from tests.teams.standins import OpenIdIssuer

URL = "https://smba.example.com/"


def _inbound(issuer: OpenIdIssuer, tmp_path: Path, now: list[float], size: int = 1024) -> InboundAuth:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/x.db", app_id=APP_ID, app_password="secret",
                        teams_tenants=TENANT, env={"ACCESSBOT_TEAMS_OPENID_METADATA_URL": issuer.metadata_url})
    config, _, _ = build_authentication(settings)
    return InboundAuth(config, metadata_url=issuer.metadata_url, size=size, clock=lambda: now[0])


class Clocks:
    """The memo's clock and PyJWT's key-set clock (third-party, patched), moved together."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = [time.time()]
        self.mono = [time.monotonic()]
        fake = SimpleNamespace(monotonic=lambda: self.mono[0])
        monkeypatch.setattr(jwt.jwk_set_cache, "time", fake)
        monkeypatch.setattr(jwt.jwks_client, "time", fake)

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds
        self.mono[0] += seconds


@pytest.fixture
def own_issuer() -> Iterator[OpenIdIssuer]:
    """An issuer of this test's own: its key is rotated, or it is stopped."""
    issuer = OpenIdIssuer().start()
    try:
        yield issuer
    finally:
        issuer.stop()


async def test_a_withdrawn_key_stops_opening_the_door_when_the_sdk_would_stop(
        own_issuer: OpenIdIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key the channel withdraws stops opening the door on the same schedule as without the memo. The
    SDK's key client keeps a key set 300 s from when it fetched it; a token validated 299 s after that
    fetch is kept only while that same set is, not 300 s more."""
    issuer, clocks = own_issuer, Clocks(monkeypatch)
    now, advance = clocks.now, clocks.advance
    memo = _inbound(issuer, tmp_path, now)
    sdk_alone = _inbound(issuer, tmp_path, now, size=0)  # never keeps: the SDK for every activity
    activity = {"serviceUrl": URL}
    first = issuer.token(audience=APP_ID, service_url=URL)
    await memo.authenticate(f"Bearer {first}", activity)  # both fetch the key set now
    await sdk_alone.authenticate(f"Bearer {first}", activity)

    advance(290)
    late = issuer.token(audience=APP_ID, service_url=URL, expires_in=3601)  # a new token (new text), same key
    await memo.authenticate(f"Bearer {late}", activity)
    await sdk_alone.authenticate(f"Bearer {late}", activity)

    issuer.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the channel withdraws
    issuer.kid = "standin-key-2"                                                   # the old key
    advance(20)  # 310 s after the key set was fetched: the SDK reads it again and no longer finds the key
    with pytest.raises(Unauthorized):
        await sdk_alone.authenticate(f"Bearer {late}", activity)
    with pytest.raises(Unauthorized):  # not honoured until 590 s after the fetch
        await memo.authenticate(f"Bearer {late}", activity)


async def test_when_the_key_endpoint_is_down_a_kept_token_lasts_as_long_as_the_sdks_key_set(
        own_issuer: OpenIdIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The channel's key endpoint (the identity provider of the inbound side) goes down: the SDK alone
    goes on with the key set it holds until it expires, then refuses everyone; the memo does the same,
    never longer."""
    issuer, clocks = own_issuer, Clocks(monkeypatch)
    memo = _inbound(issuer, tmp_path, clocks.now)
    sdk_alone = _inbound(issuer, tmp_path, clocks.now, size=0)
    activity = {"serviceUrl": URL}
    for inbound in (memo, sdk_alone):  # both fetch the key set now
        await inbound.authenticate(f"Bearer {issuer.token(audience=APP_ID, service_url=URL)}", activity)
    clocks.advance(250)
    # another text (not the first tokens'), validated late in the key set's life
    token = issuer.token(audience=APP_ID, service_url=URL, expires_in=3601)
    for inbound in (memo, sdk_alone):
        await inbound.authenticate(f"Bearer {token}", activity)
    issuer.stop()  # metadata and keys unreachable from now on

    clocks.advance(40)  # the key set is still fresh: both accept, the memo without validating again
    for inbound in (memo, sdk_alone):
        assert (await inbound.authenticate(f"Bearer {token}", activity)).get_claim_value("aud") == APP_ID
    assert memo.validations == 2

    clocks.advance(20)  # 310 s: the key set expired and cannot be fetched again
    for inbound in (sdk_alone, memo):  # the memo kept the token only 60 s, not the 300 s it might
        with pytest.raises(Unauthorized):
            await inbound.authenticate(f"Bearer {token}", activity)
    assert memo.validations == 3


async def test_a_token_the_sdk_accepts_with_a_huge_integer_exp_is_not_a_crash(
        issuer: OpenIdIssuer, tmp_path: Path) -> None:
    """PyJWT takes an ``exp`` of any size: keeping it must not overflow a float (the route would answer
    500, neither the identity nor a 401)."""
    inbound = _inbound(issuer, tmp_path, [time.time()])
    sdk_alone = _inbound(issuer, tmp_path, [time.time()], size=0)
    now = int(time.time())
    token = jwt.encode({"iss": issuer.ISSUER, "aud": APP_ID, "serviceurl": URL, "nbf": now - 60, "iat": now - 60,
                        "exp": 10 ** 400}, issuer.key, algorithm="RS256", headers={"kid": issuer.kid})
    identity = await sdk_alone.authenticate(f"Bearer {token}", {"serviceUrl": URL})
    assert identity.get_claim_value("aud") == APP_ID  # the SDK accepts it
    identity = await inbound.authenticate(f"Bearer {token}", {"serviceUrl": URL})
    assert identity.get_claim_value("aud") == APP_ID


async def test_a_kept_token_is_validated_again_at_its_expiry_or_after_five_minutes(
        issuer: OpenIdIssuer, tmp_path: Path) -> None:
    now = [time.time()]
    inbound = _inbound(issuer, tmp_path, now)
    url = "https://smba.example.com/"
    activity = {"serviceUrl": url}
    short = issuer.token(audience=APP_ID, service_url=url, expires_in=120)
    long = issuer.token(audience=APP_ID, service_url=url, expires_in=3600)
    for token in (short, long, short, long):
        identity = await inbound.authenticate(f"Bearer {token}", activity)
        assert identity.get_claim_value("aud") == APP_ID and identity.security_token == token
    assert inbound.validations == 2

    now[0] += 121  # past the short token's exp (the SDK still honours it within its leeway)
    await inbound.authenticate(f"Bearer {short}", activity)
    await inbound.authenticate(f"Bearer {long}", activity)
    assert inbound.validations == 3
    now[0] += 300  # the long one was kept five minutes at most: the key set may have changed since
    await inbound.authenticate(f"Bearer {long}", activity)
    assert inbound.validations == 4

    # a token past its exp, accepted only within the leeway: never kept; one without exp: refused, never kept
    stale = issuer.token(audience=APP_ID, service_url=url, expires_in=-10)
    claims = jwt.decode(long, options={"verify_signature": False})
    del claims["exp"]
    timeless = jwt.encode(claims, issuer.key, algorithm="RS256", headers={"kid": issuer.kid})
    now[0] = time.time()
    for token in (stale, timeless, stale, timeless):
        if token is timeless:
            with pytest.raises(Unauthorized):
                await inbound.authenticate(f"Bearer {token}", activity)
        else:
            await inbound.authenticate(f"Bearer {token}", activity)
    assert inbound.validations == 8


async def test_the_kept_tokens_are_bounded_and_a_refused_token_is_never_kept(
        issuer: OpenIdIssuer, tmp_path: Path) -> None:
    inbound = _inbound(issuer, tmp_path, [time.time()], size=2)
    activity = {"serviceUrl": "https://smba.example.com/"}
    tokens = [issuer.token(audience=APP_ID, service_url=activity["serviceUrl"], expires_in=600 + i) for i in range(3)]
    for token in tokens:
        await inbound.authenticate(f"Bearer {token}", activity)
    await inbound.authenticate(f"Bearer {tokens[2]}", activity)
    await inbound.authenticate(f"Bearer {tokens[1]}", activity)
    assert inbound.validations == 3
    await inbound.authenticate(f"Bearer {tokens[0]}", activity)  # the least recently used went first
    assert inbound.validations == 4
    other = issuer.token(audience="some-other-bot", service_url=activity["serviceUrl"])
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await inbound.authenticate(f"Bearer {other}", activity)
    assert inbound.validations == 6
