"""A sign-off step ``{all_of: G}`` is judged "as a request's chain" (SPEC §7: "one person once, as a request's
chain"; §2.1): for a request, an all_of step needs every *active* person of the group (handlers/chains.py
``resolve_step``: need = the active pool), and a request whose all_of group has one member who already left
is asked of the others and proceeds.

The campaign keeps the people each sign-off step asked when it opened (its active approvers then), and an
all_of step needs exactly them: one member who left the directory before the close is not asked, and the
remaining member's signature completes the step, as for a request's all_of step."""

from __future__ import annotations

from tests.reviews.test_close import sign_off_harness


async def test_all_of_signoff_with_a_member_who_left_before_the_close_asks_the_others(database_url, tmp_path):
    async with sign_off_harness(database_url, tmp_path, "[{all_of: security}]") as h:
        h.files.set_active("sasha.sec@example.com", False)  # left before the close; the policy still lists her
        reply = await h.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok and "waits for sign-off of 1 removal(s)" in reply.text, reply.text
        assert (await h.say("sam.sec@example.com", "approve RV-1")).ok
        assert "bob@example.com" not in await h.members("sg-prod-db-read")


async def test_a_request_all_of_with_the_same_member_gone_is_asked_of_the_others(database_url, tmp_path):
    """The request chain's rule the sign-off claims to follow (passes today: the contrast)."""
    from tests.support import harness

    async with harness(database_url, tmp_path) as h:
        text = h.files.policy.read_text()
        h.files.set_active("sasha.sec@example.com", False)
        assert "      - {n_of: 2, from: security}" in text
        from handlers.policy import load_policy

        h.files.policy.write_text(text.replace("      - {n_of: 2, from: security}", "      - {all_of: security}"))
        h.app.deps.policy = load_policy(h.files.policy)
        await h.app.service.start()
        r = await h.say("bob@example.com", "request prod-db-read for 1h because INC-1 hot path")
        assert r.ok, r.text
        assert (await h.say("mark.mgr@example.com", "approve REQ-1")).ok
        assert (await h.say("dana.dba@example.com", "approve REQ-1")).ok
        assert (await h.say("sam.sec@example.com", "approve REQ-1")).ok
        assert (await h.request(1)).state == "active"
