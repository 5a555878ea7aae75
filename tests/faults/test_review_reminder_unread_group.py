"""A reviewer's reminder when Graph cannot list the campaign's group (SPEC §7): the live check could not run, so
the reminder counts the batch's undecided items as recorded (a group that cannot be read is never taken for
"everyone left") and the sweep's output says which group it could not check; once Graph answers again, an item
whose person left the group is no longer counted (the escalation does not hand it over). SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from bot.bootstrap import build_app
from handlers.sweeps import sweep
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import MEMBERS, OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier

SAM, BOB = "sam.sec@example.com", "bob@example.com"


async def test_a_group_graph_cannot_list_keeps_the_reminders_count_as_recorded_and_says_so(
        database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    review = OPS_REVIEW.replace("    duration: 10bd\n", "    duration: 10bd\n    remind_after: 3bd\n")
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", review, 1))
    for email in MEMBERS:  # standing members at Graph, no grant behind them
        graph.add_member(world.entra_group, email)
    clock = MutableClock()
    async with build_app(world.settings(), clock=clock, notifier=RecordingNotifier()) as app:
        sam = await app.service.identify(SAM)
        assert sam is not None
        assert (await app.service.handle_text(sam, "review start ops-review")).ok
        async with app.store.read() as repo:
            items = await repo.items(1)
        bob = next(i for i in items if i.user == BOB)
        reviewer, bob = bob.reviewer, bob.number
        mine = sorted(i.number for i in items if i.reviewer == reviewer)
        assert len(mine) >= 2, [(i.user, i.reviewer) for i in items]
        with graph.lock:  # bob leaves the group at Graph after the campaign started
            graph.members[world.entra_group].remove(graph.user_id(BOB))

        graph.down(status=403)  # Graph refuses every call: the live check cannot run
        try:
            clock.advance(days=6)
            report = await sweep(app.deps, drift=False)
        finally:
            graph.up()
        reminded = [e.as_dict() async for e in app.store.audit_events() if e.type == "review.reminded"]
        assert {e["data"]["reviewer"]: e["data"]["items"] for e in reminded}[reviewer] == mine  # as recorded
        unread = [line for line in report.lines() if line.startswith("could not check")]
        assert len(unread) == 1 and f"RV-1: live check of entra/{world.entra_group} failed" in unread[0], unread
        assert "its reminders count the items as recorded" in unread[0], unread

        clock.advance(days=5)  # Graph answers again: bob's item needs no decision, the escalation hands over the rest
        report = await sweep(app.deps, drift=False)
        [escalated] = [e.as_dict() async for e in app.store.audit_events() if e.type == "review.escalated"]
        assert escalated["data"]["items"] == [n for n in mine if n != bob], report.lines()
        assert not [line for line in report.lines() if line.startswith("could not check")], report.lines()
