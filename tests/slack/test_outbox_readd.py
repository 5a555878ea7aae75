"""A drift re-add the provider does not finish at once is told reliably (handlers/compliance/readd.py): that it is
queued is written to the outbox in the transaction that records the provider's answer leaving it queued, never
before (a re-add that lands at once leaves no "queued" row), so a process cut off while the add is at the provider
has told nobody anything, and the next sweep's retry tells what its answer decides, once; when a later sweep's
retry lands the add, the holder and the security team are told it landed, once. A queued notice that no longer
holds when its delivery comes (the grant ended, the provider refused the add for good) is dropped with why. The
provider is Okta's stand-in, whose first adds answer 503; the notices go through the Slack stand-in. On SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.bootstrap import build_app
from bot.slack.notifier import SlackNotifier
from handlers.outbox import deliver_pending
from handlers.sweeps import sweep
from tests.slack.test_outbox_settled import _dm, _said, _slack
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.standins.slack import SlackWebApi
from tests.support import Harness, MutableClock, RecordingNotifier, okta_group
from tests.test_notice_outbox import _outbox

ALICE, SAM, SASHA = "alice@example.com", "sam.sec@example.com", "sasha.sec@example.com"
QUEUED, LANDED = "adding them back is queued", "added back"
LINE = "D-1: alice@example.com holds REQ-1"


def _to_alice(api: SlackWebApi, words: str) -> list[str]:
    """The DM lines that tell Alice ``words`` of D-1 (her status message also notes it; an edit does not notify)."""
    return [t for t in _said(api, ALICE, LINE) if words in t]


async def _put_arrived(okta: OktaStandIn, path: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(okta.received("PUT", path)) < count:
        assert time.monotonic() < deadline, "the re-add never reached Okta"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def _queued(database_url: str, tmp_path: Path, slack_api: SlackWebApi
                  ) -> AsyncIterator[tuple[Harness, OktaStandIn, str, SlackNotifier]]:
    """Alice's grant of an Okta group, Alice removed there by hand, and a sweep that planned her re-add cut off while
    the add was at Okta (which answers 503 from then on): nothing is told yet, nor written to be told."""
    with OktaStandIn() as okta:
        okta_app = okta_group(okta, database_url, tmp_path)
        gid, alice, files, settings = okta_app.gid, okta_app.user, okta_app.files, okta_app.settings
        clock, recording = MutableClock(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=recording) as app:
            h = Harness(app, clock, recording, files)
            real = _slack(h, slack_api)
            r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: on call
            assert r.ok and (await h.request(1)).state == "active", r.text
            path = f"/groups/{gid}/users/{alice}"
            assert okta.member_emails(gid) == [ALICE]
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
            h.clock.advance(minutes=1)

            # the sweep plans the re-add and is cut off while its add is at Okta (a stop), which then answers 503
            release = threading.Event()
            with okta.lock:
                okta.path_faults[path] = Fault("slow", status=503, then_fail=True, until=release)
            task = asyncio.create_task(sweep(h.app.deps))
            try:
                await _put_arrived(okta, path, 2)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            finally:
                with okta.lock:
                    okta.path_faults[path] = Fault("status", status=503, retry_after=0.01)
                release.set()
            (detected,) = await h.events("drift.detected")
            assert detected["data"]["request_id"] == "REQ-1"
            # Okta's answer was never recorded: whether the add is queued is not decided yet
            assert not [r for r in await _outbox(h) if QUEUED in r["text"]]
            assert not _to_alice(slack_api, QUEUED) and not _dm(slack_api, SAM, QUEUED)

            yield h, okta, gid, real


async def test_a_queued_readd_is_told_once_when_queued_and_once_when_it_lands(database_url, tmp_path: Path,
                                                                              slack_api: SlackWebApi):
    async with _queued(database_url, tmp_path, slack_api) as (h, okta, gid, real):
        # the next sweep, past the cut-off process's lease on the add: Okta still answers 503; the add stays
        # queued, and the holder and the team are told so, once
        h.clock.advance(seconds=h.app.deps.policy.schedule.provider_lease.total_seconds() + 1)
        await sweep(h.app.deps)
        await real.idle()
        assert ALICE not in okta.member_emails(gid)
        assert not await h.events("drift.resolved") and not await h.events("membership.added")
        [told] = _to_alice(slack_api, QUEUED)
        assert "you are told when it lands" in told, told
        assert len(_dm(slack_api, SAM, QUEUED)) == 1 and len(_dm(slack_api, SASHA, QUEUED)) == 1
        assert not _to_alice(slack_api, LANDED)

        # Okta answers again: a later sweep's retry lands the add; they are told it landed, once
        okta.clear_path_faults()
        h.clock.advance(minutes=2)
        await sweep(h.app.deps)
        await real.idle()
        assert okta.member_emails(gid) == [ALICE]
        (added,) = await h.events("membership.added")
        assert (added["data"]["user"], added["data"]["reason"]) == (ALICE, "drift")
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("restored", "REQ-1")
        [landed] = _to_alice(slack_api, LANDED)
        assert "the grant still runs" in landed, landed
        for member in (SAM, SASHA):
            [line] = _dm(slack_api, member, LANDED)
            assert line.startswith(f"Drift: {LINE}"), line
        await sweep(h.app.deps)  # nothing more to tell
        await real.idle()
        assert len(_to_alice(slack_api, QUEUED)) == 1 and len(_dm(slack_api, SAM, QUEUED)) == 1
        assert len(_to_alice(slack_api, LANDED)) == 1
        assert len(_dm(slack_api, SAM, LANDED)) == 1 and len(await h.events("drift.resolved")) == 1
        assert {r["status"] for r in await _outbox(h)} <= {"sent", "dropped"}
        assert len(await h.events("drift.detected")) == 1


async def _queued_not_delivered(h: Harness, slack_api: SlackWebApi, real: SlackNotifier) -> list[dict]:
    """Past the cut-off process's lease, a sweep whose retry Okta answers 503 while Slack refuses every message:
    the queued notices are written and left to a later delivery."""
    slack_api.refuse("chat.postMessage", "internal_error")
    h.clock.advance(seconds=h.app.deps.policy.schedule.provider_lease.total_seconds() + 1)
    await sweep(h.app.deps)
    await real.idle()
    queued = [r for r in await _outbox(h) if QUEUED in r["text"]]
    assert sorted((r["recipient"], r["status"]) for r in queued) == [
        (ALICE, "pending"), (SAM, "pending"), (SASHA, "pending")], queued
    with slack_api.lock:
        slack_api.refusals.clear()
    return queued


async def test_a_queued_readd_whose_grant_ended_before_delivery_is_not_told(database_url, tmp_path: Path,
                                                                             slack_api: SlackWebApi):
    """Nobody is told "queued" of a re-add whose grant has ended since: the notices are dropped with why."""
    async with _queued(database_url, tmp_path, slack_api) as (h, okta, gid, real):
        await _queued_not_delivered(h, slack_api, real)
        assert (await h.say(ALICE, "release REQ-1")).ok
        h.clock.advance(minutes=5)  # the notices' retry is due
        await sweep(h.app.deps)
        await real.idle()
        queued = [r for r in await _outbox(h) if QUEUED in r["text"]]
        assert len(queued) == 3 and {r["status"] for r in queued} == {"dropped"}, queued
        assert all("REQ-1 is no longer active (released)" in r["last_error"] for r in queued), queued
        assert not _to_alice(slack_api, QUEUED) and not _dm(slack_api, SAM, QUEUED) and not _dm(slack_api, SASHA,
                                                                                                 QUEUED)
        assert ALICE not in okta.member_emails(gid) and not await h.events("membership.added")


async def test_a_queued_readd_whose_grant_is_past_its_end_is_not_told(database_url, tmp_path: Path,
                                                                      slack_api: SlackWebApi):
    """The grant's end passes before the notices' next delivery, and no sweep has recorded the expiry yet: the grant
    no longer backs the re-add (it is dropped at its next claim), so nobody is told it is queued."""
    async with _queued(database_url, tmp_path, slack_api) as (h, _okta, _gid, real):
        await _queued_not_delivered(h, slack_api, real)
        h.clock.advance(minutes=30)  # past the 30-minute grant's end; only a delivery runs, not a sweep
        await deliver_pending(h.app.deps)
        await real.idle()
        assert (await h.request(1)).state == "active"  # no sweep has recorded the expiry
        queued = [r for r in await _outbox(h) if QUEUED in r["text"]]
        assert len(queued) == 3 and {r["status"] for r in queued} == {"dropped"}, queued
        assert all("REQ-1 expired at" in r["last_error"] for r in queued), queued
        assert not _to_alice(slack_api, QUEUED) and not _dm(slack_api, SAM, QUEUED)


async def test_a_queued_readd_the_provider_refused_for_good_is_not_told_queued(database_url, tmp_path: Path,
                                                                                slack_api: SlackWebApi):
    """The add is given up (Okta answers 403): the grant ends instead, which the holder and the team are told; the
    "queued" notices still waiting for a delivery are dropped with why."""
    async with _queued(database_url, tmp_path, slack_api) as (h, okta, gid, real):
        await _queued_not_delivered(h, slack_api, real)
        with okta.lock:
            okta.path_faults = {p: Fault("status", status=403) for p in okta.path_faults}
        h.clock.advance(minutes=5)  # the re-add and the notices are due again
        await sweep(h.app.deps)
        await real.idle()
        (failed,) = await h.events("membership.add_failed")
        assert (failed["data"]["user"], failed["data"]["reason"]) == (ALICE, "drift")
        assert (await h.request(1)).state == "revoked"
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1")
        queued = [r for r in await _outbox(h) if QUEUED in r["text"]]
        assert len(queued) == 3 and {r["status"] for r in queued} == {"dropped"}, queued
        assert all("the re-add of D-1 was given up (failed)" in r["last_error"] for r in queued), queued
        assert not _to_alice(slack_api, QUEUED) and not _dm(slack_api, SAM, QUEUED)
        [ended] = _to_alice(slack_api, "the grant is ended")
        assert "the provider refused to add them back" in ended, ended
        assert len(_dm(slack_api, SAM, "the grant is ended")) == 1
        assert ALICE not in okta.member_emails(gid) and not await h.events("membership.added")
