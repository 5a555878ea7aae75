"""The live check of a decision on a few items asks the provider about those people, not for the group's members
(SPEC §7): a reviewer's click decides one item, and listing a group of 10,000 at Graph is eleven requests of 999
members, a third of a second at the stand-in, for each click (bench/bench_review_10k.py). A decision on more than
five members of a group, and a look at a batch of more, still lists the group (once for every reviewer asking at
the same time). Through the Graph stand-in (pages of two members), on SQLite and PostgreSQL."""

from __future__ import annotations

from bot.bootstrap import build_app
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier

PAT = "pat.lead@example.com"
CROWD = [f"crowd{i}@example.com" for i in range(12)]


async def test_a_decision_on_one_item_asks_about_that_person_only(
        database_url: str, tmp_path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1))
    for email in CROWD:
        graph.add_user(email, department="Engineering", manager=PAT)
        graph.add_member(world.entra_group, email)
    async with build_app(world.settings(), clock=MutableClock(), notifier=RecordingNotifier()) as app:
        async def say(who: str, words: str):  # type: ignore[no-untyped-def]
            person = await app.service.identify(who)
            assert person is not None, who
            return await app.service.handle_text(person, words)

        assert (await say("sam.sec@example.com", "review start ops-review")).ok
        async with app.store.read() as repo:
            number = {i.user: i.number for i in await repo.items(1)}
        with graph.lock:  # crowd0 is taken out of the group by other means
            graph.members[world.entra_group].remove(next(u for u, v in graph.users.items()
                                                         if v["mail"] == CROWD[0]))

        def listings() -> int:
            return len(graph.received("GET", f"/groups/{world.entra_group}/members"))

        before = listings()
        kept = await say(PAT, f"keep RV-1 {number[CROWD[1]]}")
        assert kept.ok, kept.text
        refused = await say(PAT, f"remove RV-1 {number[CROWD[0]]}")
        assert not refused.ok and refused.rule == "gone", refused.text
        chosen = await say(PAT, f"keep RV-1 {number[CROWD[2]]}-{number[CROWD[6]]}")  # five: still one by one
        assert chosen.ok and "5 item(s)" in chosen.text, chosen.text
        assert listings() == before, "a decision on five members or fewer listed the group"
        assert graph.received("GET", "/memberOf")  # each person's own groups were asked for

        rest = await say(PAT, "keep RV-1 all")  # six open items: the group is listed
        assert rest.ok and "6 item(s)" in rest.text, rest.text
        assert listings() > before
        decided = {e.data["item"] async for e in app.store.audit_events() if e.type == "review.decided"}
        assert number[CROWD[0]] not in decided and {number[e] for e in CROWD[1:]} <= decided
        (gone,) = [e.data async for e in app.store.audit_events() if e.type == "review.item_gone"]
        assert gone["item"] == number[CROWD[0]], gone


async def test_a_check_that_cannot_reach_graph_says_so_and_takes_the_snapshot(
        database_url: str, tmp_path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    """Graph down: reviewers looking at their batch together (one listing, shared) each get the line saying the
    check could not run, nobody's item is taken for gone, and a click on one item (asked about the person) is
    recorded as the snapshot says; the close checks again."""
    import asyncio

    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1))
    for email in CROWD:
        graph.add_user(email, department="Engineering", manager=PAT)
        graph.add_member(world.entra_group, email)
    async with build_app(world.settings(), clock=MutableClock(), notifier=RecordingNotifier()) as app:
        sam, pat = await app.service.identify("sam.sec@example.com"), await app.service.identify(PAT)
        assert sam is not None and pat is not None
        assert (await app.service.handle_text(sam, "review start ops-review")).ok
        assert (await app.service.handle_text(pat, "review RV-1")).ok  # opened
        async with app.store.read() as repo:
            number = {i.user: i.number for i in await repo.items(1)}
        graph.down()
        try:
            shown = await asyncio.gather(*(app.service.handle_text(pat, "review RV-1") for _ in range(3)))
            kept = await app.service.handle_text(pat, f"keep RV-1 {number[CROWD[1]]}")
        finally:
            graph.up()
        for reply in shown:
            assert reply.ok and f"live check of entra/{world.entra_group} failed" in reply.text, reply.text
            assert "GONE" not in reply.text, reply.text
        assert kept.ok, kept.text
        assert [e.data["item"] async for e in app.store.audit_events() if e.type == "review.decided"] == [
            number[CROWD[1]]]
        assert [e async for e in app.store.audit_events() if e.type == "review.item_gone"] == []
