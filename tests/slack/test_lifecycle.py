"""The whole life of requests through Slack alone: signed requests over real HTTP, a stand-in Web API."""

from __future__ import annotations

from tests.slack.blockcheck import check_all
from tests.slack.conftest import SlackHarness
from tests.standins.slack import block_text

ALICE, BOB, MARK = "alice@example.com", "bob@example.com", "mark.mgr@example.com"
DANA, DEV, SAM, SASHA = "dana.dba@example.com", "dev.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com"


async def test_multi_step_chain_forgeries_double_click_replay_and_deny(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    api = h.api

    sent = await h.command(ALICE, "request prod-db-read for 2h because fix INC-4411")
    assert sent.status == 200 and sent.text == ""  # acknowledged empty; the answer follows on response_url
    answer = h.last_response()
    assert answer["response_type"] == "ephemeral" and "REQ-1" in answer["text"]
    # the requester's status DM, and the approver of step 1 (DM opened from the directory's slack_id)
    [status] = api.dm("U0ALICE")
    assert "Your request REQ-1" in status.text and status.action_ids == []
    [mark_msg] = api.dm("U0MARK")
    assert mark_msg.action_ids == ["approve", "deny"] and mark_msg.values == ["REQ-1:r0:s1", "REQ-1:r0:s1"]
    for word in ("Alice Ng", "prod-db-read", "fix INC-4411", "INC-4411", "2h", "high", "Step 1: manager"):
        assert word in mark_msg.all_text, word

    # bob (not in the chain) forges a click on REQ-1: he acts as bob and is refused
    await h.click(BOB, "approve", "REQ-1")
    assert "There is no request REQ-1 that you can see" in h.last_response()["text"]  # as for one that does not exist
    # sam clicks with a payload carrying mark's message: still sam, who is not on step 1
    await h.click(SAM, "approve", "REQ-1", message=mark_msg)
    assert "not an approver" in h.last_response()["text"]
    assert await h.events("approval.granted") == []
    refused = await h.events("approval.refused")
    assert [(e["actor"], e["data"]["reason"]) for e in refused] == [(BOB, "not-an-approver"),
                                                                     (SAM, "not-an-approver")]
    assert mark_msg.action_ids == ["approve", "deny"]  # mark's message untouched by the forgeries

    # step 1: mark approves from his DM; his message loses its buttons
    click = await h.click(MARK, "approve", "REQ-1", message=mark_msg)
    assert click.status == 200
    assert mark_msg.action_ids == [] and "Approved REQ-1" in mark_msg.all_text
    # a double click: one decision, no second grant; the message says so, showing the request as it stands
    await h.click(MARK, "approve", "REQ-1", message=mark_msg)
    assert mark_msg.action_ids == [] and "You already approved REQ-1 at step 1" in mark_msg.all_text
    assert "waiting on" in mark_msg.all_text
    # a replay of the very same signed bytes: acknowledged, and nothing happens
    calls = len(api.calls)
    again = await h.replay(click)
    assert again.status == 200 and len(api.calls) == calls
    granted = await h.events("approval.granted")
    assert [(e["actor"], e["data"]["step"]) for e in granted] == [(MARK, 1)]

    # step 2 opened: both DBAs get a DM; dev approves and dana's message is rewritten
    [dana_msg] = api.dm("U0DANA")
    [dev_msg] = api.dm("U0DEV")
    assert dana_msg.action_ids == ["approve", "deny"] == dev_msg.action_ids
    await h.click(DEV, "approve", "REQ-1", message=dev_msg)
    assert dana_msg.action_ids == [] and dev_msg.action_ids == []
    assert "waiting on" in dana_msg.all_text

    # step 3: two of security
    [sam_msg] = api.dm("U0SAM")
    [sasha_msg] = api.dm("U0SASHA")
    await h.click(SAM, "approve", "REQ-1", message=sam_msg)
    assert sam_msg.action_ids == [] and sasha_msg.action_ids == ["approve", "deny"]
    assert "1 of 2" in block_text(status.blocks) or "(1 of 2)" in status.all_text
    await h.click(SASHA, "approve", "REQ-1", message=sasha_msg)
    record = await h.request(1)
    assert record.state == "active"
    assert "sg-prod-db-read" in status.all_text and "ACTIVE" in status.all_text
    assert status.edits, "the requester's status message is updated in place"
    for msg in (mark_msg, dana_msg, dev_msg, sam_msg, sasha_msg):
        assert msg.action_ids == [] and "REQ-1 is active" in msg.all_text
    members = await h.app.deps.providers["directory"].list_members("sg-prod-db-read")
    assert members == [ALICE]

    # deny with a reason: bob asks for staging-admin (chain: his manager, mark)
    await h.command(BOB, "request staging-admin for 4h because deploy test")
    mark_deny = next(m for m in api.dm("U0MARK") if m.text.startswith("REQ-2"))
    await h.click(MARK, "deny", "REQ-2", message=mark_deny)
    modal = api.modals[-1]
    assert modal["callback_id"] == "access_deny" and "REQ-2" in modal["private_metadata"]
    # no reason: the modal answers with an inline error and nothing is decided
    empty = await h.interact(h.submission("view_submission_deny", MARK, {"reason": None},
                                          {"request": "REQ-2"}))
    assert empty.json() == {"response_action": "errors", "errors": {"reason": "Say why you deny the request."}}
    assert (await h.request(2)).state == "pending"
    # a forged metadata naming REQ-1 (already active) as dana: the handler refuses, nothing changes
    forged = await h.interact(h.submission("view_submission_deny", DANA, {"reason": "x"}, {"request": "REQ-1"}))
    assert forged.json()["response_action"] == "update"
    assert (await h.request(1)).state == "active"
    done = await h.interact(h.submission("view_submission_deny", MARK, {"reason": "not during the freeze"},
                                         {"request": "REQ-2"}))
    assert done.status == 200 and done.text == ""  # the modal closes
    assert (await h.request(2)).state == "denied"
    denied = await h.events("approval.denied")
    assert [(e["actor"], e["data"]["comment"]) for e in denied] == [(MARK, "not during the freeze")]
    assert mark_deny.action_ids == [] and "denied" in mark_deny.all_text
    bob_status = next(m for m in api.dm("U0BOB") if "Your request REQ-2" in m.text)
    assert "DENIED" in bob_status.all_text
    assert any("not during the freeze" in m.text for m in api.dm("U0BOB"))

    # every message, modal and home the bot produced is valid Block Kit within Slack's limits
    assert check_all(api) > 10
    assert not [c for c in api.calls if not c.ok], [(c.method, c.error) for c in api.calls if not c.ok]
    ok, *_ = (await h.app.store.verify_audit(),)
    assert ok.ok
