"""Slack: a manager step passed to the requester's new manager posts them the approval message, and the old
manager's message loses its buttons."""

from __future__ import annotations


async def test_the_new_manager_gets_buttons_and_the_old_message_loses_them(slack_any_db):
    h = slack_any_db
    await h.command("bob@example.com", "request staging-admin for 2h")
    await h.settle()
    [old] = h.api.dm("U0MARK")
    assert old.action_ids == ["approve", "deny"]

    def to_pat(data: dict) -> None:
        next(u for u in data["users"] if u["email"] == "bob@example.com")["manager"] = "pat.lead@example.com"

    h.files.edit_directory(to_pat)
    await h.app.service.sweep()
    await h.settle()
    asks = [m for m in h.api.dm("U0PAT") if m.action_ids == ["approve", "deny"]]
    assert len(asks) == 1 and "REQ-1" in asks[0].all_text, [m.all_text for m in h.api.dm("U0PAT")]
    assert old.action_ids == [] and "pat.lead@example.com" in old.all_text, old.all_text
    assert any("no longer yours" in m.all_text for m in h.api.dm("U0MARK")), [m.all_text for m in h.api.dm("U0MARK")]
    await h.app.service.sweep()  # nothing new the second time
    await h.settle()
    assert len([m for m in h.api.dm("U0PAT") if m.action_ids]) == 1
    # the old manager's click on the old message decides nothing
    await h.click("mark.mgr@example.com", "approve", "REQ-1", message=old)
    await h.settle()
    assert not await h.events("approval.granted")
    assert (await h.events("approval.refused"))[-1]["data"]["reason"] == "not-an-approver"
    await h.click("pat.lead@example.com", "approve", "REQ-1", message=asks[0])
    await h.settle()
    assert (await h.request(1)).state == "active"
    assert asks[0].action_ids == []
