"""Releasing a grant while its extension waits closes the extension's approval messages."""

from __future__ import annotations


async def test_release_with_an_extension_pending_closes_the_approvers_messages(slack):
    h = slack
    await h.command("bob@example.com", "request staging-admin for 2h")
    await h.settle()
    [first] = h.api.dm("U0MARK")
    await h.click("mark.mgr@example.com", "approve", "REQ-1", message=first)
    await h.settle()
    await h.command("bob@example.com", "extend REQ-1 by 1h because more")
    await h.settle()
    ask = [m for m in h.api.dm("U0MARK") if m.action_ids == ["approve", "deny"]]
    assert len(ask) == 1, [m.all_text for m in h.api.dm("U0MARK")]
    await h.command("bob@example.com", "release REQ-1")
    await h.settle()
    assert ask[0].action_ids == [] and "released" in ask[0].all_text, ask[0].all_text
    assert [e["type"] for e in await h.events()][-1] == "grant.released"
