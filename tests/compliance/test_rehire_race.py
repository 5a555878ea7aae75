"""Someone who comes back after leaving is judged afresh (README), but a request that raced the termination is no
proof of coming back: the submission asks the identity provider again, refuses an inactive requester, and records
no second departure."""

from __future__ import annotations

from handlers.sweeps import sweep
from tests.support import harness

BOB = "bob@example.com"


async def test_a_request_that_raced_the_termination_is_not_a_second_departure(database_url, tmp_path):
    """Bob's message is identified (active) a moment before the sweep finds him disabled and terminates him;
    his request is recorded just after. He never was active again at the identity provider. SPEC §3.6:
    `user.terminated` once per person; README: only someone who *comes back* is judged afresh. The next sweep
    ends whatever the raced request got, but must not record a second departure (report terminations and
    removals.csv would list Bob twice, the second with ~0 hours)."""
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-staging-admin", BOB)
        bob = await h.app.deps.person(BOB)
        assert bob is not None and bob.active
        h.files.set_active(BOB, False)
        assert (await sweep(h.app.deps, drift=False)).terminated == [BOB]
        h.clock.advance(seconds=1)
        reply = await h.app.service.handle_text(bob, "request analytics-read for 1d")  # identified before the sweep
        assert not reply.ok and reply.rule == "inactive", reply.text
        h.clock.advance(seconds=30)
        await sweep(h.app.deps, drift=False)
        terminated = await h.events("user.terminated")
        assert len(terminated) == 1, [e["data"] for e in terminated]
        assert BOB not in await h.members("sg-analytics-read")
