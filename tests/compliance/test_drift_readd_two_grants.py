"""A drift re-add queued for one of two grants of the same group (SPEC §3.6): when the grant it was planned for
ends while it waits, the other grant still backs the membership. The re-add is carried out, not dropped, the end
of the one grant does not take the holder out, and the finding closes ``restored`` with the grant that backs the
membership (the holder told so), not ``ended``. Through Okta's stand-in, which answers the first add 503; on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bot.bootstrap import App, build_app
from bot.settings import Settings
from handlers.sweeps import sweep
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples, okta_group

ALICE, SAM = "alice@example.com", "sam.sec@example.com"
QUEUED = "adding them back is queued"


async def test_a_queued_readd_another_running_grant_backs_lands_restored(database_url, tmp_path: Path):
    with OktaStandIn() as okta:
        okta_app = okta_group(okta, database_url, tmp_path,  # two profiles granting the same Okta group
                              profiles=("sg-prod-db-read", "sg-analytics-read"))
        gid, alice, files, settings = okta_app.gid, okta_app.user, okta_app.files, okta_app.settings
        clock, notifier = MutableClock(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=notifier) as app:
            h = Harness(app, clock, notifier, files)
            for n, line in ((1, "request prod-db-read for 30m because INC-7 page"),
                            (2, "request analytics-read for 1d because reports")):  # both auto-approved
                r = await h.say(ALICE, line)
                assert r.ok and (await h.request(n)).state == "active", r.text
            path = f"/groups/{gid}/users/{alice}"
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
                okta.path_faults[path] = Fault("status", status=503)
            h.clock.advance(minutes=1)
            await sweep(h.app.deps)
            (detected,) = await h.events("drift.detected")
            filed = detected["data"]["request_id"]
            other = "REQ-1" if filed == "REQ-2" else "REQ-2"
            assert ALICE not in okta.member_emails(gid) and not await h.events("membership.added")
            okta.clear_path_faults()

            h.clock.advance(minutes=2)
            r = await h.say(ALICE, f"release {filed}")  # the grant the re-add was planned for ends; the other runs
            assert r.ok, r.text
            assert not okta.received("DELETE", path), "the release took her out although another grant holds it"
            h.clock.advance(minutes=2)
            await sweep(h.app.deps)
            assert ALICE in okta.member_emails(gid)
            assert not await h.events("membership.add_dropped")
            (added,) = await h.events("membership.added")
            assert added["data"]["reason"] == "drift"
            (resolved,) = await h.events("drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("restored", other), resolved
            assert any("added back" in n.text and other in n.text for n in notifier.to(ALICE)), notifier.to(ALICE)
            assert any("added back" in n.text for n in notifier.to(SAM, "drift")), notifier.to(SAM)

            h.clock.advance(minutes=2)
            await sweep(h.app.deps)  # nothing left to settle: she stays, the finding stays resolved
            assert ALICE in okta.member_emails(gid) and len(await h.events("drift.resolved")) == 1


@asynccontextmanager
async def _two_grants(database_url: str, tmp_path: Path
                      ) -> AsyncIterator[tuple[Harness, OktaStandIn, Settings, str]]:
    """Alice's two running grants of one Okta group (two profiles point at it), Alice removed there by hand, and
    Okta answering her re-add 503 for now."""
    with OktaStandIn() as okta:
        gid = okta.add_group("prod-db-read")
        alice = okta.add_user(ALICE, department="Engineering")
        files = copy_examples(tmp_path)
        text = files.policy.read_text()
        for group in ("sg-prod-db-read", "sg-analytics-read"):
            text = text.replace(f"    provider: directory\n    group: {group}\n",
                                f"    provider: okta\n    group: {gid}\n", 1)
        files.policy.write_text(text)
        settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory),
                            env={}, identity="directory", okta_url=okta.url, okta_token=okta.token)
        clock, notifier = MutableClock(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=notifier) as app:
            h = Harness(app, clock, notifier, files)
            for n, line in ((1, "request prod-db-read for 30m because INC-7 page"),
                            (2, "request analytics-read for 1d because reports")):
                r = await h.say(ALICE, line)
                assert r.ok and (await h.request(n)).state == "active", r.text
            path = f"/groups/{gid}/users/{alice}"
            with okta.lock:
                okta.members[gid].remove(alice)
                okta.path_faults[path] = Fault("status", status=503)
            h.clock.advance(minutes=1)
            yield h, okta, settings, gid


@contextmanager
def _other_process(settings: Settings, clock: MutableClock, notifier: RecordingNotifier
                   ) -> Iterator[Callable[[Callable[[App], Awaitable[Any]]], Any]]:
    """Another process on the same database and providers, started now (its start-up repair runs now, not in the
    middle of what the test interleaves it with): call it with what it does, which runs to its end at once."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    opened = build_app(settings, clock=clock, notifier=notifier)
    app = asyncio.run_coroutine_threadsafe(opened.__aenter__(), loop).result(60)
    try:
        yield lambda act: asyncio.run_coroutine_threadsafe(act(app), loop).result(120)
    finally:
        asyncio.run_coroutine_threadsafe(opened.__aexit__(None, None, None), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("when", ["planned", "told"])
async def test_a_readd_whose_grant_ends_while_another_backs_it_is_told_queued(database_url, tmp_path: Path,
                                                                              when: str):
    """The grant the re-add was planned for is released by another process just after the re-add is planned
    (before Okta's "not yet"), or just after the notice that it is queued is written (before it is delivered):
    the re-add goes on for the other grant, so Alice and the team are told it is queued, naming that grant."""
    async with _two_grants(database_url, tmp_path) as (h, okta, settings, gid):
        theirs = RecordingNotifier()
        engine = h.app.store.engine.sync_engine
        state: dict[str, Any] = {"ready": False, "fired": False, "filed": None}
        ran: list[Any] = []

        async def release(other: App) -> None:
            async with other.store.read() as repo:
                readd = await repo.get_state("drift_readd:1")
            assert readd is not None
            state["filed"] = readd["request_id"]
            person = await other.service.identify(ALICE)
            assert person is not None
            ran.append(await other.service.handle_text(person, f"release {readd['request_id']}"))

        def ready(statement: str, parameters: Any) -> bool:
            if when == "planned":  # the re-add's state is written with its plan
                return statement.startswith("INSERT INTO compliance_state") and "drift_readd:1" in str(parameters)
            return statement.startswith("INSERT INTO notice_outbox") and QUEUED in str(parameters)

        with _other_process(settings, h.clock, theirs) as other:
            def listener(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                if state["fired"]:
                    return
                if not state["ready"]:
                    state["ready"] = ready(statement, parameters)
                    return
                if statement.startswith("BEGIN IMMEDIATE") or "pg_advisory_xact_lock" in statement:
                    state["fired"] = True
                    other(release)

            event.listen(engine, "before_cursor_execute", listener)
            try:
                await sweep(h.app.deps)
            finally:
                event.remove(engine, "before_cursor_execute", listener)
        assert len(ran) == 1 and ran[0].ok, ran
        filed = state["filed"]
        other_grant = "REQ-1" if filed == "REQ-2" else "REQ-2"
        assert (await h.request(int(filed[4:]))).state == "released"
        assert ALICE not in okta.member_emails(gid) and not await h.events("membership.add_dropped")
        delivered = [n for notifier in (h.notifier, theirs) for n in notifier.notices]
        queued = [n for n in delivered if QUEUED in n.text]
        assert [n.recipient for n in queued if n.recipient == ALICE] == [ALICE], delivered
        assert [n.recipient for n in queued if n.recipient == SAM] == [SAM], delivered
        if when == "planned":  # told with the grant that backs it now
            assert all(f"holds {other_grant}" in n.text for n in queued), [n.text for n in queued]

        okta.clear_path_faults()
        h.clock.advance(minutes=2)
        await sweep(h.app.deps)  # the re-add lands, backed by the other grant
        assert ALICE in okta.member_emails(gid)
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("restored", other_grant), resolved


async def test_a_readd_refused_for_good_after_its_grant_ended_ends_the_grant_that_backs_it(database_url,
                                                                                          tmp_path: Path):
    """The grant the re-add was planned for is released while the re-add waits; Okta then refuses the re-add for
    good (400). The other grant still runs, so the re-add was for it: the refusal ends that grant, as it would end
    the grant the re-add was planned for (``grant.revoked`` reason ``drift``), and the finding closes ``ended`` with
    it, in the sweep that reads the refusal. Not closed as if no grant backed the membership, with Alice left out of
    the group while a grant of hers runs until a later sweep finds her missing again."""
    async with _two_grants(database_url, tmp_path) as (h, okta, _settings, gid):
        await sweep(h.app.deps)  # D-1: the re-add queued (503)
        (detected,) = await h.events("drift.detected")
        filed = detected["data"]["request_id"]
        other = "REQ-1" if filed == "REQ-2" else "REQ-2"
        r = await h.say(ALICE, f"release {filed}")
        assert r.ok, r.text
        okta.path_faults[next(iter(okta.path_faults))] = Fault("status", status=400)
        h.clock.advance(minutes=2)
        report = await sweep(h.app.deps)  # the retry is refused for good; the drift pass reads it
        assert len(await h.events("membership.add_failed")) == 1
        assert (await h.request(int(other[4:]))).state == "revoked"
        (revoked,) = await h.events("grant.revoked")
        assert (revoked["request_id"], revoked["data"]["reason"], revoked["data"]["id"]) == (other, "drift", "D-1")
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", other), resolved
        said = f"D-1: {ALICE} holds {other} but was not in okta/{gid}: the grant is ended"
        assert any(said in line for line in report.drift_settled), report.drift_settled
        assert any(said in n.text for n in h.notifier.to(ALICE)), [n.text for n in h.notifier.to(ALICE)]
        assert any(said in n.text for n in h.notifier.to(SAM, "drift")), [n.text for n in h.notifier.to(SAM)]
        okta.clear_path_faults()
        h.clock.advance(minutes=2)
        await sweep(h.app.deps)  # no grant runs: nothing more is found, added or ended
        assert len(await h.events("drift.detected")) == 1 and len(await h.events("drift.resolved")) == 1
        assert len(await h.events("grant.revoked")) == 1 and not await h.events("membership.added")
        assert ALICE not in okta.member_emails(gid)
