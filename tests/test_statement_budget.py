"""What a click costs the database: statements per command, and on PostgreSQL the round trips on the wire.

Counts are deterministic where times are not: each command of a lifecycle (request, four approvals,
expiry) and a Teams card's refresh and approve get an upper bound, so a change that adds
statements or round trips fails here. Statements are counted with SQLAlchemy's
``before_cursor_execute``; round trips by a relay in front of PostgreSQL (``tests/wire.py``), which
also sees what no SQLAlchemy event does: BEGIN, COMMIT, pings and prepares.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from bot.bootstrap import build_app
from bot.settings import Settings
from bot.teams.invoke import InvokeHandler, click_scope
from bot.teams.notifier import TeamsNotifier
from handlers.sweeps import SweepReport, expire_due
from tests.wire import WireCounter

ROOT = Path(__file__).resolve().parent.parent
CHAIN = ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com")

# (statements on SQLite, statements on PostgreSQL, round trips on PostgreSQL); SQLite's BEGIN and
# COMMIT are statements of their own (reads send neither). A refresh counts the sender's
# identification, inside the click's one look-up scope. Before this budget: a refresh by an approver
# took 16 / 11 / 37, by the requester 8 / 5 / 22, an approve 25 / 19 / 54 and a cycle 137 / 108 / 321.
# The Teams ids a card refreshes for are kept in memory (bot/teams/notifier.py): a refresh reads none,
# and a read of the ids still unknown names fewer people, a statement asyncpg prepares once more on a
# connection (two more round trips in a cycle's first rounds, none once every size was seen).
BUDGET = {
    # a card shows no event list: the refresh reads none; the re-route brake's state is read only for a request
    # it marked held (requests.reroute_held, handlers/compliance/reroute_brake.py): none here
    # the request and its decisions are one statement (an outer join): one round trip a click less
    "refresh by an approver": (2, 2, 2),
    "refresh by the requester": (2, 2, 2),
    # a decision judges who may see the request on what it reads anyway, and answers with the request as its
    # transaction committed it (no read back after the commit); whom the step asked is read with the request
    # (requests.asked, written with approval.requested), not from its events
    "approve by card": (8, 8, 10),
    # the embedded directory's membership changes each move the overlay version (a trigger: no statement),
    # and the overlay is read again once after them, its version before and after (store/overlay.py):
    # two statements that keep a click's read of the overlay one row, however many memberships changed
    # a request reads whether its requester was terminated by the leaver sweep after they were identified (one
    # indexed read in the submission's transaction)
    # the expiry notice goes through the stored outbox (handlers/outbox.py): written with the expiry (1), found
    # due by a read (1), taken under the write lock (BEGIN, the notice, its lease: 3), marked sent (BEGIN, the
    # mark: 2), and a last read finds nothing more due (1): 8 statements that make the notice survive a crash;
    # provisioning and the grant's end match groups by their resolved ids (the stored ids, read 4 times);
    # a request's and each decision's answer is drawn from what its transaction committed (10 reads less), and
    # each decision reads whom its step asked with the request (4 reads of the request's events less)
    "lifecycle cycle": (95, 95, 123),
}


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 8, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@dataclass
class Tally:
    statements: int = 0
    trips: int = 0


class Meter:
    def __init__(self, engine: object, wire: WireCounter | None) -> None:
        self.wire = wire
        self.statements = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: object) -> None:
        self.statements += 1

    @contextlib.contextmanager
    def measure(self, tally: Tally) -> Iterator[None]:
        s0, w0 = self.statements, self.wire.trips if self.wire else 0
        yield
        tally.statements += self.statements - s0
        tally.trips += (self.wire.trips if self.wire else 0) - w0


@pytest.fixture
def counted_url(database_url: str) -> Iterator[tuple[str, WireCounter | None]]:
    if database_url.startswith("sqlite"):
        yield database_url, None
        return
    with WireCounter(database_url) as wire:
        yield wire.url, wire


async def test_a_cycle_and_a_click_stay_within_their_statement_and_round_trip_budget(
        counted_url: tuple[str, WireCounter | None]) -> None:
    url, wire = counted_url
    clock = Clock()
    settings = Settings(database_url=url, policy=str(ROOT / "examples/policy.yaml"),
                        directory=str(ROOT / "examples/directory.yaml"))
    async with build_app(settings, clock=clock) as app:
        service = app.service
        teams = TeamsNotifier(app, None)  # type: ignore[arg-type]
        invokes = InvokeHandler(app, teams.refresh_ids, teams.user_ids)
        bob = await service.identify("bob@example.com")
        approvers = [await service.identify(a) for a in CHAIN]
        assert bob is not None and all(approvers)
        async with app.store.write() as repo:
            for i, email in enumerate((*CHAIN, "bob@example.com")):
                await repo.save_address("teams", email, {"user": {"id": f"29:user-{i}"}}, clock.now())
        meter = Meter(app.store.engine.sync_engine, wire)
        tallies = {name: Tally() for name in BUDGET}
        for warm in (True, False):  # the first round fills the pool and the prepared-statement caches
            counted = {name: Tally() for name in BUDGET} if warm else tallies
            cycle, refresh_a, refresh_r, approve = (counted["lifecycle cycle"], counted["refresh by an approver"],
                                                    counted["refresh by the requester"], counted["approve by card"])
            with meter.measure(cycle):
                reply = await service.handle_text(bob, "request prod-db-read for 1h because INC-1 budget")
            assert reply.ok and reply.request is not None, reply.text
            n = reply.request.number
            with meter.measure(refresh_a), click_scope("refresh"):  # the sender identified within the click
                sender = await app.deps.directory.get_user(CHAIN[0])
                card = (await invokes.handle(sender, "refresh", {"request_id": n})).card  # type: ignore[arg-type]
            assert [a["verb"] for a in card["actions"]] == ["approve", "deny"]
            assert len(card["refresh"]["userIds"]) == 4
            with meter.measure(refresh_r), click_scope("refresh"):
                sender = await app.deps.directory.get_user("bob@example.com")
                card = (await invokes.handle(sender, "refresh", {"request_id": n})).card  # type: ignore[arg-type]
            assert "actions" not in card
            with meter.measure(approve):
                await invokes.handle(approvers[0], "approve", {"request_id": n})  # type: ignore[arg-type]
            for person in approvers[1:]:
                with meter.measure(cycle):
                    assert (await service.handle_text(person, f"approve REQ-{n}")).ok  # type: ignore[arg-type]
            clock.at += timedelta(hours=1, seconds=1)
            report = SweepReport(as_of=clock.at, dry_run=False)
            with meter.measure(cycle):
                await expire_due(app.deps, report)
            assert report.expired == [f"REQ-{n}"]
        tallies["lifecycle cycle"].statements += tallies["approve by card"].statements
        tallies["lifecycle cycle"].trips += tallies["approve by card"].trips
    index = 0 if wire is None else 1
    over = {name: (t.statements, t.trips) for name, t in tallies.items()
            if t.statements > BUDGET[name][index] or (wire is not None and t.trips > BUDGET[name][2])}
    assert not over, {name: (got, BUDGET[name]) for name, got in over.items()}
