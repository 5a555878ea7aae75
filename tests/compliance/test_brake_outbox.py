"""The safety brake's pause is told through the outbox (handlers/outbox.py): the security team's notice is
written with ``automation.paused``; a sweep cut off after the pause was recorded has it sent, once, as the
pause's card, by a later sweep. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from handlers.compliance.views import PauseView
from handlers.outbox import notice_lease
from handlers.sweeps import sweep
from tests.compliance.test_brake import WAVE, _add_people
from tests.support import harness
from tests.test_notice_outbox import Channel, _outbox

SAM = "sam.sec@example.com"


async def test_a_pause_notice_cut_off_is_sent_once_by_the_next_sweep(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.edit_directory(lambda d: _add_people(d, WAVE, "sg-analytics-read"))

        def leave(data: dict) -> None:
            for u in data["users"]:
                if u["email"] in WAVE:
                    u["active"] = False

        h.files.edit_directory(leave)
        channel = Channel(cut=1)
        h.app.deps.notifier = channel
        try:
            await sweep(h.app.deps, drift=False)
            raise AssertionError("the send was not cut off")
        except asyncio.CancelledError:
            pass
        (paused,) = await h.events("automation.paused")
        assert paused["data"]["count"] == 30 and channel.sent == []
        security = sorted(h.app.deps.policy.security_members())
        rows = await _outbox(h)
        assert sorted(r["recipient"] for r in rows) == security and {r["kind"] for r in rows} == {"brake"}
        assert {r["status"] for r in rows} == {"pending"}

        h.clock.advance(seconds=notice_lease(channel).total_seconds() + 1)
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 30 and len(await h.events("automation.paused")) == 1  # the same pause: no new one
        told = [n for n in channel.sent if n.kind == "brake"]
        assert sorted(n.recipient for n in told) == security and SAM in security
        [card] = [n for n in told if n.recipient == SAM]
        assert "Removals paused: 30 terminated removals" in card.text and "resume removals" in card.text
        assert isinstance(card.view, PauseView) and (card.view.reason, card.view.count) == ("terminated", 30)
        h.clock.advance(hours=1)
        await sweep(h.app.deps, drift=False)
        assert len([n for n in channel.sent if n.kind == "brake"]) == len(security)
        assert {r["status"] for r in await _outbox(h)} == {"sent"}
