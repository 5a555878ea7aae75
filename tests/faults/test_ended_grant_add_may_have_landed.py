"""A grant ended (released, revoked) while its add still waits: the add is cancelled, and the membership is removed
only when an attempt of the add may have been carried out at the provider (it timed out, or was answered 500, 502
or 504), or a claim of it has no recorded answer (the call is at the provider now, in another process, or that
process stopped mid-call). An add whose every attempt was turned away before anything was done (429, 503) added
nothing: a membership the person held before, given outside the bot, stays (no DELETE at Okta, nothing removed).
That holds too when the grant ends while the add is at the provider and the add then comes back turned away: the
removal planned behind it is dropped (``membership.remove_dropped``); one that comes back timed out or 500 may have
been carried out, and the removal runs. Through Okta's stand-in, which answers a status or holds the add until the
test lets it answer; on SQLite and PostgreSQL."""

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
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, okta_group, okta_holder

ALICE, SAM = "alice@example.com", "sam.sec@example.com"
ENDINGS = {"released": (ALICE, "release REQ-1"), "revoked": (SAM, "revoke REQ-1 because wrong person")}


@asynccontextmanager
async def _okta_app(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Harness, OktaStandIn, str, str]]:
    """Alice already in the Okta group (given outside the bot), and the app provisioning it."""
    with OktaStandIn() as okta:
        group = okta_group(okta, database_url, tmp_path)
        okta.add_member(group.gid, ALICE)
        clock, notifier = MutableClock(), RecordingNotifier()
        async with build_app(group.settings, clock=clock, notifier=notifier) as app:
            # the client gives up on a call after 1.5 s (a held one; a busy machine answers the rest within it), and
            # does not try it again itself
            app.deps.provider("okta").policy = RetryPolicy(max_attempts=1, request_timeout=1.5)  # type: ignore[attr-defined]
            yield Harness(app, clock, notifier, group.files), okta, group.gid, group.path


async def _until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(what)


async def _op_rows(h: Harness) -> list[tuple[str, str]]:
    async with h.app.store.read() as repo:
        return [(o.op, o.status) for o in await repo.ops_for(1)]


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("status", [429, 503])
async def test_an_add_turned_away_at_every_attempt_leaves_a_membership_held_before(
        database_url: str, tmp_path: Path, status: int, ending: str) -> None:
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        okta.fail_path(path, status)  # throttled (429) or unavailable (503): each try turned away, nothing done
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: on call
        assert r.ok and (await h.request(1)).state == "approved", r.text
        h.clock.advance(minutes=1)
        await sweep(h.app.deps)  # a second attempt, turned away too
        assert len(okta.received("PUT", path)) == 2 and (await h.request(1)).state == "approved"
        okta.clear_path_faults()
        who, line = ENDINGS[ending]
        r = await h.say(who, line)
        assert r.ok and (await h.request(1)).state == ending, r.text
        assert "the add was cancelled" in r.text, r.text
        (ended,) = await h.events(f"grant.{ending}")
        assert ended["data"]["provisioned"] is False, ended
        assert await _op_rows(h) == [("add", "skipped")]
        h.clock.advance(minutes=5)
        await sweep(h.app.deps)
        assert ALICE in okta.member_emails(gid), "ending the grant took away the membership she held before"
        assert not okta.received("DELETE", path) and not await h.events("membership.removed")
        assert len(okta.received("PUT", path)) == 2


@pytest.mark.parametrize("first", ["time-out", 502])
async def test_an_add_that_may_have_landed_is_followed_by_the_removal(database_url: str, tmp_path: Path,
                                                                     first: str | int) -> None:
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        landed = threading.Event()
        if first == "time-out":
            okta.hold_path(path, landed)  # reaches Okta, not answered before the client gives up, then carried out
        else:
            okta.fail_path(path, int(first))  # the server failed mid-way: the add may have been carried out
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")
        assert r.ok and (await h.request(1)).state == "approved", r.text
        landed.set()
        okta.clear_path_faults()
        okta.fail_path(path, 429)  # every later try is throttled: the earlier one is what counts
        h.clock.advance(minutes=1)
        await sweep(h.app.deps)
        assert (await h.request(1)).state == "approved"
        okta.clear_path_faults()
        r = await h.say(ALICE, "release REQ-1")
        assert r.ok and (await h.request(1)).state == "released", r.text
        assert await _op_rows(h) == [("add", "skipped"), ("remove", "done")]
        assert len(okta.received("DELETE", path)) == 1
        assert ALICE not in okta.member_emails(gid), "the add that may have landed was left in place"


@asynccontextmanager
async def _add_at_okta_in_another_process(h: Harness, okta: OktaStandIn, path: str, held: threading.Event, *,
                                          once: bool = False, give_up_after: float = 60
                                          ) -> AsyncIterator[tuple[asyncio.Task, Fault]]:
    """Another process (its own app on the same database) claims the add and sends it; Okta holds it (``once``:
    that call only, not the next on the membership) until the test answers it through the fault yielded. The other
    process gives up on a call after ``give_up_after`` seconds."""
    settings = h.app.settings
    async with build_app(settings, clock=h.clock, notifier=RecordingNotifier()) as other:
        other.deps.provider("okta").policy = RetryPolicy(max_attempts=1, request_timeout=give_up_after)  # type: ignore[attr-defined]
        okta.clear_path_faults()
        hold = okta.hold_path(path, held, once=once)
        sent = len(okta.received("PUT", path))
        h.clock.advance(minutes=1)
        task = asyncio.create_task(sweep(other.deps))
        await _until(lambda: len(okta.received("PUT", path)) > sent, "the other process never sent the add")
        try:
            yield task, hold
        finally:
            held.set()
            if not task.done():
                await asyncio.wait({task}, timeout=30)


async def _turned_away_once(h: Harness, okta: OktaStandIn, path: str) -> None:
    okta.fail_path(path, 429)
    r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")
    assert r.ok and (await h.request(1)).state == "approved", r.text


async def test_an_add_at_the_provider_in_another_process_is_followed_by_the_removal(database_url: str,
                                                                                    tmp_path: Path) -> None:
    """Its earlier attempt was only throttled, but the claim running now may be carried out this instant."""
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        await _turned_away_once(h, okta, path)
        held = threading.Event()
        async with _add_at_okta_in_another_process(h, okta, path, held) as (task, _):
            r = await h.say(ALICE, "release REQ-1")
            assert r.ok and (await h.request(1)).state == "released", r.text
            assert not okta.received("DELETE", path)  # the removal waits for the add at Okta
            assert await _op_rows(h) == [("add", "pending"), ("remove", "pending")]
            held.set()
            await asyncio.wait_for(task, 30)
        assert len(okta.received("DELETE", path)) == 1
        assert ALICE not in okta.member_emails(gid)
        assert await _op_rows(h) == [("add", "done"), ("remove", "done")]


async def test_an_add_whose_process_stopped_mid_call_is_followed_by_the_removal(database_url: str,
                                                                              tmp_path: Path) -> None:
    """Its earlier attempt was only throttled; the claim after it never recorded an answer (its process stopped
    while Okta held the call) and its lease has run out: that call may have been carried out."""
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        await _turned_away_once(h, okta, path)
        held = threading.Event()
        async with _add_at_okta_in_another_process(h, okta, path, held) as (task, _):
            task.cancel()  # the process stops with the call at Okta: its answer is never recorded
            with pytest.raises(asyncio.CancelledError):
                await task
        # Okta carries the held call out once it is let go: on its own thread, so wait for it (on a busy machine the
        # removal below could otherwise reach Okta first, and the add land after it)
        await _until(lambda: okta.received("PUT", path)[-1].status is not None, "Okta never finished the held add")
        h.clock.advance(seconds=h.app.deps.policy.schedule.provider_lease.total_seconds() + 1)
        okta.clear_path_faults()
        r = await h.say(ALICE, "release REQ-1")
        assert r.ok and (await h.request(1)).state == "released", r.text
        assert await _op_rows(h) == [("add", "skipped"), ("remove", "done")]
        assert len(okta.received("DELETE", path)) == 1
        assert ALICE not in okta.member_emails(gid)


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("status", [429, 503])
async def test_an_add_at_the_provider_turned_away_after_the_grant_ended_removes_nothing(
        database_url: str, tmp_path: Path, status: int, ending: str) -> None:
    """The grant ends (release, revoke) while its add is at Okta; Okta then turns the add away (429 with its
    rate-limit reset, 503 with Retry-After): no attempt did anything, so the removal planned behind it is dropped and
    the membership Alice held before, outside the bot, stays."""
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        await _turned_away_once(h, okta, path)
        held = threading.Event()
        async with _add_at_okta_in_another_process(h, okta, path, held, once=True) as (task, hold):
            who, line = ENDINGS[ending]
            r = await h.say(who, line)
            assert r.ok and (await h.request(1)).state == ending, r.text
            assert "is at the provider now" in r.text, r.text
            assert await _op_rows(h) == [("add", "pending"), ("remove", "pending")]
            await sweep(h.app.deps)  # this process's sweep leaves the removal behind the add at Okta
            assert not okta.received("DELETE", path)
            hold.answer(status, retry_after=1)
            await asyncio.wait_for(task, 30)
        assert await _op_rows(h) == [("add", "skipped"), ("remove", "skipped")]
        (dropped,) = await h.events("membership.remove_dropped")
        assert dropped["request_id"] == "REQ-1", dropped
        assert (dropped["data"]["user"], dropped["data"]["group"]) == (ALICE, gid), dropped
        assert "turned away" in dropped["data"]["why"] and str(status) in dropped["data"]["error"], dropped
        h.clock.advance(minutes=5)  # past the add's Retry-After: nothing is tried again
        await sweep(h.app.deps)
        assert ALICE in okta.member_emails(gid), "the removal took the membership she held outside the bot"
        assert not okta.received("DELETE", path) and not await h.events("membership.removed")
        assert len(okta.received("PUT", path)) == 2  # the throttled first try and the one held


@pytest.mark.parametrize("answer", ["time-out", 500])
async def test_an_add_at_the_provider_that_may_have_landed_after_the_grant_ended_is_undone(
        database_url: str, tmp_path: Path, answer: str | int) -> None:
    """As above, but the add comes back unanswered (the client gives up on it) or 500: it may have been carried
    out, so the removal runs as soon as the add has returned, without waiting for the add's backoff."""
    async with _okta_app(database_url, tmp_path) as (h, okta, gid, path):
        await _turned_away_once(h, okta, path)
        held = threading.Event()
        # a time-out: the other process gives up on the held call after a few seconds, long after the release
        give_up_after = 4 if answer == "time-out" else 60
        async with _add_at_okta_in_another_process(h, okta, path, held, once=True,
                                                   give_up_after=give_up_after) as (task, hold):
            r = await h.say(ALICE, "release REQ-1")
            assert r.ok and (await h.request(1)).state == "released", r.text
            assert await _op_rows(h) == [("add", "pending"), ("remove", "pending")]
            assert not okta.received("DELETE", path)
            if answer == "time-out":
                await asyncio.wait_for(task, 60)
                hold.answer(504)  # the answer Okta sends after the client gave up goes nowhere
            else:
                hold.answer(int(answer))
                await asyncio.wait_for(task, 30)
        assert await _op_rows(h) == [("add", "skipped"), ("remove", "done")]
        assert len(okta.received("DELETE", path)) == 1
        assert ALICE not in okta.member_emails(gid), "the add that may have landed was left in place"
        assert not await h.events("membership.remove_dropped")


async def test_a_drift_readd_at_the_provider_turned_away_leaves_the_removal_of_a_provisioned_grant(
        database_url: str, tmp_path: Path) -> None:
    """A drift re-add (Alice's active grant, she was removed at Okta by hand) is at Okta when she releases the grant;
    Okta then throttles it. The re-add is dropped without a removal of its own, but the grant's removal stands and
    runs: the bot provisioned that grant, and its end takes the membership whatever became of the re-add, as when
    the re-add was waiting rather than at the provider."""
    with OktaStandIn() as okta:
        async with okta_holder(okta, database_url, tmp_path) as (h, okta_app):  # Alice on call: auto-approved
            gid, path = okta_app.gid, okta_app.path
            with okta.lock:
                okta.members[gid].remove(okta_app.user)  # by hand at Okta, not through the bot
            held = threading.Event()
            async with _add_at_okta_in_another_process(h, okta, path, held, once=True) as (task, hold):
                r = await h.say(ALICE, "release REQ-1")  # the other process's sweep has the re-add at Okta
                assert r.ok and (await h.request(1)).state == "released", r.text
                assert await _op_rows(h) == [("add", "done"), ("remove", "pending")]
                assert not okta.received("DELETE", path)
                hold.answer(429, retry_after=1)
                await asyncio.wait_for(task, 30)
            h.clock.advance(minutes=5)
            await sweep(h.app.deps)
            (dropped,) = await h.events("membership.add_dropped")
            assert (dropped["data"]["reason"], dropped["data"]["request_id"]) == ("drift", "REQ-1"), dropped
            assert "removal" not in dropped["data"], dropped
            assert await _op_rows(h) == [("add", "done"), ("remove", "done")]
            assert len(okta.received("DELETE", path)) == 1 and ALICE not in okta.member_emails(gid)
            assert not await h.events("membership.remove_dropped")
