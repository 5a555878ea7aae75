"""A drift re-add at the provider when its grant ends (SPEC §3.6): Alice releases the grant while Okta holds the
re-add's call, then Okta carries it out. No running grant backs her membership, so the finding is never resolved
``restored`` and nobody is told she was added back while the grant runs: her release queued the removal behind the
add, which takes her out, and the next sweep closes the finding ``ended``. Through Okta's stand-in; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from handlers.sweeps import SweepReport, sweep
from tests.standins.okta import OktaStandIn
from tests.support import Harness, okta_holder

ALICE, SAM = "alice@example.com", "sam.sec@example.com"


async def _sweep_while_readd_held(h: Harness, okta: OktaStandIn, gid: str, alice: str,
                                  meanwhile: Callable[[], Awaitable[None]]) -> SweepReport:
    """Alice removed from the group by hand at Okta, then a sweep whose re-add Okta holds until ``meanwhile`` has
    run, and then carries out: the sweep's report."""
    path = f"/groups/{gid}/users/{alice}"
    landed = threading.Event()
    with okta.lock:
        okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
    okta.hold_path(path, landed)  # the re-add reaches Okta and is held there
    h.clock.advance(minutes=1)
    sweeping = asyncio.ensure_future(sweep(h.app.deps))
    try:
        for _ in range(400):
            if len(okta.received("PUT", path)) == 2 or sweeping.done():  # REQ-1's add, then the re-add
                break
            await asyncio.sleep(0.05)
        assert len(okta.received("PUT", path)) == 2
        await meanwhile()
    finally:
        landed.set()  # Okta carries out the add
    report = await sweeping
    okta.clear_path_faults()
    return report


async def test_a_readd_that_lands_after_its_grant_ended_is_not_told_restored(database_url, tmp_path: Path):
    with OktaStandIn() as okta:
        async with okta_holder(okta, database_url, tmp_path) as (h, okta_app):  # Alice on call: auto-approved
            gid, alice, notifier = okta_app.gid, okta_app.user, h.notifier
            async def release() -> None:  # while the re-add is at Okta
                r = await h.say(ALICE, "release REQ-1")
                assert r.ok, r.text

            report = await _sweep_while_readd_held(h, okta, gid, alice, release)
            assert report.drift_settled == [f"D-1: {ALICE} held REQ-1 but was not in okta/{gid}: added back, but "
                                            "REQ-1 had ended (released) meanwhile; the finding closes ended."], \
                report.drift_settled
            assert (await h.request(1)).state == "released"
            (added,) = await h.events("membership.added")
            assert added["data"]["reason"] == "drift"
            assert not [e for e in await h.events("drift.resolved") if e["data"]["resolution"] == "restored"]
            told = [n.text for n in notifier.to(ALICE) + notifier.to(SAM)]
            assert not [t for t in told if "added back" in t], told
            assert ALICE not in okta.member_emails(gid), "the release's removal did not follow the add"

            h.clock.advance(minutes=2)
            await sweep(h.app.deps)
            (resolved,) = await h.events("drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved


async def test_a_readd_that_lands_after_its_grant_expiry_passed_is_not_told_restored(database_url, tmp_path: Path):
    """The grant's end passes (not yet recorded expired: the sweep that does so comes later) while the re-add is at
    Okta: the add landing does not resolve the finding ``restored`` nor tell Alice the grant still runs."""
    with OktaStandIn() as okta:
        async with okta_holder(okta, database_url, tmp_path) as (h, okta_app):  # Alice on call: auto-approved
            gid, alice, notifier = okta_app.gid, okta_app.user, h.notifier
            async def expiry_passes() -> None:  # REQ-1's end passes while the re-add is at Okta
                h.clock.advance(minutes=30)

            report = await _sweep_while_readd_held(h, okta, gid, alice, expiry_passes)
            assert report.drift_settled == [f"D-1: {ALICE} held REQ-1 but was not in okta/{gid}: added back, but "
                                            "REQ-1 expired at 2026-11-23T08:30:00.000Z meanwhile; the finding closes "
                                            "ended."], report.drift_settled
            (added,) = await h.events("membership.added")
            assert added["data"]["reason"] == "drift"
            assert not await h.events("drift.resolved")
            told = [n.text for n in notifier.to(ALICE) + notifier.to(SAM)]
            assert not [t for t in told if "added back" in t], told

            for _ in range(3):  # the expiry is recorded, its removal done, and the finding closed
                h.clock.advance(minutes=2)
                await sweep(h.app.deps)
            assert (await h.request(1)).state == "expired"
            assert ALICE not in okta.member_emails(gid)
            (resolved,) = await h.events("drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved
