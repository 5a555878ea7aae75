"""A grant whose add is given up after an attempt that may have been carried out unanswered (its answer never came,
or it was a 500/502/504): that attempt may have added the member at the provider, so the grant's failure is followed
by the removal, as a grant ended with its add at the provider is (``grant.provision_failed`` with ``removal:
planned``, then ``membership.removed`` reason ``provision_failed``). An add whose every attempt was refused before
anything was done (429, 503, 403) leaves nothing to undo: a membership held before the request stays. Through Okta's
stand-in, which holds the first add past the client's time-out and then carries it out, or answers a status; on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.bootstrap import build_app
from handlers.sweeps import sweep
from provisioning.http import RetryPolicy
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, okta_group

ALICE = "alice@example.com"


@asynccontextmanager
async def _okta_app(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Harness, OktaStandIn, str, str]]:
    with OktaStandIn() as okta:
        okta_app = okta_group(okta, database_url, tmp_path)
        gid, alice, files, settings = okta_app.gid, okta_app.user, okta_app.files, okta_app.settings
        clock, notifier = MutableClock(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=notifier) as app:
            # the client gives up on a call after 1.5 s (a held one; a busy machine answers the rest within it), and
            # does not try it again itself
            app.deps.provider("okta").policy = RetryPolicy(max_attempts=1, request_timeout=1.5)  # type: ignore[attr-defined]
            yield Harness(app, clock, notifier, files), okta, gid, f"/groups/{gid}/users/{alice}"


async def _given_up(h: Harness) -> None:
    """Sweeps until the add's retry budget is spent and the grant failed."""
    for _ in range(3):
        h.clock.advance(minutes=5)
        await sweep(h.app.deps)
    assert (await h.request(1)).state == "failed"


@pytest.mark.parametrize("later", [503, 429])
async def test_a_grant_failed_after_an_unanswered_add_is_followed_by_its_removal(database_url, tmp_path: Path,
                                                                               later: int):
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        landed = threading.Event()
        okta.hold_path(path, landed)  # the add reaches Okta but is not answered before the client gives up
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: on call
        assert r.ok and (await h.request(1)).state == "approved", r.text
        landed.set()  # Okta carries out the add the bot stopped waiting for
        for _ in range(100):
            if ALICE in okta.member_emails(gid):
                break
            await asyncio.sleep(0.05)
        assert ALICE in okta.member_emails(gid)
        okta.clear_path_faults()
        okta.fail_path(path, later)  # every later call is refused for now, until the retry budget is spent
        await _given_up(h)
        (failed,) = await h.events("grant.provision_failed")
        assert failed["data"].get("removal") == "planned", failed
        okta.clear_path_faults()
        h.clock.advance(minutes=5)
        await sweep(h.app.deps)
        assert ALICE not in okta.member_emails(gid), "the failed grant left her in the group"
        (removed,) = await h.events("membership.removed")
        assert (removed["data"]["user"], removed["data"]["reason"]) == (ALICE, "provision_failed"), removed
        await sweep(h.app.deps)
        assert len(await h.events("membership.removed")) == 1 and not await h.events("grant.provisioned")


async def test_an_add_refused_at_its_only_attempt_leaves_nothing_to_undo(database_url, tmp_path: Path):
    async with _okta_app(database_url, tmp_path) as (h, okta, _gid, path):
        okta.fail_path(path, 403)  # refused for good: nothing was added
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")
        assert r.ok, r.text
        assert (await h.request(1)).state == "failed"
        (failed,) = await h.events("grant.provision_failed")
        assert "removal" not in failed["data"], failed
        okta.clear_path_faults()
        await sweep(h.app.deps)
        assert not okta.received("DELETE", path) and not await h.events("membership.removed")


@pytest.mark.parametrize("status", [429, 503])
async def test_an_add_refused_for_now_at_every_attempt_leaves_a_membership_held_before(database_url, tmp_path: Path,
                                                                                      status: int):
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        okta.add_member(gid, ALICE)  # she is in the group already, given outside the bot
        okta.fail_path(path, status)  # throttled (429) or unavailable (503): each try turned away, nothing done
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")
        assert r.ok and (await h.request(1)).state == "approved", r.text
        await _given_up(h)
        (failed,) = await h.events("grant.provision_failed")
        assert "removal" not in failed["data"] and failed["data"]["attempts"] > 1, failed
        okta.clear_path_faults()
        h.clock.advance(minutes=5)
        await sweep(h.app.deps)
        assert ALICE in okta.member_emails(gid), "the failed grant took away the membership she held before"
        assert not okta.received("DELETE", path) and not await h.events("membership.removed")


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_an_add_answered_a_server_error_may_have_landed(database_url, tmp_path: Path, status: int):
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        okta.fail_path(path, status)  # the server failed mid-way: the add may have been carried out
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")
        assert r.ok and (await h.request(1)).state == "approved", r.text
        okta.add_member(gid, ALICE)  # as it was, without saying so
        okta.fail_path(path, 429)  # every later try is throttled
        await _given_up(h)
        (failed,) = await h.events("grant.provision_failed")
        assert failed["data"].get("removal") == "planned", failed
        okta.clear_path_faults()
        h.clock.advance(minutes=5)
        await sweep(h.app.deps)
        assert ALICE not in okta.member_emails(gid), "the failed grant left her in the group"
        (removed,) = await h.events("membership.removed")
        assert (removed["data"]["user"], removed["data"]["reason"]) == (ALICE, "provision_failed"), removed
