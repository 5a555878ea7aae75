"""A service principal in an Entra group under review can be certified (SPEC §7: "every membership of the
managed groups in its scope"; a service account is reviewed by its owner) and is never recorded as gone
while it is still in the group.

The live checks (handlers/reviews/decide.py ``left_groups``, used by ``decide`` and the close's
``_left_undecided``) compare each item's user with ``list_members`` of the group. At Entra the snapshot
(``snapshot_members``) lists a service principal as ``serviceprincipal:<id>``, but ``list_members`` skips every
member that is not a user. So each service principal item "left the group" at every live check: its owner's
``keep``/``remove`` is refused ("gone", ``review.item_gone``), and the close's default never applies. The
certification records a privileged service principal as gone although it is still a member, and nobody ever
reviews it. A correct product compares like with like (the principal is still there) and records the owner's
decision."""

from __future__ import annotations

from pathlib import Path

from bot.bootstrap import build_app
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier


async def test_the_owner_keeps_a_service_principal_still_in_the_group(
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
        assert reply.ok and "2 item(s)" in reply.text, reply.text
        async with app.store.read() as repo:
            (sp,) = [i for i in await repo.items(1) if i.user == f"serviceprincipal:{spid}"]
        assert sp.reviewer == "pat.lead@example.com", sp.reviewer

        reply = await app.service.handle_text(pat, f"keep RV-1 {sp.number} because deploys production")
        events = [e.as_dict() async for e in app.store.audit_events()]
        gone = [e for e in events if e["type"] == "review.item_gone"]
        assert spid in [m for m in graph.members[world.entra_group]]  # still a member
        assert reply.ok and not gone, (reply.text, gone)
        decided = [e for e in events if e["type"] == "review.decided" and e["data"]["item"] == sp.number]
        assert [e["data"]["decision"] for e in decided] == ["keep"]
