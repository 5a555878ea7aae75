"""A request from someone the leaver sweep terminated asks the identity provider again (README, Leavers): still
inactive, it is refused; only someone who *comes back* is judged afresh and has the old departure closed."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from handlers.sweeps import sweep
from tests.support import harness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_the_second_ask_is_not_answered_from_the_commands_own_directory_snapshot(database_url, tmp_path,
                                                                                      monkeypatch):
    """Bob asks for prod-db-read (an approval chain: his manager is looked up, and the command reads one
    version of the directory file from then on). While his request is being judged, the directory disables him
    and the sweep (another process) terminates him. The submission then finds his termination and 'asks the
    identity provider again' (handlers.requests.submit): the answer must be what the directory says now
    (inactive: refused), not the command's snapshot taken before he was disabled. Otherwise the old departure is
    forgotten, the request is recorded for a disabled person, and the next sweep records a second departure
    (report terminations / removals.csv list Bob twice)."""
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-staging-admin", BOB)
        provider = h.app.deps.providers["directory"]
        look_up = provider.get_user
        ran: list[Any] = []

        async def meanwhile(email: str) -> Any:
            person = await look_up(email)  # the command has read the directory file (Bob active)
            if email == MARK and not ran:
                h.files.set_active(BOB, False)  # HR disables Bob; the sweep, another process, terminates him
                task = asyncio.get_running_loop().create_task(sweep(h.app.deps, drift=False),
                                                              context=contextvars.Context())
                ran.append(await task)
            return person

        monkeypatch.setattr(provider, "get_user", meanwhile)
        reply = await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")
        assert ran and ran[0].terminated == [BOB], ran
        monkeypatch.setattr(provider, "get_user", look_up)
        assert not reply.ok and reply.rule == "inactive", reply.text
        h.clock.advance(seconds=30)
        await sweep(h.app.deps, drift=False)
        terminated = await h.events("user.terminated")
        assert len(terminated) == 1, [e["data"] for e in terminated]
