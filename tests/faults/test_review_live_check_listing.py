"""The live check (SPEC §7) reads the group's members as the review's snapshot did, from the group's listing:
an address may name one account there and another when Graph is asked about it. When Graph cannot be reached,
each look says so and takes the snapshot. Through the Graph stand-in (pages of two members), on SQLite and
PostgreSQL."""

from __future__ import annotations

from bot.bootstrap import build_app
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier

PAT = "pat.lead@example.com"
GUEST = "bob@partner.com"
CROWD = [f"crowd{i}@example.com" for i in range(12)]


async def test_a_guest_whose_mail_is_a_members_upn_is_judged_as_the_listing_names_it(
        database_url: str, tmp_path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    """A guest in the group whose mail is also a member account's UPN (a tenant that verified a partner's domain):
    the group's listing names the guest by that mail, and asked about by the address, Graph would answer with the
    member account, in no group. The live check reads the listing: the guest's removal is recorded and runs."""
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1))
    guest = graph.add_user(GUEST, upn="bob_partner.com#EXT#@contoso.onmicrosoft.com", manager=PAT,
                           department="Engineering")
    graph.add_member(world.entra_group, guest)
    graph.add_user("bob.member@partner.com", upn=GUEST)  # the member account signing in as bob@partner.com
    async with build_app(world.settings(), clock=MutableClock(), notifier=RecordingNotifier()) as app:
        async def say(who: str, words: str):  # type: ignore[no-untyped-def]
            person = await app.service.identify(who)
            assert person is not None, who
            return await app.service.handle_text(person, words)

        assert (await say("sam.sec@example.com", "review start ops-review")).ok
        async with app.store.read() as repo:
            (item,) = [i for i in await repo.items(1) if i.user == GUEST]
        removed = await say(PAT, f"remove RV-1 {item.number} because left the project")
        assert removed.ok, removed.text
        closed = await say("sam.sec@example.com", "review close RV-1")
        assert closed.ok and "removed 1" in closed.text, closed.text
        await app.service.sweep()
        assert [e async for e in app.store.audit_events() if e.type == "review.item_gone"] == []
        assert guest not in graph.members[world.entra_group], "the guest kept the access the reviewer removed"


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
