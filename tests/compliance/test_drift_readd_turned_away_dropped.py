"""A drift re-add dropped (SPEC §3.6) after attempts that Okta turned away before doing anything (429 throttling,
503 read-only mode): it added nothing, so nothing is undone; an attempt answered 502 may have been carried out, and
its removal is planned as for one that timed out (tests/compliance/test_drift_readd_dropped_after_attempt.py).

Alice's grant REQ-1 is the one the re-add was planned for; after the re-add was refused, an administrator puts her
back in the group by hand, outside the bot; a second grant of the same Okta group (REQ-2) waits behind the re-add;
Alice releases REQ-1 (REQ-2 holds the group: no removal) and then REQ-2 before its add runs (never tried: no removal
either). The next sweep drops the re-add: after 429s or 503s she keeps the membership given by hand (no DELETE at
Okta, no ``membership.removed``, ``membership.add_dropped`` without ``removal``). Through Okta's stand-in; on SQLite
and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.bootstrap import build_app
from handlers.sweeps import sweep
from provisioning.http import RetryPolicy
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, okta_group

ALICE = "alice@example.com"


@pytest.mark.parametrize(("status", "undone"), [(429, False), (503, False), (502, True)])
async def test_a_dropped_readd_is_undone_only_when_an_attempt_may_have_landed(database_url: str, tmp_path: Path,
                                                                            status: int, undone: bool) -> None:
    with OktaStandIn() as okta:
        okta_app = okta_group(okta, database_url, tmp_path,  # two profiles granting the same Okta group
                              profiles=("sg-prod-db-read", "sg-analytics-read"))
        gid, alice, files, settings = okta_app.gid, okta_app.user, okta_app.files, okta_app.settings
        clock, notifier = MutableClock(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=notifier) as app:
            h = Harness(app, clock, notifier, files)
            app.deps.provider("okta").policy = RetryPolicy(max_attempts=1, request_timeout=5)  # type: ignore[attr-defined]
            r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: on call
            assert r.ok and (await h.request(1)).state == "active", r.text
            path = okta_app.path
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
            okta.fail_path(path, status)
            h.clock.advance(minutes=1)
            await sweep(h.app.deps)  # drift found, the re-add tried and refused
            (detected,) = await h.events("drift.detected")
            assert detected["data"]["request_id"] == "REQ-1"
            assert len(okta.received("PUT", path)) == 2 and not await h.events("membership.added")
            okta.add_member(gid, ALICE)  # by hand again, outside the bot

            r = await h.say(ALICE, "request analytics-read for 1d because reports")  # its add waits behind the re-add
            assert r.ok and (await h.request(2)).state == "approved", r.text
            assert (await h.say(ALICE, "release REQ-1")).ok  # REQ-2 holds the group: no removal for REQ-1
            assert (await h.say(ALICE, "release REQ-2")).ok  # its add never tried: no removal for it either
            assert len(okta.received("PUT", path)) == 2 and not okta.received("DELETE", path)
            okta.clear_path_faults()

            h.clock.advance(minutes=2)
            await sweep(h.app.deps)  # the re-add is dropped: no running grant backs it
            (dropped,) = await h.events("membership.add_dropped")
            assert (dropped["data"]["user"], dropped["data"]["request_id"]) == (ALICE, "REQ-1"), dropped
            assert len(okta.received("PUT", path)) == 2
            if undone:
                assert dropped["data"].get("removal") == "planned", dropped
                assert len(okta.received("DELETE", path)) == 1 and ALICE not in okta.member_emails(gid)
                (removed,) = await h.events("membership.removed")
                assert (removed["data"]["user"], removed["data"]["reason"]) == (ALICE, "drift"), removed
            else:
                assert "removal" not in dropped["data"], dropped
                assert ALICE in okta.member_emails(gid), "the dropped re-add took away the membership given by hand"
                assert not okta.received("DELETE", path) and not await h.events("membership.removed")
