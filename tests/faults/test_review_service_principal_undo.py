"""A review's removal of an Entra service principal can be rolled back like any other (SPEC §7 Rollback): two
security members undo it and the principal is back in the group. A principal is no person of the directory: the
undo's "only an active person" guard judges it by its snapshot, not as a missing user."""

from __future__ import annotations

from pathlib import Path

from bot.bootstrap import build_app
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier


async def test_the_removal_of_a_service_principal_can_be_undone(
        database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1))
    graph.add_member(world.entra_group, "bob@example.com")
    spid = graph.add_service_principal("deploy-pipeline", owners=("pat.lead@example.com",))
    graph.add_member(world.entra_group, spid)
    async with build_app(world.settings(), clock=MutableClock(), notifier=RecordingNotifier()) as app:
        sam = await app.service.identify("sam.sec@example.com")
        sasha = await app.service.identify("sasha.sec@example.com")
        pat = await app.service.identify("pat.lead@example.com")
        assert sam is not None and pat is not None and sasha is not None
        reply = await app.service.handle_text(sam, "review start ops-review")
        assert reply.ok, reply.text
        async with app.store.read() as repo:
            items = await repo.items(1)
        (sp,) = [i for i in items if i.user == f"serviceprincipal:{spid}"]
        reply = await app.service.handle_text(pat, f"remove RV-1 {sp.number} because pipeline retired")
        assert reply.ok, reply.text
        for other in items:
            if other.number != sp.number:
                who = await app.service.identify(other.reviewer if "@" in other.reviewer else "sam.sec@example.com")
                await app.service.handle_text(who, f"keep RV-1 {other.number}")
        reply = await app.service.handle_text(sam, "review close RV-1")
        if "sign-off" in reply.text:
            reply = await app.service.handle_text(sasha, "approve RV-1")
        await app.service.sweep()
        async with app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == sp.number)
        assert item.outcome == "removed", (item.state, item.outcome)
        assert spid not in list(graph.members[world.entra_group])
        # the pipeline was still needed: the security team rolls the removal back
        reply = await app.service.handle_text(sam, f"review undo RV-1 {sp.number} because pipeline still deploys")
        assert reply.ok, reply.text
        reply = await app.service.handle_text(sasha, f"approve RV-1 {sp.number}")
        assert reply.ok, reply.text
        await app.service.sweep()
        assert spid in list(graph.members[world.entra_group])
