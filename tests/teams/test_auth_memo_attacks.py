"""Attacks on the memo of accepted tokens (``InboundAuth``, bot/teams/auth.py) and on the route's checks of
each activity when its token is kept: a kept token is honoured exactly when the SDK alone would honour it,
for exactly the activity it was issued for."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.teams.auth import InboundAuth, Unauthorized
from tests.teams.conftest import APP_ID, TeamsHarness
from tests.teams.standins import OpenIdIssuer
from tests.teams.test_auth_memo import Clocks, _inbound, own_issuer  # noqa: F401

URL = "https://smba.example.com/"
OTHER_URL = "https://evil.example.com/"
FOREIGN = "0badc0de-0000-4000-8000-000000000bad"


async def _accepts(inbound: InboundAuth, header: str | None, activity: dict) -> bool:
    try:
        await inbound.authenticate(header, activity)
        return True
    except Unauthorized:
        return False


async def test_replay_after_exp_and_leeway_is_refused(issuer: OpenIdIssuer, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    inbound = _inbound(issuer, tmp_path, now)
    token = issuer.token(audience=APP_ID, service_url=URL, expires_in=30)
    assert await _accepts(inbound, f"Bearer {token}", {"serviceUrl": URL})
    # the memo's clock and the SDK's (PyJWT uses time.time via datetime.now) both move past exp + leeway
    later = now[0] + 30 + 301
    now[0] = later
    import datetime as _dt

    class _Later(_dt.datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return _dt.datetime.fromtimestamp(later, tz)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _Later)
    assert not await _accepts(inbound, f"Bearer {token}", {"serviceUrl": URL})


async def test_memoized_token_does_not_carry_another_service_url(issuer: OpenIdIssuer, tmp_path: Path) -> None:
    inbound = _inbound(issuer, tmp_path, [time.time()])
    token = issuer.token(audience=APP_ID, service_url=URL)
    for _ in range(3):
        assert await _accepts(inbound, f"Bearer {token}", {"serviceUrl": URL})
    for bad in (OTHER_URL, URL.rstrip("/"), URL.upper(), URL + " ", None, 5, [URL]):
        assert not await _accepts(inbound, f"Bearer {token}", {"serviceUrl": bad}), bad
    assert inbound.validations == 1  # it was a memo hit, and still refused


async def test_other_audience_token_never_rides_on_the_memo(issuer: OpenIdIssuer, tmp_path: Path) -> None:
    inbound = _inbound(issuer, tmp_path, [time.time()])
    good = issuer.token(audience=APP_ID, service_url=URL)
    assert await _accepts(inbound, f"Bearer {good}", {"serviceUrl": URL})
    other = issuer.token(audience="some-other-bot", service_url=URL)
    # same header and signature as the good token, other claims
    h, _, s = good.split(".")
    _, p2, _ = other.split(".")
    for bad in (other, f"{h}.{p2}.{s}", good + "x", good[:-1], good.lower()):
        assert not await _accepts(inbound, f"Bearer {bad}", {"serviceUrl": URL})


async def test_withdrawn_key_refetched_early_stops_the_memo(own_issuer: OpenIdIssuer, tmp_path: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The channel withdraws a key; a token with the new kid makes the SDK fetch the set again long before it
    expires: the old key's kept token must stop at once, as for the SDK alone."""
    clocks = Clocks(monkeypatch)
    memo = _inbound(own_issuer, tmp_path, clocks.now)
    sdk_alone = _inbound(own_issuer, tmp_path, clocks.now, size=0)
    old = own_issuer.token(audience=APP_ID, service_url=URL)
    for inbound in (memo, sdk_alone):
        assert await _accepts(inbound, f"Bearer {old}", {"serviceUrl": URL})
    clocks.advance(120)  # past PyJWT's refresh cooldown, well inside the set's life
    own_issuer.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    own_issuer.kid = "standin-key-2"
    new = own_issuer.token(audience=APP_ID, service_url=URL)
    for inbound in (memo, sdk_alone):
        assert await _accepts(inbound, f"Bearer {new}", {"serviceUrl": URL})  # kid miss: the set is fetched again
    assert not await _accepts(sdk_alone, f"Bearer {old}", {"serviceUrl": URL})
    assert not await _accepts(memo, f"Bearer {old}", {"serviceUrl": URL})


async def test_text_variants_are_honoured_exactly_as_by_the_sdk(issuer: OpenIdIssuer, tmp_path: Path) -> None:
    memo = _inbound(issuer, tmp_path, [time.time()])
    sdk_alone = _inbound(issuer, tmp_path, [time.time()], size=0)
    token = issuer.token(audience=APP_ID, service_url=URL)
    assert await _accepts(memo, f"Bearer {token}", {"serviceUrl": URL})
    h, p, s = token.split(".")
    variants = [f"Bearer  {token}", f"Bearer {token} ", f"\tBearer {token}", f"bearer {token}", f"BEARER {token}",
                f"Bearer {token}=", f"Bearer {token}==", f"Bearer {token}\t", f"Bearer {token}\x00",
                f"Bearer {token.upper()}", f"Bearer {token.swapcase()}", f"Bearer {h}=.{p}.{s}",
                f"Bearer {h}.{p}.{s[:10]}!!!!{s[10:]}", f"Bearer {h}.{p}.{s[:10]}\t\t\t\t{s[10:]}",
                f"Bearer {token}, Bearer {token}", f"Bearer {token},{token}", f"Bearer {token} {token}",
                f"Bearer\t{token}", f"Bearer{token}", token, f"Basic {token}", "Bearer", "bearer ", "", None,
                f"Bearer {token}.", f"Bearer .{token}"]
    for header in variants:
        assert await _accepts(memo, header, {"serviceUrl": URL}) == await _accepts(sdk_alone, header,
                                                                                  {"serviceUrl": URL}), header


async def test_filling_the_memo_lets_no_bad_token_in(issuer: OpenIdIssuer, tmp_path: Path) -> None:
    inbound = _inbound(issuer, tmp_path, [time.time()], size=1024)
    activity = {"serviceUrl": URL}
    claims = jwt.decode(issuer.token(audience=APP_ID, service_url=URL), options={"verify_signature": False})
    tokens = []
    for i in range(1030):
        tokens.append(jwt.encode({**claims, "jti": str(i)}, issuer.key, algorithm="RS256",
                                 headers={"kid": issuer.kid}))
    for t in tokens:
        assert await _accepts(inbound, f"Bearer {t}", activity)
    assert len(inbound._accepted) == 1024
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [jwt.encode({**claims, "jti": str(i)}, other_key, algorithm="RS256", headers={"kid": issuer.kid})
              for i in range(5)]
    for t in forged:
        assert not await _accepts(inbound, f"Bearer {t}", activity)


async def test_tenant_is_checked_per_activity_with_a_memoized_token(teams_secured: TeamsHarness) -> None:
    h = teams_secured
    assert h.issuer is not None
    act = h.activity("message_personal", "alice@example.com", text="help")
    token = h.issuer.token(audience=APP_ID, service_url=act["serviceUrl"])
    status, _ = await h.post(act, token=token)
    assert status == 200
    await h.idle()
    validations = h.channel.inbound.validations
    foreign = h.activity("message_personal", "alice@example.com", text="help")
    foreign["conversation"]["tenantId"] = FOREIGN
    foreign["channelData"] = {"tenant": {"id": FOREIGN}}
    status, _ = await h.post(foreign, token=token)
    assert status == 403
    mixed = h.activity("message_personal", "alice@example.com", text="help")
    mixed["channelData"] = {"tenant": {"id": FOREIGN}}
    status, _ = await h.post(mixed, token=token)
    assert status == 403
    none = h.activity("message_personal", "alice@example.com", text="help")
    none["conversation"].pop("tenantId")
    none.pop("channelData", None)
    status, _ = await h.post(none, token=token)
    assert status == 403
    moved = h.activity("message_personal", "alice@example.com", text="help", serviceUrl=OTHER_URL)
    status, _ = await h.post(moved, token=token)
    assert status == 401
    assert h.channel.inbound.validations == validations  # every refusal above came with a memo hit
    await h.idle()
