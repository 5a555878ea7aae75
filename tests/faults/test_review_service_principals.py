"""An Entra service principal under review (SPEC §7): a review's snapshot names it
``serviceprincipal:<object id>``, and its owner reviews it. The live check judges it by the group's members as
Graph lists them (principals included); its removal and its undo address it by object id; and no removal is
recorded that did not happen. Through the Graph stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.bootstrap import build_app
from handlers.reviews.records import ItemRecord
from tests.faults.conftest import FaultyGraph, FaultyOkta, make_world
from tests.faults.test_review_removals import OPS_REVIEW
from tests.standins.tls import LocalTLS
from tests.support import MutableClock, RecordingNotifier


@dataclass
class Campaign:
    app: Any
    graph: FaultyGraph
    group: str
    spid: str
    sp: ItemRecord  # the principal's item
    items: list[ItemRecord]

    async def say(self, who: str, words: str) -> Any:
        person = await self.app.service.identify(who)
        assert person is not None, who
        return await self.app.service.handle_text(person, words)

    def member(self) -> bool:
        return self.spid in list(self.graph.members[self.group])

    async def item(self) -> ItemRecord:
        async with self.app.store.read() as repo:
            return next(i for i in await repo.items(1) if i.number == self.sp.number)

    async def events(self, kind: str) -> list[dict[str, Any]]:
        return [e.as_dict()["data"] async for e in self.app.store.audit_events() if e.type == kind]

    async def others_kept(self) -> None:
        for other in self.items:
            if other.number != self.sp.number:
                who = other.reviewer if "@" in other.reviewer else "sam.sec@example.com"
                await self.say(who, f"keep RV-1 {other.number}")

    async def close_and_sign(self) -> None:
        reply = await self.say("sam.sec@example.com", "review close RV-1")
        if "sign-off" in reply.text:
            assert (await self.say("sasha.sec@example.com", "approve RV-1")).ok
        await self.app.service.sweep()


@asynccontextmanager
async def principal_campaign(database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta,
                             fault_tls: LocalTLS) -> AsyncIterator[Campaign]:
    """RV-1 of a review over an Entra group holding bob and the principal deploy-pipeline (owner pat.lead)."""
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.files.policy.write_text(world.files.policy.read_text().replace("reviews:\n", OPS_REVIEW, 1))
    graph.add_member(world.entra_group, "bob@example.com")
    spid = graph.add_service_principal("deploy-pipeline", owners=("pat.lead@example.com",))
    graph.add_member(world.entra_group, spid)
    async with build_app(world.settings(), clock=MutableClock(), notifier=RecordingNotifier()) as app:
        c = Campaign(app, graph, world.entra_group, spid, None, [])  # type: ignore[arg-type]
        reply = await c.say("sam.sec@example.com", "review start ops-review")
        assert reply.ok and "2 item(s)" in reply.text, reply.text
        async with app.store.read() as repo:
            c.items = await repo.items(1)
        (c.sp,) = [i for i in c.items if i.user == f"serviceprincipal:{spid}"]
        assert c.sp.reviewer == "pat.lead@example.com", c.sp.reviewer
        yield c


async def test_the_owner_keeps_a_principal_still_in_the_group(database_url, tmp_path, graph, okta, fault_tls):
    """It is not "gone" at the check before the decision (Graph's users-only list does not name it)."""
    async with principal_campaign(database_url, tmp_path, graph, okta, fault_tls) as c:
        reply = await c.say("pat.lead@example.com", f"keep RV-1 {c.sp.number} because deploys production")
        assert reply.ok, reply.text
        assert c.member() and await c.events("review.item_gone") == []
        decided = [d for d in await c.events("review.decided") if d["item"] == c.sp.number]
        assert [d["decision"] for d in decided] == ["keep"]


async def test_a_principal_the_review_removes_leaves_the_group_and_comes_back_by_undo(
        database_url, tmp_path, graph, okta, fault_tls):
    """The removal addresses it by object id (looked up as a user address it was found nowhere, and a removal
    that did not happen was recorded); two security members' undo puts it back (the undo's active-person
    guard judges a principal by its snapshot, not as a missing user)."""
    async with principal_campaign(database_url, tmp_path, graph, okta, fault_tls) as c:
        assert (await c.say("pat.lead@example.com", f"remove RV-1 {c.sp.number} because pipeline retired")).ok
        await c.others_kept()
        await c.close_and_sign()
        assert (await c.item()).outcome == "removed" and not c.member()
        assert [d for d in await c.events("membership.removed") if c.spid in str(d.get("user"))]

        reply = await c.say("sam.sec@example.com", f"review undo RV-1 {c.sp.number} because pipeline still deploys")
        assert reply.ok, reply.text
        assert (await c.say("sasha.sec@example.com", f"approve RV-1 {c.sp.number}")).ok
        await c.app.service.sweep()
        assert c.member()


async def test_a_principal_taken_out_before_its_removal_is_not_recorded_removed(
        database_url, tmp_path, graph, okta, fault_tls):
    """The check before the removals sees it gone: `not removed`, review.removal_skipped, no membership.removed."""
    async with principal_campaign(database_url, tmp_path, graph, okta, fault_tls) as c:
        assert (await c.say("pat.lead@example.com", f"remove RV-1 {c.sp.number} because pipeline retired")).ok
        await c.others_kept()
        with graph.lock:  # an admin deletes the pipeline's membership before the close
            graph.members[c.group].remove(c.spid)
        await c.close_and_sign()
        item = await c.item()
        assert (item.state, item.removed_at) == ("not removed", None), (item.state, item.outcome)
        assert [d for d in await c.events("membership.removed") if c.spid in str(d.get("user"))] == []
        assert [d["item"] for d in await c.events("review.removal_skipped")] == [c.sp.number]


async def test_graph_down_during_the_live_check_never_reads_as_left(database_url, tmp_path, graph, okta, fault_tls):
    """A provider that cannot list the group (503 for every call) leaves each item as its snapshot says: the
    decisions are recorded, nothing is marked gone, and the close counts nobody gone."""
    async with principal_campaign(database_url, tmp_path, graph, okta, fault_tls) as c:
        graph.down(503)
        reply = await c.say("pat.lead@example.com", f"keep RV-1 {c.sp.number} because deploys production")
        assert reply.ok, reply.text
        await c.others_kept()
        assert len(await c.events("review.decided")) == len(c.items)
        reply = await c.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok, reply.text
        graph.up()
        assert await c.events("review.item_gone") == []
        (closed,) = await c.events("review.closed")
        assert (closed["gone"], closed["kept"]) == (0, len(c.items)), closed
