"""A store that went through requests, approvals, a denial, an exception, expiry, drift and a termination,
built through the same service the chat channels use."""

from __future__ import annotations

from dataclasses import dataclass

from tests.web.conftest import WebHarness


@dataclass
class Story:
    db_read: str  # alice's prod-db-read, approved by the whole chain, then expired
    exception: str  # carol's exception, active
    pending_alice: str  # waiting on mark.mgr
    pending_frank: str  # waiting on dana.dba
    analytics_alice: str  # auto-approved, active, expires within 24 h
    analytics_bob: str  # auto-approved, revoked when bob left
    denied: str


async def live_through(h: WebHarness) -> Story:
    async def ok(email: str, text: str) -> str:
        reply = await h.say(email, text)
        assert reply.ok, (email, text, reply.text)
        return reply.request.id if reply.request else ""

    analytics_bob = await ok("bob@example.com", "request analytics-read for 1d")
    db_read = await ok("alice@example.com", "request prod-db-read for 2h because INC-4411 replica lag")
    for approver in ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com",
                     "sasha.sec@example.com"):
        await ok(approver, f"approve {db_read} looks fine")
    exception = await ok("carol@example.com", "exception prod-db-read for 2d because INC-9 migration weekend")
    await ok("sam.sec@example.com", f"approve {exception}")
    await ok("dana.dba@example.com", f"approve {exception}")
    denied = await ok("bob@example.com", "request staging-admin for 8h because load test")
    await ok("mark.mgr@example.com", f"deny {denied} because not this week")
    h.clock.advance(hours=3)  # alice's two hours are up
    analytics_alice = await ok("alice@example.com", "request analytics-read for 1d")
    pending_alice = await ok("alice@example.com", "request staging-admin for 1h")
    pending_frank = await ok("frank@example.com", "request analytics-read for 2d because quarter close")
    h.files.add_to_group("sg-prod-k8s-admin", "dev.dba@example.com")  # a member nobody granted: drift
    h.files.set_active("bob@example.com", False)  # a leaver
    report = await h.app.service.sweep()
    assert report.expired == [db_read] and report.terminated == ["bob@example.com"], report.lines()
    assert report.drift == ["dev.dba@example.com in directory/sg-prod-k8s-admin"], report.lines()
    return Story(db_read=db_read, exception=exception, pending_alice=pending_alice, pending_frank=pending_frank,
                 analytics_alice=analytics_alice, analytics_bob=analytics_bob, denied=denied)
