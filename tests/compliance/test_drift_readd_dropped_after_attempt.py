"""A drift re-add that was already tried, then dropped (SPEC §3.6): its attempt timed out at the bot but Okta did
the add, so dropping it is not enough. Alice's grant is the one the re-add was planned for; a second grant of the
same Okta group waits behind the re-add; Alice releases the first (the second holds the group: no removal) and then
the second before its add runs (never provisioned: no removal either). When the next sweep drops the re-add, the
removal is planned and done: Alice is not left in the group with no grant behind her, and the audit log says why
(``membership.add_dropped`` with ``removal: planned``, then ``membership.removed`` reason ``drift``). Through Okta's
stand-in, which holds the re-add past the client's timeout and then carries it out; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.bootstrap import build_app
from handlers.sweeps import sweep
from provisioning.http import RetryPolicy
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, okta_group

ALICE = "alice@example.com"


@asynccontextmanager
async def _readd_timed_out_then_released(database_url: str, tmp_path: Path
                                         ) -> AsyncIterator[tuple[Harness, OktaStandIn, str, str]]:
    """Alice's re-add timed out at the bot but landed at Okta, a second grant (REQ-2) approved with its add waiting
    behind the re-add, and REQ-1, the grant the re-add was planned for, released."""
    with OktaStandIn() as okta:
        okta_app = okta_group(okta, database_url, tmp_path,  # two profiles granting the same Okta group
                              profiles=("sg-prod-db-read", "sg-analytics-read"))
        gid, alice, files, settings = okta_app.gid, okta_app.user, okta_app.files, okta_app.settings
        clock, notifier = MutableClock(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=notifier) as app:
            h = Harness(app, clock, notifier, files)
            # the client gives up on a call after 1.5 s (a held one; a busy machine answers the rest within it), and
            # does not try it again itself
            app.deps.provider("okta").policy = RetryPolicy(max_attempts=1, request_timeout=1.5)  # type: ignore[attr-defined]
            r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: on call
            assert r.ok and (await h.request(1)).state == "active", r.text
            path = f"/groups/{gid}/users/{alice}"
            landed = threading.Event()
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
            okta.hold_path(path, landed)  # the re-add reaches Okta but is not answered before the client gives up
            h.clock.advance(minutes=1)
            await sweep(h.app.deps)
            (detected,) = await h.events("drift.detected")
            assert detected["data"]["request_id"] == "REQ-1"
            assert not await h.events("membership.added")
            landed.set()  # Okta carries out the add the bot stopped waiting for
            for _ in range(100):
                if ALICE in okta.member_emails(gid):
                    break
                await asyncio.sleep(0.05)
            assert ALICE in okta.member_emails(gid)
            okta.clear_path_faults()
            assert len(okta.received("PUT", path)) == 2  # REQ-1's add, then the re-add

            r = await h.say(ALICE, "request analytics-read for 1d because reports")  # its add waits behind the re-add
            assert r.ok and (await h.request(2)).state == "approved", r.text
            assert len(okta.received("PUT", path)) == 2
            r = await h.say(ALICE, "release REQ-1")  # REQ-2 holds the group: no removal planned for REQ-1
            assert r.ok, r.text
            yield h, okta, gid, path


async def test_a_dropped_readd_that_may_have_landed_is_undone(database_url, tmp_path: Path):
    async with _readd_timed_out_then_released(database_url, tmp_path) as (h, okta, gid, path):
        r = await h.say(ALICE, "release REQ-2")  # never provisioned: no removal planned for it either
        assert r.ok, r.text
        assert (await h.request(2)).state == "released"

        h.clock.advance(minutes=2)
        await sweep(h.app.deps)  # the re-add is dropped: no running grant backs it
        assert ALICE not in okta.member_emails(gid), "the dropped re-add left her in the group with no grant"
        (dropped,) = await h.events("membership.add_dropped")
        assert (dropped["data"]["user"], dropped["data"]["request_id"]) == (ALICE, "REQ-1"), dropped
        assert dropped["data"].get("removal") == "planned", dropped
        assert len(okta.received("DELETE", path)) == 1 and len(okta.received("PUT", path)) == 2
        (removed,) = await h.events("membership.removed")
        assert (removed["data"]["user"], removed["data"]["reason"]) == (ALICE, "drift"), removed
        assert not await h.events("membership.added")

        h.clock.advance(minutes=2)
        await sweep(h.app.deps)
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved
        assert ALICE not in okta.member_emails(gid) and len(await h.events("drift.detected")) == 1


async def test_a_dropped_readd_is_not_undone_while_another_grants_add_waits(database_url, tmp_path: Path):
    """The same re-add dropped (REQ-1 released, REQ-2 approved but not provisioned yet, so no running grant backs
    it), with REQ-2's add waiting on the membership: no removal is planned (REQ-2 wants her in: its add waits, and
    an approved grant holds the membership), REQ-2's add lands and she stays in the group."""
    async with _readd_timed_out_then_released(database_url, tmp_path) as (h, okta, gid, path):
        assert (await h.request(2)).state == "approved"
        h.clock.advance(minutes=2)
        await sweep(h.app.deps)  # the re-add is dropped, then REQ-2's add runs
        (dropped,) = await h.events("membership.add_dropped")
        assert (dropped["data"]["user"], dropped["data"]["request_id"]) == (ALICE, "REQ-1"), dropped
        assert "removal" not in dropped["data"], dropped
        assert not await h.events("membership.removed") and not okta.received("DELETE", path)
        assert (await h.request(2)).state == "active"
        assert ALICE in okta.member_emails(gid)

        h.clock.advance(minutes=2)
        await sweep(h.app.deps)
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved
        assert ALICE in okta.member_emails(gid) and len(await h.events("drift.detected")) == 1
        assert not okta.received("DELETE", path) and (await h.request(2)).state == "active"
