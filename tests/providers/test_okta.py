"""Okta-specific behaviour: SSWS, rate-limit pacing, Link paging, statuses and managers."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from handlers.ports import ProviderError
from provisioning.okta import OktaProvider

if TYPE_CHECKING:
    from tests.providers.conftest import OktaEnv
    from tests.standins.okta import OktaStandIn


async def test_calls_carry_the_api_token(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    okta.add_user("ana@example.com")
    await okta_provider_env.provider.get_user("ana@example.com")
    assert {r.headers.get("Authorization") for r in okta.received()} == {f"SSWS {okta.token}"}


async def test_a_wrong_token_is_a_permanent_error(okta: OktaStandIn) -> None:
    provider = OktaProvider(org_url=okta.url + "/", token="nope", max_attempts=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.get_user("ana@example.com")
    finally:
        await provider.close()
    assert caught.value.transient is False and caught.value.status == 401
    assert "E0000011" in str(caught.value) and caught.value.correlation_id


async def test_calls_wait_for_the_rate_limit_reset(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    ref = okta.add_group("g")
    okta.add_user("ana@example.com")
    okta.add_member(ref, "ana@example.com")
    okta.set_rate_limit(3, window=0.4)
    started = time.monotonic()
    for _ in range(7):
        assert await okta_provider_env.provider.list_members(ref) == ["ana@example.com"]
    assert time.monotonic() - started >= 0.7  # three windows
    assert 429 not in okta.statuses()


async def test_a_429_waits_until_the_reset(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    ref = okta.add_group("g")
    okta.fail_next(1, status=429, retry_after=0.4)
    started = time.monotonic()
    assert await okta_provider_env.provider.list_members(ref) == []
    assert time.monotonic() - started >= 0.35
    assert okta.statuses() == [429, 200]


async def test_members_follow_link_headers(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    ref = okta.add_group("g")
    emails = [f"user{i}@example.com" for i in range(5)]
    for email in emails:
        okta.add_user(email)
        okta.add_member(ref, email)
    assert await okta_provider_env.provider.list_members(ref) == emails
    pages = okta.received("GET", f"/groups/{ref}/users")
    assert len(pages) == 3
    assert pages[0].query == {"limit": "200"}
    assert [p.query.get("after") for p in pages[1:]] == [okta.user_id(emails[1]), okta.user_id(emails[3])]


@pytest.mark.parametrize(("status", "active"), [("ACTIVE", True), ("SUSPENDED", False), ("DEPROVISIONED", False),
                                                ("LOCKED_OUT", True), ("PASSWORD_EXPIRED", True),
                                                ("PROVISIONED", True), ("STAGED", True)])
async def test_status_decides_active(okta_provider_env: OktaEnv, status: str, active: bool) -> None:
    okta_provider_env.seed_user("ana@example.com", status=status)
    person = await okta_provider_env.provider.get_user("ana@example.com")
    assert person is not None and person.active is active


async def test_found_by_login_or_by_email(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    okta.add_user("ana.lima@example.com", login="alima")
    by_email = await okta_provider_env.provider.get_user("Ana.Lima@example.com")
    by_login = await okta_provider_env.provider.get_user("alima")
    assert by_email == by_login and by_email is not None and by_email.email == "ana.lima@example.com"
    searches = [r.query.get("search") for r in okta.received("GET") if r.path == "/api/v1/users"]
    assert searches == ['profile.email eq "Ana.Lima@example.com"']


async def test_manager_by_id_else_by_login(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    okta.add_user("boss@example.com", login="bboss")
    okta.add_user("ana@example.com", manager="bboss")
    okta.add_user("bo@example.com", manager="bboss", manager_by_login=True)
    okta.add_user("cy@example.com", manager="Boss@Example.com", manager_by_login=True)
    for email in ("ana@example.com", "bo@example.com", "cy@example.com"):
        person = await okta_provider_env.provider.get_user(email)
        assert person is not None and person.manager == "boss@example.com", email


async def test_groups_are_read_by_id_never_by_name(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    ref = okta.add_group("Engineering")
    okta.add_group("Engineering")
    okta.add_user("ana@example.com")
    await okta_provider_env.provider.add_member(ref, "ana@example.com")
    assert okta.member_emails(ref) == ["ana@example.com"]
    person = await okta_provider_env.provider.get_user("ana@example.com")
    assert person is not None and person.groups == {ref}  # a name anyone could copy is not a membership
    with pytest.raises(ProviderError) as caught:
        await okta_provider_env.provider.add_member("00gmissing", "ana@example.com")
    assert caught.value.transient is False and caught.value.status == 404


async def test_a_re_created_user_is_added_by_the_new_id(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    ref = okta.add_group("g")
    okta.add_user("ana@example.com")
    await okta_provider_env.provider.add_member(ref, "ana@example.com")
    okta.delete_user("ana@example.com")
    okta.add_user("ana@example.com")
    await okta_provider_env.provider.add_member(ref, "ana@example.com")
    assert okta.member_emails(ref) == ["ana@example.com"]
