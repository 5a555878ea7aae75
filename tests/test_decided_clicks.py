"""Clicks on a card whose decision is already taken are answered from a read, not each under the write lock.

A card seen by a whole team, or one approver's impatient clicks: every click after the one that decides finds
nothing to take. Each used to wait its turn for the store's write lock (and on PostgreSQL its advisory lock) only
to read that; they now wait for the decision under way to commit and are answered from what it left, with the
same answers. A click whose answer is recorded (someone not in the chain, a self-approval) or that may still be
taken goes to the write lock as before. Counted, not timed: write transactions are the statements that open one
(SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's advisory write lock), seen by SQLAlchemy's statement listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, Harness, MutableClock, RecordingNotifier, copy_examples, harness, statements
from tests.test_provider_unavailable import ANN as ann
from tests.test_provider_unavailable import BEN as ben
from tests.test_provider_unavailable import PAT as pat
from tests.test_provider_unavailable import manager_team

BOB, MARK, DANA, DEV = "bob@example.com", "mark.mgr@example.com", "dana.dba@example.com", "dev.dba@example.com"
CAROL, SAM = "carol@example.com", "sam.sec@example.com"
# the types a card's "nothing to decide" answer names the ending of (handlers/approvals.py closed_why)
ENDING_TYPES = ("request.extension_requested", "grant.revoked", "grant.expired", "grant.released",
                "request.cancelled", "request.failed", "request.denied", "approval.denied", "request.approved")
FRANK = "frank@example.com"  # in no step of prod-db-read's chain, not in the security team


def write_transactions(app: Any) -> contextlib.AbstractContextManager[list[str]]:
    """The write transactions opened meanwhile (one entry each)."""
    return statements(app, lambda s, _: s.startswith("BEGIN IMMEDIATE") or "pg_advisory_xact_lock" in s)


@contextlib.asynccontextmanager
async def okta_team(okta: OktaStandIn, database_url: str, tmp_path: Path, version: str
                    ) -> AsyncIterator[tuple[Any, Callable[[str, str], Awaitable[Any]]]]:
    """The bot on Okta (the stand-in) with Ann and Ben under Pat, whose ``tools`` profile Pat approves
    (tests/test_provider_unavailable.py ``manager_team``): the app, and ``say(email, text)`` as that person."""
    policy, _ = manager_team(okta, tmp_path, version)
    settings = Settings(database_url=database_url, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                        identity="okta", okta_url=okta.url, okta_token=okta.token)
    async with build_app(settings) as app:
        async def say(email: str, text: str) -> Any:
            person = await app.service.identify(email)
            assert person is not None, email
            return await app.service.handle_text(person, text)

        yield app, say


async def test_a_burst_of_clicks_after_the_decision_takes_no_write_lock(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request prod-db-read for 1h because INC-1 x")
        with write_transactions(h.app) as opened:
            replies = await asyncio.gather(*(h.say(MARK, "approve REQ-1") for _ in range(30)))
        assert sum(r.ok for r in replies) == 1
        assert {r.rule for r in replies if not r.ok} == {"already-decided"}
        # each shows the request as it stands (the card's answer needs no read of its own), the same whether the
        # click was answered under the lock or from a read
        views = {r.request for r in replies if not r.ok}
        assert len(views) == 1 and None not in views
        [view] = views
        assert view.state == "pending" and [s.approved_by for s in view.steps][:2] == [(MARK,), ()]
        # the decision (and the notices it queues) and at most one click that found it taken before the others
        # knew: not one write transaction a click
        decided = len(opened)
        assert decided <= 4, opened
        assert len([e for e in await h.events("approval.granted")]) == 1

        # later clicks on the same card: answered from a read once a click found nothing to decide
        with write_transactions(h.app) as opened:
            again = [await h.say(MARK, "approve REQ-1") for _ in range(5)]
        assert [r.rule for r in again] == ["already-decided"] * 5
        assert opened == []
        assert {r.request for r in again} == {view}


async def test_clicks_whose_answer_is_recorded_still_take_the_lock(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request prod-db-read for 1h because INC-1 x")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(MARK, "approve REQ-1")).rule == "already-decided"  # the request is known settled now
        refused = len(await h.events("approval.refused"))
        # someone outside the chain, and the requester: refused and recorded, each, as before
        replies = await asyncio.gather(*(h.say(w, "approve REQ-1") for w in [CAROL, BOB] * 3))
        assert [r.rule for r in replies] == ["unknown-request", "self-approval"] * 3
        assert len(await h.events("approval.refused")) == refused + 6
        # the next step's approvers may still decide: their click goes to the decision, taken once
        replies = await asyncio.gather(*(h.say(w, "approve REQ-1") for w in [DANA, DEV] * 5))
        assert sum(r.ok for r in replies) == 1
        assert {r.rule for r in replies if not r.ok} <= {"already-decided", "step-closed"}
        assert [e["data"]["step"] for e in await h.events("approval.granted")] == [1, 2]
        assert (await h.request(1)).step == 2


async def test_a_settled_request_back_in_its_chain_is_decided_again(database_url, tmp_path):
    """An active grant whose extension is asked waits on its chain again: the clicks of its new round are taken
    (the read first finds a decision to take and hands the click to the write lock)."""
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h because INC-2 deploy")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.request(1)).state == "active"
        assert (await h.say(MARK, "approve REQ-1")).rule == "not-open"
        r = await h.say(BOB, "extend REQ-1 by 1h because INC-2 still deploying")
        assert r.ok, r.text
        assert (await h.request(1)).extension_pending  # back in its chain
        r = await h.say(MARK, "approve REQ-1")
        assert r.ok, r.text
        assert len(await h.events("approval.granted")) == 2
        assert (await h.request(1)).expires_at is not None and not (await h.request(1)).extension_pending
        assert (await h.say(MARK, "approve REQ-1")).rule in {"not-open", "already-decided"}
        assert (await h.say(SAM, "status REQ-1")).ok


def _walked(events: list[Any]) -> Any:
    """The newest event that says why a request waits on no decision, found by walking its whole history."""
    for found in reversed(events):
        if found.type in ENDING_TYPES:
            return found
    return None


async def test_why_a_card_has_nothing_to_decide_rests_on_the_newest_ending_event(database_url, tmp_path):
    """``closed_why`` reads one row (the request's newest event among the ending types), not its whole history: the
    same event a walk of the history finds, in every ending a click can meet."""
    from handlers.approvals import closed_why
    from handlers.records import ENDING_TYPES as KNOWN

    assert set(KNOWN) == set(ENDING_TYPES)
    async with harness(database_url, tmp_path) as h:
        say = h.say
        # one request of a profile at a time: each ends before the next is asked
        await say(BOB, "request staging-admin for 1h because INC-1 a")  # 1: denied
        assert (await say(MARK, "deny REQ-1 because not now")).ok
        await say(BOB, "request staging-admin for 1h because INC-2 b")  # 2: withdrawn
        assert (await say(BOB, "cancel REQ-2")).ok
        await say(BOB, "request staging-admin for 1h because INC-3 c")  # 3: granted, then released
        assert (await say(MARK, "approve REQ-3")).ok
        assert (await say(BOB, "release REQ-3")).ok
        await say(BOB, "request staging-admin for 1h because INC-4 d")  # 4: granted, revoked by security
        assert (await say(MARK, "approve REQ-4")).ok
        assert (await say(SAM, "revoke REQ-4 because leaving the project")).ok
        await say(BOB, "request staging-admin for 1h because INC-5 e")  # 5: granted, then expired
        assert (await say(MARK, "approve REQ-5")).ok
        h.clock.advance(hours=1, seconds=1)
        await h.app.service.sweep()
        await say(BOB, "request staging-admin for 1h because INC-6 f")  # 6: granted, its extension denied
        assert (await say(MARK, "approve REQ-6")).ok
        assert (await say(BOB, "extend REQ-6 by 1h because INC-6 longer")).ok
        assert (await h.request(6)).extension_pending
        assert (await say(MARK, "deny REQ-6 because enough")).ok
        whys = []
        async with h.app.store.read() as repo:
            for n in range(1, 7):
                record = await repo.get_request(n)
                assert record is not None
                newest = await repo.last_ending(n)
                walked = _walked(await repo.events_for(n))
                assert (newest.seq if newest else None) == (walked.seq if walked else None), n
                whys.append(await closed_why(repo, record))
        assert whys[0] == f" (denied by {MARK})" and whys[1] == f" (withdrawn by {BOB})", whys
        assert whys[2] == " (released)" and whys[4] == " (expired)", whys
        assert whys[3] == " (revoked: security) by sam.sec@example.com", whys
        assert whys[5] == f" (denied by {MARK})", whys
        # a click on any of them says the same
        for n, why in enumerate(whys, 1):
            r = await say(MARK, f"approve REQ-{n}")
            assert r.rule in ("not-open", "already-decided"), r.text
            if r.rule == "not-open":
                assert why in r.text and "there is nothing to decide" in r.text


async def test_a_request_and_its_decisions_read_at_once_are_what_reading_them_apart_gives(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request prod-db-read for 1h because INC-1 x")  # 1: three decisions
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(DEV, "approve REQ-1 fine")).ok
        assert (await h.say(SAM, "deny REQ-1 because not this week")).ok
        await h.say(CAROL, "request staging-admin for 1h because INC-2 y")  # 2: none
        async with h.app.store.read() as repo:
            for n in (1, 2):
                record, decisions = await repo.request_with_decisions(n)
                assert record == await repo.get_request(n)
                assert decisions == await repo.decisions(n)
            assert await repo.request_with_decisions(99) == (None, [])
            _, first = await repo.request_with_decisions(1)
        assert [(d.approver, d.decision, d.step) for d in first] == [
            (MARK, "approved", 0), (DEV, "approved", 1), (SAM, "denied", 2)]


@pytest.mark.parametrize("pool_size", [2, 3, 4])
async def test_clicks_answered_from_a_read_leave_the_pool_a_connection(pg_url, tmp_path, pool_size):
    """A small pool (ACCESSBOT_DB_POOL_SIZE): the clicks answered from a read each hold a connection while their
    chain is resolved, which takes a second one; as many of them as the pool holds, each waiting for a second,
    would wait until the pool gives up, every one of them failing (as the decision taken meanwhile). The pool
    keeps one connection free beside them and the write lock's holder."""
    files = copy_examples(tmp_path)
    clock, notifier = MutableClock(), RecordingNotifier()
    settings = Settings(database_url=pg_url, policy=str(files.policy), directory=str(files.directory), env={},
                        db_pool_size=pool_size)
    async with build_app(settings, clock=clock, notifier=notifier) as app:
        h = Harness(app, clock, notifier, files)
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 x")).ok
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(MARK, "approve REQ-1")).rule == "already-decided"  # known settled now
        clicks = [MARK] * 12 + [DANA, FRANK]
        replies = await asyncio.gather(*(h.say(w, "approve REQ-1") for w in clicks), return_exceptions=True)
        failed = [r for r in replies if isinstance(r, BaseException)]
        assert failed == []
        assert [r.rule for r in replies[:12]] == ["already-decided"] * 12  # type: ignore[union-attr]
        assert replies[12].ok and replies[13].rule == "unknown-request"  # type: ignore[union-attr]
        assert [e["data"]["step"] for e in await h.events("approval.granted")] == [1, 2]


async def test_a_click_a_read_hands_to_the_decision_is_looked_up_again_under_the_lock(database_url, tmp_path):
    """The read that answers clicks on a settled request keeps its look-ups to itself: a click it hands on (here
    the approval of an extension: the request waits on its chain again) is decided on the requester, the chain and
    the directory's memberships as looked up under the write lock, not as the read found them before it. Seen in
    the statements: the overlay's version (what the chain's people are looked up with) is read again inside the
    decision's write transaction, before the decision is inserted."""
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h because INC-2 deploy")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(MARK, "approve REQ-1")).rule == "not-open"  # settled: the next click reads first
        assert (await h.say(BOB, "extend REQ-1 by 1h because INC-2 still deploying")).ok
        assert (await h.request(1)).extension_pending
        sent: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            sent.append(" ".join(statement.split()))

        engine = h.app.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            assert (await h.say(MARK, "approve REQ-1")).ok
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        locked = next(i for i, x in enumerate(sent) if x.startswith("BEGIN IMMEDIATE") or "pg_advisory_xact_lock" in x)
        decided = next(i for i, x in enumerate(sent) if x.startswith("INSERT INTO decisions"))
        assert any("FROM compliance_state" in x for x in sent[:locked]), sent  # the read looked up first
        assert any("FROM compliance_state" in x for x in sent[locked:decided]), sent[locked:decided]
        assert len(await h.events("approval.granted")) == 2


async def test_clicks_read_first_when_the_identity_provider_fails_or_the_clicker_is_an_outsider(
        database_url, tmp_path):
    """People from Okta (the stand-in). Once a click found the request settled, the next clicks are answered from a
    read, which looks the requester up at the provider: while that fails, the approver is told the provider did not
    answer and an outsider learns nothing either way (no name, the same answer as for a request that does not exist
    or the provider's), nothing is recorded, and the clicks go through again once Okta answers. An outsider's click
    on the settled request is answered exactly as a request that does not exist, and records nothing."""
    with OktaStandIn() as okta:
        async with okta_team(okta, database_url, tmp_path, "decided-okta-1") as (app, say):
            async def events() -> list[tuple[int, str]]:
                return [(e.seq, e.hash) async for e in app.store.audit_events()]

            assert (await say(ann, "request tools for 2h because INC-1 x")).ok
            assert (await say(pat, "approve REQ-1")).ok
            assert (await say(pat, "approve REQ-1")).rule == "not-open"  # settled: the next clicks read first
            nowhere = await say(ben, "approve REQ-99")
            outsider = await say(ben, "approve REQ-1")
            assert (outsider.rule, outsider.text) == (nowhere.rule, nowhere.text.replace("REQ-99", "REQ-1"))
            before = await events()

            okta.fail_path(f"/users/{ann}", status=500)
            down = await say(pat, "approve REQ-1")
            assert not down.ok and down.rule == "provider-unavailable" and ann not in down.text, down.text
            hidden = await say(ben, "approve REQ-1")
            assert not hidden.ok and ann not in hidden.text
            assert hidden.rule in ("provider-unavailable", "unknown-request"), hidden.text
            assert await events() == before  # nothing recorded while the provider failed
            assert app.deps._deciding == {}  # nothing left waiting

            okta.clear_path_faults()
            assert (await say(pat, "approve REQ-1")).rule == "not-open"
            assert (await say(ben, "approve REQ-1")).rule == "unknown-request"
            assert await events() == before


async def test_clicks_answered_from_a_read_at_once_share_the_read(database_url, tmp_path):
    """A whole team clicking a settled card: the clicks answered from a read at the same time share it
    (handlers/shared_reads.py), each judged on it as its own would have been: on PostgreSQL, 30 clicks read the
    request a few times, not 30. A click after a commit is judged on it: once the request waits on its chain again
    (an extension), a burst decides it once."""
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h because INC-2 deploy")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(MARK, "approve REQ-1")).rule == "not-open"  # settled: the next clicks read first
        reads: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "FROM requests" in statement and "LEFT OUTER JOIN decisions" in statement:
                reads.append(statement)

        engine = h.app.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            with write_transactions(h.app) as opened:
                replies = await asyncio.gather(*(h.say(MARK, "approve REQ-1") for _ in range(30)))
            assert [r.rule for r in replies] == ["not-open"] * 30
            assert {r.text for r in replies} == {replies[0].text} and "nothing to decide" in replies[0].text
            assert opened == []
            if h.app.store.backend == "postgresql":  # reads on their way together (SQLite answers each at once)
                assert 1 <= len(reads) <= 3, len(reads)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert (await h.say(BOB, "extend REQ-1 by 1h because INC-2 still deploying")).ok
        replies = await asyncio.gather(*(h.say(MARK, "approve REQ-1") for _ in range(30)))
        assert sum(r.ok for r in replies) == 1
        assert {r.rule for r in replies if not r.ok} == {"not-open"}  # the extension was granted by the one
        assert len(await h.events("approval.granted")) == 2


async def test_a_click_waiting_for_the_next_shared_read_is_judged_on_look_ups_made_after_it_came(database_url,
                                                                                                 tmp_path):
    """Okta (the stand-in). Clicks on a settled card share a read (handlers/shared_reads.py), and the one sent for
    the clicks that came while another was on its way must look everything up after them: it runs in the context
    of the click whose read ended before it, and must not answer from that click's look-ups. Here Ann's manager
    changes from Pat to Ben while the first read is on its way: Pat's click that came after the change is answered
    as for a request that does not exist (he never decided it, and is no longer in its chain)."""
    with OktaStandIn() as okta:
        async with okta_team(okta, database_url, tmp_path, "decided-okta-2") as (app, say):
            assert (await say(ann, "request tools for 2h because INC-1 x")).ok
            assert (await say(ann, "cancel REQ-1")).ok
            assert (await say(pat, "approve REQ-1")).rule == "not-open"  # settled: the next clicks read first
            ann_id = okta.user_id(ann)
            release = threading.Event()
            okta.hold_path(f"/users/{ann_id}/groups", release, once=True)  # Ann is read, her groups held
            asked = len(okta.received(contains=f"/users/{ann_id}/groups"))
            try:
                first = asyncio.create_task(say(pat, "approve REQ-1"))
                for _ in range(500):
                    if len(okta.received(contains=f"/users/{ann_id}/groups")) > asked:
                        break
                    await asyncio.sleep(0.01)
                with okta.lock:  # Ann's manager is Ben from now on
                    okta.users[ann_id]["profile"]["managerId"] = okta.user_id(ben)
                second = asyncio.create_task(say(pat, "approve REQ-1"))  # comes after the change
                for _ in range(500):
                    if ("decision", 1) in app.deps.shared_reads._next:  # it waits for the next read
                        break
                    await asyncio.sleep(0.01)
                assert ("decision", 1) in app.deps.shared_reads._next and not first.done()
            finally:
                release.set()
            assert (await first).rule == "not-open"  # it came before the change
            late = await second
            assert late.rule == "unknown-request" and ann not in late.text, (late.rule, late.text)
            assert (await say(pat, "approve REQ-1")).rule == "unknown-request"  # alone, now
