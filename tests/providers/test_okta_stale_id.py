"""Okta: a removal by a remembered user id that no longer exists looks the person up again (SPEC §3.4).

``DELETE /groups/{gid}/users/{uid}`` answers 404 for a user id Okta no longer knows: that says nothing about the
account now carrying the email (re-created since, a rehire), which may be in the group. Taking the 404 for
"not a member" would record a removal that did not happen.
"""

from __future__ import annotations

from tests.providers.conftest import OktaEnv
from tests.standins.okta import OktaStandIn


async def test_a_re_created_user_is_removed_by_the_new_id(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    ref = okta.add_group("g")
    okta.add_user("ana@example.com")
    await okta_provider_env.provider.add_member(ref, "ana@example.com")  # the provider remembers her id
    okta.delete_user("ana@example.com")
    okta.add_user("ana@example.com")
    okta.add_member(ref, "ana@example.com")  # the new account, added outside the bot
    await okta_provider_env.provider.remove_member(ref, "ana@example.com")
    assert okta.member_emails(ref) == []


async def test_a_deleted_user_is_not_a_member(okta_provider_env: OktaEnv, okta: OktaStandIn) -> None:
    ref = okta.add_group("g")
    okta.add_user("ana@example.com")
    await okta_provider_env.provider.add_member(ref, "ana@example.com")
    okta.delete_user("ana@example.com")
    await okta_provider_env.provider.remove_member(ref, "ana@example.com")  # gone: nothing to remove, no error
    assert okta.member_emails(ref) == []
