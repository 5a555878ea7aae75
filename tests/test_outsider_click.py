"""Someone outside a request's chain must not be able to change its state.

While the requester is not found at the identity provider (a renamed login, which SPEC §3.6 says must
not end anything at once), any person typing ``approve REQ-n`` — even one who may not see the request and
is told it does not exist — makes the pending request ``failed`` for good, recorded as ``step 1: unknown``.
"""

from __future__ import annotations

from tests.support import harness

BOB, CAROL = "bob@example.com", "carol@example.com"


def _rename_bob(data: dict) -> None:
    for user in data["users"]:
        if user["email"] == BOB:
            user["email"] = "bob.ortiz@example.com"


async def test_an_outsider_cannot_fail_a_pending_request(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "request staging-admin for 2h because deploy")
        assert r.ok and r.request.id == "REQ-1", r.text
        h.files.edit_directory(_rename_bob)  # Bob's login is renamed at the IdP (not yet a confirmed leaver)
        r = await h.say(CAROL, "approve REQ-1")  # Carol is in no step of REQ-1's chain
        assert not r.ok and r.rule == "unknown-request", r.text
        assert await h.events("request.failed") == [], await h.events("request.failed")
        assert (await h.request(1)).state == "pending"


async def test_an_outsiders_deny_without_reason_cannot_fail_it_either(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 2h because deploy")).ok
        h.files.edit_directory(_rename_bob)
        await h.say(CAROL, "deny REQ-1")
        assert (await h.request(1)).state == "pending"


async def test_an_approver_of_a_request_whose_chain_cannot_be_worked_out_is_told_why_and_nothing_changes(
        database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 2h because deploy")).ok
        h.files.edit_directory(_rename_bob)
        r = await h.say("sam.sec@example.com", "approve REQ-1")  # the security team sees every request
        assert not r.ok and r.rule == "chain-unavailable" and "stays pending" in r.text, r.text
        assert (await h.request(1)).state == "pending" and await h.events("request.failed") == []
