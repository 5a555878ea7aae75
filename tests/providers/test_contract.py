"""One contract for every identity provider (``Directory`` + ``GroupProvider``).

Parametrized by the ``provider_env`` fixture (``tests/providers/conftest.py``); tests that
inject faults skip for providers without a stand-in.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from handlers.ports import Directory, GroupProvider, OneMembersGroups, ProviderError

if TYPE_CHECKING:
    from tests.providers.conftest import ProviderEnv


def faults(env: ProviderEnv):  # type: ignore[no-untyped-def]
    if env.standin is None:
        pytest.skip("this provider has no remote side to fail")
    return env.standin


async def test_implements_both_ports(provider_env: ProviderEnv) -> None:
    assert isinstance(provider_env.provider, Directory)
    assert isinstance(provider_env.provider, GroupProvider)
    assert isinstance(provider_env.provider.name, str) and provider_env.provider.name


async def test_add_twice_makes_one_membership(provider_env: ProviderEnv) -> None:
    env = provider_env
    env.seed_user("ana@example.com")
    ref = env.seed_group("prod-db-readers")
    await env.provider.add_member(ref, "ana@example.com")
    await env.provider.add_member(ref, "ANA@example.com")
    assert env.members(ref) == ["ana@example.com"]
    assert await env.provider.list_members(ref) == ["ana@example.com"]


async def test_remove_twice_and_remove_non_member_succeed(provider_env: ProviderEnv) -> None:
    env = provider_env
    env.seed_user("ana@example.com")
    env.seed_user("bo@example.com")
    ref = env.seed_group("prod-db-readers")
    await env.provider.add_member(ref, "ana@example.com")
    await env.provider.remove_member(ref, "ana@example.com")
    await env.provider.remove_member(ref, "ana@example.com")
    await env.provider.remove_member(ref, "bo@example.com")
    await env.provider.remove_member(ref, "nobody@example.com")
    assert env.members(ref) == []


async def test_adding_an_unknown_user_is_a_permanent_error(provider_env: ProviderEnv) -> None:
    ref = provider_env.seed_group("prod-db-readers")
    with pytest.raises(ProviderError) as caught:
        await provider_env.provider.add_member(ref, "nobody@example.com")
    assert caught.value.transient is False


async def test_list_members_follows_every_page(provider_env: ProviderEnv) -> None:
    env = provider_env
    ref = env.seed_group("big-group")
    emails = [f"user{i}@example.com" for i in range(7)]
    for email in emails:
        env.seed_user(email, groups=[ref])
    assert sorted(await env.provider.list_members(ref)) == emails
    if env.standin is not None:
        assert len([r for r in env.standin.received("GET") if "/members" in r.path or "/users" in r.path]) >= 3


async def test_get_user_maps_attributes_manager_and_groups(provider_env: ProviderEnv) -> None:
    env = provider_env
    team = env.seed_group("Engineering")
    env.seed_user("boss@example.com", name="Bea Boss")
    env.seed_user("dana@example.com", name="Dana Dba", department="Data", title="DBA",
                  employment_type="Employee", manager="boss@example.com", groups=[team])
    person = await env.provider.get_user("Dana@Example.com")
    assert person is not None
    assert person.email == "dana@example.com"
    assert person.name == "Dana Dba"
    assert (person.department, person.title, person.employment_type) == ("Data", "DBA", "Employee")
    assert person.manager == "boss@example.com"
    assert person.active is True
    assert ({team, "Engineering"} if env.groups_by_name else {team}) <= set(person.groups)
    if not env.groups_by_name:
        assert "Engineering" not in person.groups
    boss = await env.provider.get_user("boss@example.com")
    assert boss is not None and boss.manager is None and boss.groups == frozenset()


async def test_unknown_user_is_none(provider_env: ProviderEnv) -> None:
    assert await provider_env.provider.get_user("ghost@example.com") is None


async def test_inactive_user_is_not_active(provider_env: ProviderEnv) -> None:
    provider_env.seed_user("gone@example.com", active=False)
    person = await provider_env.provider.get_user("gone@example.com")
    assert person is not None and person.active is False


async def test_throttling_is_retried_after_the_delay_asked_for(provider_env: ProviderEnv) -> None:
    env = provider_env
    env.seed_user("ana@example.com")
    ref = env.seed_group("g")
    server = faults(env)
    await env.provider.get_user("ana@example.com")  # warm caches (tokens, ids)
    server.fail_next(1, status=429, retry_after=0.3)
    started = time.monotonic()
    await env.provider.add_member(ref, "ana@example.com")
    assert time.monotonic() - started >= 0.25
    assert env.members(ref) == ["ana@example.com"]
    assert 429 in server.statuses()


@pytest.mark.parametrize("status", [503, 502, 504])
async def test_unavailable_is_retried(provider_env: ProviderEnv, status: int) -> None:
    env = provider_env
    env.seed_user("ana@example.com")
    ref = env.seed_group("g")
    faults(env).fail_next(1, status=status, retry_after=None)
    await env.provider.add_member(ref, "ana@example.com")
    assert env.members(ref) == ["ana@example.com"]


async def test_time_out_and_dropped_connection_are_retried(provider_env: ProviderEnv) -> None:
    env = provider_env
    env.seed_user("ana@example.com")
    server = faults(env)
    server.slow_next(1, seconds=1.0)
    server.drop_next(1)
    person = await env.provider.get_user("ana@example.com")
    assert person is not None and person.email == "ana@example.com"


@pytest.mark.parametrize("status", [400, 403])
async def test_permanent_refusal_is_not_transient_and_not_retried(provider_env: ProviderEnv, status: int) -> None:
    env = provider_env
    env.seed_user("ana@example.com")
    ref = env.seed_group("g")
    server = faults(env)
    await env.provider.get_user("ana@example.com")
    before = len(server.received())
    server.fail_next(1, status=status, retry_after=None)
    with pytest.raises(ProviderError) as caught:
        await env.provider.add_member(ref, "ana@example.com")
    assert caught.value.transient is False
    assert caught.value.status == status
    assert len(server.received()) - before == 1
    assert env.members(ref) == []


async def test_spent_attempts_give_a_transient_error_with_a_correlation_id(provider_env: ProviderEnv) -> None:
    env = provider_env
    env.seed_user("ana@example.com")
    ref = env.seed_group("g")
    server = faults(env)
    await env.provider.get_user("ana@example.com")
    server.fail_next(10, status=503, retry_after=0.01)
    with pytest.raises(ProviderError) as caught:
        await env.provider.add_member(ref, "ana@example.com")
    assert caught.value.transient is True
    assert caught.value.status == 503
    assert caught.value.correlation_id
    assert caught.value.retry_after == pytest.approx(0.01)


async def test_apply_batch_answers_each_operation_in_order(provider_env: ProviderEnv) -> None:
    env = provider_env
    apply_batch = getattr(env.provider, "apply_batch", None)
    if apply_batch is None:
        pytest.skip("this provider has no batch")
    env.seed_user("ana@example.com")
    env.seed_user("bo@example.com")
    ref = env.seed_group("g")
    results = await apply_batch([("add", ref, "ana@example.com"), ("add", ref, "ghost@example.com"),
                                 ("remove", ref, "bo@example.com"), ("add", ref, "bo@example.com"),
                                 ("add", ref, "ana@example.com")])
    assert [r is None for r in results] == [True, False, True, True, True]
    assert isinstance(results[1], ProviderError) and results[1].transient is False
    assert env.members(ref) == ["ana@example.com", "bo@example.com"]


async def test_member_of_asks_about_the_one_member(provider_env: ProviderEnv) -> None:
    """``member_of`` answers as the groups' listings would, for a member of several groups (more than a page of
    them), someone in none and someone unknown, also right after a change, without listing any group."""
    env = provider_env
    assert isinstance(env.provider, OneMembersGroups)
    refs = [env.seed_group(f"team-{i}") for i in range(5)]
    env.seed_user("ana@example.com", groups=refs[:3])
    env.seed_user("bo@example.com")
    for i in range(6):  # others in every group: listing one would take pages
        env.seed_user(f"crowd{i}@example.com", groups=refs)
    if env.standin is not None:
        with env.standin.lock:
            env.standin.requests.clear()
    assert await env.provider.member_of("Ana@Example.com", refs) == set(refs[:3])
    assert await env.provider.member_of("bo@example.com", refs) == set()
    assert await env.provider.member_of("ghost@example.com", refs) == set()
    await env.provider.remove_member(refs[0], "ana@example.com")
    await env.provider.add_member(refs[4], "ana@example.com")
    assert await env.provider.member_of("ana@example.com", refs) == {refs[1], refs[2], refs[4]}
    assert await env.provider.member_of("ana@example.com", refs[:2]) == {refs[1]}
    if env.standin is not None:
        listed = [r.path for r in env.standin.received("GET") if r.path.endswith(("/members", "/users"))
                  and "/groups/" in r.path]
        assert listed == []
