"""A service principal taken out of its group before its removal runs (SPEC §7 live check): the check before the
removals reads the group's members as Graph lists them, principals included, so the item is `not removed` with
review.removal_skipped, and no membership.removed is recorded for a removal that did not happen."""

from __future__ import annotations

from pathlib import Path

from bot.bootstrap import build_app
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier


async def test_a_service_principal_that_left_is_not_recorded_removed(
        database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> None:
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1))
    graph.add_member(world.entra_group, "bob@example.com")
    spid = graph.add_service_principal("deploy-pipeline", owners=("pat.lead@example.com",))
    graph.add_member(world.entra_group, spid)
    async with build_app(world.settings(), clock=MutableClock(), notifier=RecordingNotifier()) as app:
        sam = await app.service.identify("sam.sec@example.com")
        pat = await app.service.identify("pat.lead@example.com")
        assert sam is not None and pat is not None
        assert (await app.service.handle_text(sam, "review start ops-review")).ok
        async with app.store.read() as repo:
            items = await repo.items(1)
        (sp,) = [i for i in items if i.user == f"serviceprincipal:{spid}"]
        reply = await app.service.handle_text(pat, f"remove RV-1 {sp.number} because pipeline retired")
        assert reply.ok, reply.text
        for other in items:
            if other.number != sp.number:
                who = await app.service.identify(other.reviewer if "@" in other.reviewer else "sam.sec@example.com")
                await app.service.handle_text(who, f"keep RV-1 {other.number}")
        with graph.lock:  # an admin deletes the pipeline's membership before the close
            graph.members[world.entra_group].remove(spid)
        reply = await app.service.handle_text(sam, "review close RV-1")
        if "sign-off" in reply.text:
            sasha = await app.service.identify("sasha.sec@example.com")
            reply = await app.service.handle_text(sasha, "approve RV-1")
        await app.service.sweep()
        events = [e.as_dict() async for e in app.store.audit_events()]
        removed = [e["data"] for e in events if e["type"] == "membership.removed" and spid in str(e["data"])]
        skipped = [e["data"] for e in events if e["type"] == "review.removal_skipped"]
        async with app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == sp.number)
        assert spid not in graph.members[world.entra_group]
        assert item.state != "removed" and not removed, (
            f"the SP had left before the release, yet: item {item.state!r} ({item.outcome!r}, removed_at "
            f"{item.removed_at}), membership.removed={removed}, review.removal_skipped={skipped}; {reply.text}")
