"""SPEC §7 Close: "removals run through the provisioning path (... a standing membership is removed with
membership.removed reason review)"; the certification and review.closed say what happened.

A review names a service principal member ``serviceprincipal:<object id>`` (its snapshot). Its owner's
``remove`` reaches the removal path, which at Entra takes that object id as the member to remove
(DELETE /groups/{gid}/members/{spid}/$ref); looked up as a user address it would be found nowhere, taken as
"not in the group", and a removal that did not happen recorded."""

from __future__ import annotations

from pathlib import Path

from bot.bootstrap import build_app
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier


async def test_a_service_principal_the_review_removes_leaves_the_group(
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
            sasha = await app.service.identify("sasha.sec@example.com")
            reply = await app.service.handle_text(sasha, "approve RV-1")
        await app.service.sweep()
        events = [e.as_dict() async for e in app.store.audit_events()]
        removed = [e["data"] for e in events if e["type"] == "membership.removed"]
        async with app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == sp.number)
        still = spid in list(graph.members[world.entra_group])
        recorded_removed = item.state == "removed" or any(spid in str(d.get("user")) for d in removed)
        assert not (still and recorded_removed), (reply.text, item.state, item.outcome, removed, still)
