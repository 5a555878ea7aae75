"""A removal at Graph whose cached object id is stale.

The Entra client keeps each address's object id for the life of the process. When the account is re-created under
the same address and the new account is put in the group (by another replica, whose cache is fresh, or by hand),
this process's removal deletes the old id's membership: Graph answers 404, which was taken as "not a member", and
the removal was recorded done while the new account stayed in the group. A removal answered 404 now looks at the
group's own list for a member with the address and removes it, one call or through ``$batch`` alike (the Okta
client does the same: tests/providers/test_okta_stale_id.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.providers.conftest import EntraEnv
    from tests.standins.graph import GraphStandIn

ANA, BO = "ana@example.com", "bo@example.com"


@pytest.mark.parametrize("how", ["single", "batch"])
async def test_a_removal_with_a_stale_id_removes_the_account_now_carrying_the_address(
        entra: EntraEnv, graph: GraphStandIn, how: str) -> None:
    ref = graph.add_group("g")
    for email in (ANA, BO):
        graph.add_user(email)
        await entra.provider.add_member(ref, email)  # the ids are cached
    old = graph.user_id(ANA)
    graph.delete_user(ANA)
    graph.add_user(ANA)  # re-created: a new object id
    assert graph.user_id(ANA) != old
    graph.add_member(ref, ANA)  # put in the group by another replica
    assert graph.member_emails(ref) == [ANA, BO]

    if how == "single":
        await entra.provider.remove_member(ref, ANA)
    else:
        assert await entra.provider.apply_batch([("remove", ref, ANA), ("remove", ref, BO)]) == [None, None]
    assert ANA not in graph.member_emails(ref)


async def test_a_removal_of_someone_not_in_the_group_is_done(entra: EntraEnv, graph: GraphStandIn) -> None:
    ref = graph.add_group("g")
    graph.add_user(ANA)
    graph.add_user(BO)
    await entra.provider.add_member(ref, BO)
    await entra.provider.get_user(ANA)
    await entra.provider.remove_member(ref, ANA)  # 404: not a member, and nobody else carries the address
    assert await entra.provider.apply_batch([("remove", ref, ANA), ("remove", ref, BO)]) == [None, None]
    assert graph.member_emails(ref) == []


async def test_a_batch_add_with_a_stale_id_adds_the_account_now_carrying_the_address(entra: EntraEnv,
                                                                                     graph: GraphStandIn) -> None:
    """An add through ``$batch`` with the old id is answered 404 (no such object): as a single add does, the id is
    looked up again and the add made for it, instead of the grant failing as refused."""
    ref = graph.add_group("g")
    for email in (ANA, BO):
        graph.add_user(email)
        await entra.provider.get_user(email)  # the ids are cached
    graph.delete_user(ANA)
    graph.add_user(ANA)  # re-created: a new object id
    assert await entra.provider.apply_batch([("add", ref, ANA), ("add", ref, BO)]) == [None, None]
    assert graph.member_emails(ref) == [ANA, BO]
