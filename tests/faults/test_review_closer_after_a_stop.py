"""The person who closed a campaign early stays barred from its brake's pause when the close stopped after
the campaign turned `held` and before the pause (SPEC §7): a close with no `sign_off` records its defaulted
decisions naming the closer (`review.decided` `data.closed_by`), and the sweep that releases the held campaign
reads the closer from the chain. Here the close is cut off while Graph holds the live check of its release;
above `safety.max_removals` the sweep pauses the four removals, the closer's `resume removals` is refused and
another security member's runs them. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.bootstrap import build_app
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import MEMBERS, OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier

SAM, SASHA = "sam.sec@example.com", "sasha.sec@example.com"


async def test_a_close_cut_off_before_the_pause_still_bars_its_closer(
        database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    text = world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1)
    world.files.policy.write_text(text + "\nsafety: {max_removals: 3}\n")
    for email in MEMBERS:  # standing members at Graph, no grant behind them
        graph.add_member(world.entra_group, email)
    async with build_app(world.settings(), clock=MutableClock(), notifier=RecordingNotifier()) as app:
        sam, sasha = await app.service.identify(SAM), await app.service.identify(SASHA)
        assert sam is not None and sasha is not None
        assert (await app.service.handle_text(sam, "review start ops-review")).ok

        async def state() -> str | None:
            async with app.store.read() as repo:
                found = await repo.get_campaign(1)
            return found.state if found else None

        graph.slow_next(6, seconds=0.5)  # each live check held: the close's, then its release's
        close = asyncio.ensure_future(app.service.handle_text(sam, "review close RV-1"))
        for _ in range(300):
            if await state() == "held" or close.done():
                break
            await asyncio.sleep(0.01)
        assert not close.done(), close.result().text  # cut off inside the release, as a stopped process
        close.cancel()
        await asyncio.gather(close, return_exceptions=True)
        graph.faults.clear()
        assert await state() == "held"
        assert not [e async for e in app.store.audit_events() if e.type == "automation.paused"]

        await app.service.sweep(drift=False)  # the release: 4 removals > 3, paused
        paused = [e.as_dict() async for e in app.store.audit_events() if e.type == "automation.paused"]
        assert len(paused) == 1, paused
        reply = await app.service.handle_text(sam, "resume removals")
        assert not reply.ok, reply.text  # the closer defaulted the four removals: not theirs to release
        await app.service.sweep(drift=False)
        assert sorted(graph.member_emails(world.entra_group)) == sorted(MEMBERS)

        reply = await app.service.handle_text(sasha, "resume removals")
        assert reply.ok, reply.text
        await app.service.sweep(drift=False)
        assert graph.member_emails(world.entra_group) == []
