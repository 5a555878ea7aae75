"""The people clicking a Slack approval are identified with a few reads of the embedded directory's overlay, not
one each: each is looked up in a scope of the identification alone (bot/slack/identity.py), where the overlay is
read once for every look-up asking at the same time and kept while its version stays the same (store/overlay.py).
Counted, not timed: the statements SQLAlchemy's listener sees."""

from __future__ import annotations

import asyncio

from tests.slack.conftest import SlackHarness
from tests.support import statements

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_a_burst_of_approve_clicks_identifies_its_senders_with_a_few_reads(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    bob = await h.app.service.identify(BOB)
    assert bob is not None
    # a grant provisioned first: the overlay has changed once, so it has a version to be kept under
    assert (await h.app.service.handle_text(bob, "request staging-admin for 1h because INC-1 deploy")).ok
    assert (await h.click(MARK, "approve", "REQ-1")).status == 200
    await h.settle()
    assert (await h.request(1)).state == "active"
    assert (await h.app.service.handle_text(bob, "request prod-db-read for 1h because INC-2 fix")).ok

    with statements(h.app) as seen:
        sent = await asyncio.gather(*(h.click(MARK, "approve", "REQ-2") for _ in range(20)))
        await h.settle()
    assert {s.status for s in sent} == {200}
    assert [e["data"]["step"] for e in await h.events("approval.granted")] == [1, 1]  # REQ-1's, and one of REQ-2
    assert (await h.request(2)).step == 1
    # nobody's rows of the overlay read one by one (the old code: one read a click, 20 here). (Its version is still
    # read about once a click: each Slack request is first recorded as seen, under the write lock, so the clicks'
    # identifications seldom ask at the same time.)
    per_person = [s for s in seen if "FROM directory_memberships" in s]
    assert per_person == [], per_person
