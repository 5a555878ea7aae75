"""A provider that is down or throttling when a grant starts or ends (SPEC §2.4, §3.4).

Approval time: the request stays ``approved`` with its intent pending, and the next sweep after
the provider recovers provisions it exactly once; with the retry budget spent instead it becomes
``failed`` and the security team hears the correlation id. Expiry time: the grant is recorded
``expired`` at once, the removal stays pending, is reported once after the budget and retried by
every later sweep until it succeeds, and the chain says so. Both at Graph; the first also at Okta
(429 with ``X-Rate-Limit-Reset``).
"""

from __future__ import annotations

import time

import pytest

from bot.bootstrap import build_app
from tests.faults.conftest import World, utc_in
from tests.support import MutableClock, RecordingNotifier

SECURITY = ("sam.sec@example.com", "sasha.sec@example.com")
BOB = "bob@example.com"


@pytest.mark.parametrize("status", [503, 429])
def test_graph_down_when_the_last_approval_lands_then_the_sweep_provisions_once(world: World, status: int) -> None:
    graph = world.graph
    world.chat(BOB, "request entra-ops for 1h")
    assert world.state(1) == "pending"

    graph.writes_only = True  # look-ups answer; the membership write is refused
    graph.down(status=status, retry_after=0.05)
    out = world.chat("mark.mgr@example.com", "approve REQ-1")
    assert "Approved REQ-1" in out
    assert world.state(1) == "approved"
    [(op, op_status, attempts, _, _, error)] = world.ops(1)
    assert (op, op_status, attempts) == ("add", "pending", 1)
    assert f"HTTP {status}" in error
    refused = graph.received("POST", "/members/$ref")
    assert len(refused) == 5 and {r.status for r in refused} == {status}  # the provider's own retries
    assert graph.member_emails(world.entra_group) == []
    assert "grant.provisioned" not in world.event_counts("REQ-1")

    graph.up()
    world.sweep(as_of=utc_in(seconds=20))  # past the backoff, inside the 1m budget (start-up repair runs it)
    assert world.state(1) == "active"
    assert graph.member_emails(world.entra_group) == [BOB]
    world.sweep(as_of=utc_in(seconds=40))  # nothing more to do
    counts = world.event_counts("REQ-1")
    assert counts["grant.provisioned"] == 1 and counts["request.approved"] == 1
    assert counts["grant.provision_failed"] == 0
    assert [r.status for r in graph.received("POST", "/members/$ref")][5:] == [204]
    assert [(o[0], o[1]) for o in world.ops(1)] == [("add", "done")]
    world.verify()


async def test_graph_down_past_the_retry_budget_fails_the_request_and_tells_security(world: World) -> None:
    clock, notifier = MutableClock(), RecordingNotifier()
    async with build_app(world.settings(), clock=clock, notifier=notifier) as app:
        async def say(email: str, line: str) -> str:
            person = await app.service.identify(email)
            assert person is not None
            return (await app.service.handle_text(person, line)).text

        await say(BOB, "request entra-ops for 1h")
        world.graph.down(status=503, retry_after=0.05)
        await say("mark.mgr@example.com", "approve REQ-1")
        assert world.state(1) == "approved"
        clock.advance(seconds=30)
        await app.service.sweep()  # inside the budget: still approved, still pending
        assert world.state(1) == "approved" and world.ops(1)[0][1] == "pending"

        clock.advance(minutes=1)  # the 1m budget is spent
        await app.service.sweep()
        assert world.state(1) == "failed"
        [(_, op_status, attempts, correlation, _, error)] = world.ops(1)
        assert op_status == "failed" and attempts == 3 and correlation and "503" in error

        world.graph.up()
        clock.advance(minutes=5)
        await app.service.sweep()  # a failed grant is not provisioned later
    assert world.state(1) == "failed"
    assert world.graph.member_emails(world.entra_group) == []
    events = [e for e in world.events() if e.get("request_id") == "REQ-1"]
    failed = [e for e in events if e["type"] == "grant.provision_failed"]
    assert len(failed) == 1 and "grant.provisioned" not in {e["type"] for e in events}
    assert failed[0]["data"]["correlation_id"] == correlation and failed[0]["data"]["attempts"] == 3
    for member in SECURITY:
        [told] = notifier.to(member, "failure")
        assert "REQ-1" in told.text and correlation in told.text and BOB in told.text
    assert any("REQ-1 failed" in n.text for n in notifier.to(BOB, "status"))
    world.verify()


async def test_graph_down_at_expiry_removal_retried_until_it_succeeds(world: World) -> None:
    graph = world.graph
    clock, notifier = MutableClock(), RecordingNotifier()
    async with build_app(world.settings(), clock=clock, notifier=notifier) as app:
        person = await app.service.identify(BOB)
        assert person is not None
        reply = await app.service.handle_text(person, "request entra-tools for 1h")
        assert reply.request is not None and reply.request.state == "active", reply.text
        assert graph.member_emails(world.entra_group) == [BOB]

        graph.down(status=503, retry_after=0.05)
        clock.advance(hours=1, seconds=1)
        report = await app.service.sweep()
        assert report.expired == ["REQ-1"]
        assert world.state(1) == "expired"
        assert [(o[0], o[1], o[4]) for o in world.ops(1)][-1] == ("remove", "pending", False)
        assert graph.member_emails(world.entra_group) == [BOB]  # not yet removed, and the store knows it

        clock.advance(minutes=2)  # budget spent: reported once, never given up
        await app.service.sweep()
        clock.advance(minutes=5)
        await app.service.sweep()
        clock.advance(minutes=10)
        await app.service.sweep()
        removal = world.ops(1)[-1]
        assert (removal[0], removal[1], removal[4]) == ("remove", "pending", True) and removal[2] >= 4
        assert graph.member_emails(world.entra_group) == [BOB]

        graph.up()
        clock.advance(minutes=10)
        report = await app.service.sweep()
        assert report.repaired == 1
        clock.advance(minutes=10)
        await app.service.sweep()
    assert graph.member_emails(world.entra_group) == []
    assert [(o[0], o[1]) for o in world.ops(1)] == [("add", "done"), ("remove", "done")]
    events = [e for e in world.events() if e.get("request_id") == "REQ-1"]
    types = [e["type"] for e in events]
    assert types[types.index("grant.provisioned"):] == ["grant.provisioned", "grant.expired", "grant.revoke_failed",
                                                         "grant.revoke_completed"]
    failed = next(e for e in events if e["type"] == "grant.revoke_failed")
    done = next(e for e in events if e["type"] == "grant.revoke_completed")
    assert failed["data"]["will_retry"] is True and failed["data"]["correlation_id"]
    assert done["data"]["correlation_id"]  # Graph's request id of the last refused attempt
    for member in SECURITY:
        [told] = notifier.to(member, "failure")
        assert "Revocation is failing for REQ-1" in told.text and failed["data"]["correlation_id"] in told.text
    world.verify()


def test_okta_throttling_at_approval_waits_for_the_reset_then_the_sweep_provisions_once(world: World) -> None:
    okta = world.okta
    world.chat(BOB, "request okta-ops for 1h")
    okta.down(status=429, retry_after=0.4)  # X-Rate-Limit-Remaining 0, X-Rate-Limit-Reset 0.4 s ahead
    started = time.monotonic()
    world.chat("mark.mgr@example.com", "approve REQ-1")
    took = time.monotonic() - started
    assert world.state(1) == "approved"
    [(op, op_status, attempts, _, _, error)] = world.ops(1)
    assert (op, op_status, attempts) == ("add", "pending", 1) and "HTTP 429" in error
    throttled = [r for r in okta.received() if r.status == 429]
    assert len(throttled) == 5  # five attempts, each after the reset it was given
    assert took >= 4 * 0.4
    assert okta.member_emails(world.okta_group) == []

    okta.up()
    world.sweep(as_of=utc_in(seconds=20))
    assert world.state(1) == "active"
    assert okta.member_emails(world.okta_group) == [BOB]
    world.sweep(as_of=utc_in(seconds=40))
    assert [r.status for r in okta.received("PUT", f"/groups/{world.okta_group}/users/")] == [204]
    counts = world.event_counts("REQ-1")
    assert counts["grant.provisioned"] == 1 and counts["grant.provision_failed"] == 0
    world.verify()
