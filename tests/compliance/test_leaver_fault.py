"""The provider fails half-way through a leaver's removals: after it recovers every membership is gone
exactly once, and the chain says so (membership.remove_failed, then membership.removed once per group)."""

from __future__ import annotations

from bot.bootstrap import build_app
from tests.support import MutableClock, RecordingNotifier
from tests.test_leaver_lookups import PAT, entra_settings, graph  # noqa: F401

DAN, SAM = "dan@example.com", "sam.sec@example.com"
TWO_GROUPS = """
  - id: ops
    title: Ops
    owner: pat.lead@example.com
    provider: entra
    group: {group}
    duration: {{default: 1h, max: 8h}}
    approval: [owner]
"""


async def test_graph_fails_mid_way_through_a_leavers_removals(database_url, tmp_path, graph):  # noqa: F811
    tools, ops = graph.add_group("sg-tools"), graph.add_group("sg-ops")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(DAN, department="Engineering", manager=PAT)
    graph.add_member(tools, DAN)
    graph.add_member(ops, DAN)
    settings = entra_settings(database_url, tmp_path, graph, tools)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text() + TWO_GROUPS.format(group=ops))
    clock, notifier = MutableClock(), RecordingNotifier()
    async with build_app(settings, clock=clock, notifier=notifier) as app:
        graph.users[graph.user_id(DAN)]["accountEnabled"] = False  # type: ignore[index]
        graph.fail_inner_next(1, status=403, retry_after=None)  # one of the two removals is refused
        report = await app.service.sweep()
        assert report.terminated == [DAN]
        left = [g for g in (tools, ops) if DAN in graph.member_emails(g)]
        assert len(left) == 1

        async def events(type_: str) -> list[dict]:
            return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]

        assert [e["data"]["group"] for e in await events("membership.removed")] == [g for g in (tools, ops)
                                                                                     if g not in left]
        (failed,) = await events("membership.remove_failed")
        assert failed["data"]["group"] == left[0] and failed["data"]["will_retry"] is True
        assert any(n.recipient == SAM and n.kind == "failure" for n in notifier.notices)

        for _ in range(3):  # recovered: the next sweeps finish the removal, once
            clock.advance(minutes=10)
            await app.service.sweep()
        assert graph.member_emails(tools) == [] and graph.member_emails(ops) == []
        removed = await events("membership.removed")
        assert sorted(e["data"]["group"] for e in removed) == sorted([tools, ops])
        assert {e["data"]["reason"] for e in removed} == {"terminated"}
        assert len(await events("user.terminated")) == 1 and len(await events("membership.remove_failed")) == 1
        assert (await app.store.verify_audit()).ok
