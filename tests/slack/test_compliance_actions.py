"""The security team's compliance cards in Slack, through the stand-in Web API and signed payloads: a drift
finding is DMed with remove / accept buttons, remove asks for the reason in a modal and runs `drift remove`;
a paused brake is DMed with a resume button that resumes at the count seen. Attacks: someone outside the
security team, a tampered finding id, a forged message to rewrite, a double click, a stale count."""

from __future__ import annotations

import json

from handlers.policy import load_policy
from tests.slack.blockcheck import check_all
from tests.slack.conftest import SlackHarness

PAT, BOB, SAM, SASHA = "pat.lead@example.com", "bob@example.com", "sam.sec@example.com", "sasha.sec@example.com"
WAVE = [f"w{i}@example.com" for i in range(5)]


def _drift_dm(h: SlackHarness, uid: str, ref: str):  # type: ignore[no-untyped-def]
    return next(m for m in h.api.dm(uid) if ref in m.text and "drift_remove" in m.action_ids)


async def _submit(h: SlackHarness, callback: str, who: str, values: dict, metadata: dict | str):  # type: ignore[no-untyped-def]
    payload = h.submission("view_submission_deny", who, values, None)
    payload["view"]["callback_id"] = callback
    payload["view"]["private_metadata"] = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return await h.interact(payload)


async def test_drift_remove_from_the_card(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    h.files.add_to_group("sg-prod-db-read", PAT)
    h.files.add_to_group("sg-staging-admin", "alice@example.com")
    await h.app.service.sweep()
    await h.settle()
    detected = {e["data"]["user"]: e["data"]["id"] for e in await h.events("drift.detected")}
    pat_id, alice_id = detected[PAT], detected["alice@example.com"]
    sam_card, sasha_card = _drift_dm(h, "U0SAM", pat_id), _drift_dm(h, "U0SASHA", pat_id)
    assert sam_card.action_ids == ["drift_remove", "drift_accept"] and sam_card.values == [pat_id, pat_id]
    assert PAT in sam_card.all_text and "sg-prod-db-read" in sam_card.all_text
    assert not any("drift_remove" in m.action_ids for m in h.api.dm("U0BOB"))  # only the security team is told

    # the button opens the modal; it names the finding and the message, never who acts
    await h.click(SAM, "drift_remove", pat_id, message=sam_card)
    modal = h.api.modals[-1]
    assert modal["callback_id"] == "compliance_drift_remove"
    meta = json.loads(modal["private_metadata"])
    assert meta["finding"] == pat_id and meta["message"]["ts"] == sam_card.ts

    # someone outside the security team submitting it: refused and recorded, nothing removed
    refused = await _submit(h, "compliance_drift_remove", BOB, {"reason": "mine now"}, meta)
    assert refused.json()["response_action"] == "update" and "security team only" in json.dumps(refused.json())
    refusal = (await h.events("command.refused"))[-1]
    assert (refusal["actor"], refusal["data"]["command"], refusal["data"]["channel_user_id"]) == (
        BOB, "drift remove", "U0BOB")
    # no reason: an inline error; a tampered id: no such finding; garbage: no finding named
    empty = await _submit(h, "compliance_drift_remove", SAM, {"reason": None}, meta)
    assert empty.json() == {"response_action": "errors", "errors": {"reason": "Say why the member is removed."}}
    tampered = await _submit(h, "compliance_drift_remove", SAM, {"reason": "x"}, {**meta, "finding": "D-99"})
    assert "no open drift finding D-99" in json.dumps(tampered.json())
    garbage = await _submit(h, "compliance_drift_remove", SAM, {"reason": "x"}, "{not json")
    assert "does not name a drift finding" in json.dumps(garbage.json())
    assert PAT in await h.app.deps.providers["directory"].list_members("sg-prod-db-read")

    done = await _submit(h, "compliance_drift_remove", SAM, {"reason": "no approval on record"}, meta)
    assert done.status == 200 and done.text == ""  # the modal closes
    await h.settle()
    assert PAT not in await h.app.deps.providers["directory"].list_members("sg-prod-db-read")
    (removed,) = await h.events("membership.removed")
    assert (removed["data"]["user"], removed["data"]["reason"]) == (PAT, "drift")
    (resolved,) = await h.events("drift.resolved")
    assert resolved["data"]["id"] == pat_id and resolved["data"]["resolution"] == "removed"
    assert resolved["data"]["by"] == SAM
    (asked,) = await h.events("drift.remove_requested")
    assert asked["actor"] == SAM and asked["data"]["reason"] == "no approval on record"
    assert (asked["data"]["channel"], asked["data"]["channel_user_id"]) == ("slack", "U0SAM")
    assert sam_card.action_ids == [] and "resolved" in sam_card.all_text  # the clicked card shows the outcome
    # and so does every other member's card of it: who removed whom, and no buttons
    assert sasha_card.action_ids == [] and f"{pat_id} resolved: {SAM} removed {PAT}" in sasha_card.all_text

    # a double click (sasha's card, the same finding): refused, removed once
    again = await _submit(h, "compliance_drift_remove", SASHA, {"reason": "me too"},
                          {"finding": pat_id, "message": {"channel": sasha_card.channel, "ts": sasha_card.ts,
                                                          "mac": "0" * 32}})
    assert "is already resolved" in json.dumps(again.json())
    assert len(await h.events("membership.removed")) == 1

    # a forged message address (no valid MAC): the finding is removed, but no other message is rewritten
    alice_card = _drift_dm(h, "U0SAM", alice_id)
    forged = {"finding": alice_id, "message": {"channel": sasha_card.channel, "ts": sasha_card.ts, "mac": "f" * 32}}
    sasha_before = sasha_card.all_text
    assert (await _submit(h, "compliance_drift_remove", SAM, {"reason": "left the team"}, forged)).text == ""
    await h.settle()
    assert sasha_card.all_text == sasha_before  # the message the forged address names is not rewritten
    # the cards of the finding that was removed say so, from the bot's own record of where they are
    assert alice_card.action_ids == [] and f"{alice_id} resolved: {SAM} removed" in alice_card.all_text
    assert any(f"{alice_id} resolved" in m.text for m in h.api.dm("U0SAM"))  # told aside instead
    assert "alice@example.com" not in await h.app.deps.providers["directory"].list_members("sg-staging-admin")

    # accept opens a modal asking for the duration and the reason; the handler judges them as typed words
    await h.click(SAM, "drift_accept", pat_id, message=sam_card)
    modal = h.api.modals[-1]
    assert modal["callback_id"] == "compliance_drift_accept"
    no_duration = await _submit(h, "compliance_drift_accept", SAM, {"duration": "", "reason": "x"},
                                json.loads(modal["private_metadata"]))
    assert list(no_duration.json()["errors"]) == ["duration"]
    bad = await _submit(h, "compliance_drift_accept", SAM, {"duration": "1d because y", "reason": "x"},
                        json.loads(modal["private_metadata"]))
    assert "Not accepted" in json.dumps(bad.json())  # refused by the handler (the finding is resolved by now)
    assert not await h.events("request.submitted")  # the box's words were never read as more words
    assert check_all(h.api) > 0
    assert (await h.app.store.verify_audit()).ok


async def test_resume_from_the_pause_card(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    h.files.policy.write_text(h.files.policy.read_text() + "\nsafety: {max_removals: 3}\n")
    h.app.deps.policy = load_policy(h.files.policy)

    def hire(data: dict) -> None:
        for email in [*WAVE, "w5@example.com"]:
            data["users"].append({"email": email, "name": email[:2], "department": "Sales", "active": True})
        data["groups"]["sg-analytics-read"] = [*WAVE, "w5@example.com"]

    def leave(emails: list[str]):  # type: ignore[no-untyped-def]
        def change(data: dict) -> None:
            for u in data["users"]:
                if u["email"] in emails:
                    u["active"] = False
        return change

    h.files.edit_directory(hire)
    h.files.edit_directory(leave(WAVE))
    report = await h.app.service.sweep(drift=False)
    await h.settle()
    assert report.paused == 5
    [card] = [m for m in h.api.dm("U0SAM") if "resume_removals" in m.action_ids]
    (value,) = card.values
    assert value.startswith("5:terminated:") and len(value) == len("5:terminated:") + 12  # and which removals
    assert "w0@example.com" in card.all_text

    await h.click(BOB, "resume_removals", "5:terminated")  # not the security team: refused and recorded
    assert "security team only" in h.last_response()["text"]
    assert (await h.events("command.refused"))[-1]["data"]["command"] == "resume removals"
    await h.click(SAM, "resume_removals", "5:bogus!")  # tampered: names no pause
    assert "does not name a pause" in h.last_response()["text"]
    await h.click(SAM, "resume_removals", "5:terminated:XYZ")  # a digest that is not one
    assert "does not name a pause" in h.last_response()["text"]

    h.files.edit_directory(leave(["w5@example.com"]))  # one more leaver: the count is 6 now
    assert (await h.app.service.sweep(drift=False)).paused == 6
    await h.settle()
    await h.click(SAM, "resume_removals", value, message=card)  # the stale card
    assert "count changed" in h.last_response()["text"] and "6" in h.last_response()["text"]
    assert await h.events("automation.resumed") == []
    assert card.action_ids == ["resume_removals"]

    fresh = [m for m in h.api.dm("U0SAM") if any(v.startswith("6:terminated:") for v in m.values)][-1]
    await h.click(SAM, "resume_removals", fresh.values[0], message=fresh)
    (resumed,) = await h.events("automation.resumed")
    assert resumed["actor"] == SAM and resumed["data"] == {**resumed["data"], "count": 6, "reason": "terminated"}
    assert fresh.action_ids == [] and "Resumed" in fresh.all_text
    sasha_card = [m for m in h.api.dm("U0SASHA") if any(v.startswith("6:terminated:") for v in m.values)][-1]
    await h.click(SASHA, "resume_removals", sasha_card.values[0], message=sasha_card)  # a second click: once only
    assert len(await h.events("automation.resumed")) == 1

    report = await h.app.service.sweep(drift=False)
    assert report.paused == 0 and sorted(report.terminated) == sorted([*WAVE, "w5@example.com"])
    assert await h.app.deps.providers["directory"].list_members("sg-analytics-read") == []
    assert len(await h.events("membership.removed")) == 6
