"""A second Slack account claiming a linked person's email must not act as that person.

The directory links mark.mgr@example.com to the Slack user U0MARK (``slack_id``). A different Slack user
(U0EVIL — e.g. a Slack Connect user of another organisation, or a second account in an Enterprise Grid)
whose Slack profile carries the same email is resolved to Mark through the ``users.info`` fallback and
approves Bob's request as Mark (SPEC §3.2: identity comes from the authenticated chat user).
"""

from __future__ import annotations

from tests.slack.conftest import SlackHarness


async def test_another_slack_account_with_a_linked_persons_email_cannot_approve_as_them(slack: SlackHarness):
    h = slack
    await h.command("bob@example.com", "request staging-admin for 2h because release")
    rec = await h.request(1)
    assert rec is not None and rec.state == "pending"
    # U0EVIL is not U0MARK, whom the directory links to mark.mgr@example.com; its Slack profile claims Mark's email
    h.api.add_user("U0EVIL", "mark.mgr@example.com")
    await h.click("U0EVIL", "approve", "REQ-1")
    granted = await h.events("approval.granted")
    assert granted == [], granted
    assert (await h.request(1)).state == "pending"


async def test_a_second_account_of_a_person_found_by_email_is_not_them(slack: SlackHarness):
    """Frank is not linked by slack_id: his own account (the workspace's for his email, users.lookupByEmail)
    acts as him; another account whose profile shows his email does not."""
    h = slack
    h.api.add_user("U0FRANK2", "frank@example.com")
    await h.command("U0FRANK2", "request analytics-read for 1d because dashboards")
    assert await h.events("request.submitted") == []
    await h.command("U0FRANK", "request analytics-read for 1d because dashboards")
    assert [e["actor"] for e in await h.events("request.submitted")] == ["frank@example.com"]
