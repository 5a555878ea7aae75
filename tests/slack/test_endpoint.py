"""The endpoint itself: signatures, url_verification, ack-first, retried events, identity, rate limits."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from bot.bootstrap import build_app
from bot.notify import FanoutNotifier
from bot.server import CHANNELS_KEY, create_web_app
from bot.settings import Settings
from tests.slack.blockcheck import check_all
from tests.slack.conftest import SlackHarness, fixture, serve, sign
from tests.standins.slack import SlackWebApi
from tests.support import copy_examples


async def _nothing_recorded(h: SlackHarness, events_before: int) -> None:
    assert len(await h.events()) == events_before
    assert h.api.calls == [] and h.api.responses == []


async def test_bad_missing_and_stale_signatures_are_401_with_nothing_recorded(slack: SlackHarness) -> None:
    h = slack
    before = len(await h.events())
    body = "payload=" + json.dumps(h.action_payload("mark.mgr@example.com", "approve", "REQ-1"))
    now = str(int(time.time()))
    cases = [
        {"signature": "v0=" + "0" * 64},  # wrong signature
        {"signature": sign(body, now, secret="another-secret")},  # signed with another secret
        {"signature": ""},  # missing
        {"timestamp": str(int(time.time()) - 6 * 60)},  # stale: more than five minutes old, correctly signed
        {"timestamp": str(int(time.time()) + 6 * 60)},  # from the future
    ]
    for case in cases:
        ts = case.get("timestamp", now)
        signature = case.get("signature", sign(body, ts))
        sent = await h.post_raw(body, "application/x-www-form-urlencoded", timestamp=ts, signature=signature)
        assert sent.status == 401, case
    # a body changed after signing
    ts = str(int(time.time()))
    sent = await h.post_raw(body.replace("REQ-1", "REQ-2"), "application/x-www-form-urlencoded", timestamp=ts,
                            signature=sign(body, ts))
    assert sent.status == 401
    await _nothing_recorded(h, before)
    async with h.app.store.read() as repo:
        assert await repo.first_seen("probe", h.clock.now()) is True  # no request keys were stored either


async def test_url_verification_and_unconfigured(slack: SlackHarness, tmp_path: Path) -> None:
    sent = await slack.post_raw(json.dumps(fixture("url_verification")), "application/json")
    assert sent.status == 200 and fixture("url_verification")["challenge"] in sent.text
    # without the token and signing secret the route is not mounted at all
    files = copy_examples(tmp_path)
    settings = Settings(database_url=f"sqlite:///{tmp_path}/off.db", policy=str(files.policy),
                        directory=str(files.directory), slack_signing_secret="only-the-secret")
    notifier = FanoutNotifier()
    async with build_app(settings, notifier=notifier) as app:
        web_app = create_web_app(app, notifier, scheduler=False)
        assert "slack" not in web_app[CHANNELS_KEY]
        assert not any(r.resource and r.resource.canonical == "/slack/events" for r in web_app.router.routes())


async def test_request_modal_with_inline_errors(slack: SlackHarness) -> None:
    h = slack
    # /access alone opens the request modal with the profiles alice is eligible for
    await h.command("alice@example.com", "")
    [modal] = h.api.modals
    assert modal["callback_id"] == "access_request"
    options = [o["value"] for o in modal["blocks"][0 if modal["blocks"][0]["type"] == "input" else 1]
               ["element"]["options"]]
    assert "prod-db-read" in options and "staging-admin" in options
    # missing fields in the command open the modal pre-filled
    await h.command("alice@example.com", "request prod-db-read for 2h")
    modal = h.api.modals[-1]
    select = next(b for b in modal["blocks"] if b.get("block_id") == "profile")["element"]
    assert select["initial_option"]["value"] == "prod-db-read"
    assert next(b for b in modal["blocks"] if b.get("block_id") == "duration")["element"]["initial_value"] == "2h"
    assert h.api.responses == []  # no text answer: the modal is the answer

    # a bad ticket and too long a duration: inline errors by the fields, nothing submitted
    bad = await h.interact(h.submission("view_submission_request", "alice@example.com",
                                        {"ticket": "JIRA-1", "justification": "replica lag"}))
    answer = bad.json()
    assert answer["response_action"] == "errors" and set(answer["errors"]) == {"ticket"}
    long = await h.interact(h.submission("view_submission_request", "alice@example.com", {"duration": "3d"}))
    assert long.json()["response_action"] == "errors" and "duration" in long.json()["errors"]
    assert "maximum" in long.json()["errors"]["duration"]
    empty = await h.interact(h.submission("view_submission_request", "alice@example.com",
                                          {"justification": None, "ticket": None}))
    assert empty.json()["errors"] == {"justification": "Justification is required.",
                                      "ticket": "Ticket is required."}
    assert await h.events("request.submitted") == []

    ok = await h.interact(h.submission("view_submission_request", "alice@example.com", {}))
    assert ok.status == 200 and ok.text == ""  # the modal closes
    [submitted] = await h.events("request.submitted")
    assert submitted["data"]["ticket"] == "INC-4411" and submitted["data"]["duration"] == "2h"
    [status] = [m for m in h.api.dm("U0ALICE") if "Your request REQ-1" in m.text]
    assert status.action_ids == []
    assert [m.action_ids for m in h.api.dm("U0MARK")] == [["approve", "deny"]]
    assert check_all(h.api) == 4  # two modals, the status DM, the approval DM


async def test_app_home_and_retried_events(slack: SlackHarness) -> None:
    h = slack
    await h.command("alice@example.com", "request prod-db-read for 2h because fix INC-4411")
    await h.command("alice@example.com", "request analytics-read for 4h")  # auto-approved
    sent = await h.home("alice@example.com", "Ev0HOMEALICE")
    assert sent.status == 200
    [home] = h.api.homes["U0ALICE"]
    text = json.dumps(home)
    assert "My active grants" in text and "REQ-2 analytics-read" in text and "left" in text
    assert "REQ-1 prod-db-read" in text and "Security: pending queue" not in text

    # mark: REQ-1 waits on him, with buttons on his home tab
    await h.home("mark.mgr@example.com", "Ev0HOMEMARK")
    [mark_home] = h.api.homes["U0MARK"]
    values = [e.get("value") for b in mark_home["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "REQ-1:r0:s1" in values  # the request, and the round and step the buttons decide
    # sam (security) sees the pending queue
    await h.home("sam.sec@example.com", "Ev0HOMESAM")
    assert "Security: pending queue" in json.dumps(h.api.homes["U0SAM"][-1])

    # Slack retries an event (same event_id, X-Slack-Retry-Num): handled once
    retried = await h.home("sam.sec@example.com", "Ev0HOMESAM", headers={"X-Slack-Retry-Num": "1",
                                                                       "X-Slack-Retry-Reason": "http_timeout"})
    assert retried.status == 200 and len(h.api.homes["U0SAM"]) == 1
    # the home tab's approve button acts as the signed user and refreshes the home tab
    await h.click("mark.mgr@example.com", "approve", "REQ-1")
    assert [e["actor"] for e in await h.events("approval.granted")] == ["mark.mgr@example.com"]
    check_all(h.api)


async def test_identity_through_slack_profile_email_and_unknown_users(slack: SlackHarness) -> None:
    h = slack
    # frank has no slack_id in the directory: his Slack profile's email finds him
    await h.command("U0FRANK", "profiles")
    assert h.api.calls_of("users.info")[-1].args["user"] == "U0FRANK"
    assert "analytics-read" in h.last_response()["text"] or "Profiles" in h.last_response()["text"]
    # nobody@example.com is not in the directory; U0GHOST is not even in Slack
    for uid in ("U0NOBODY", "U0GHOST"):
        await h.command(uid, "request staging-admin for 1h")
        answer = h.last_response()
        assert answer["response_type"] == "ephemeral" and "could not find you" in answer["text"]
        await h.click(uid, "approve", "REQ-1")
        assert "could not find you" in h.last_response()["text"]
    assert await h.events("request.submitted") == []


async def test_web_api_429_is_retried_after_retry_after(slack: SlackHarness) -> None:
    h = slack
    h.api.fail_next(1, status=429, retry_after=1)
    started = time.monotonic()
    await h.command("bob@example.com", "request staging-admin for 4h because deploy test")
    assert time.monotonic() - started >= 1.0
    statuses = h.api.statuses()
    assert statuses[0] == 429 and 200 in statuses[1:]
    # every message still arrived exactly once
    assert len([m for m in h.api.dm("U0BOB") if "Your request REQ-1" in m.text]) == 1
    assert len(h.api.dm("U0MARK")) == 1


async def test_process_before_response_mode_finishes_work_before_answering(sqlite_url: str, tmp_path: Path,
                                                                           slack_api: SlackWebApi) -> None:
    async for h in serve(sqlite_url, tmp_path, slack_api, process_before_response=True):
        sent = await h.command("bob@example.com", "request staging-admin for 4h because deploy test",
                               settle=False)
        assert sent.status == 200
        assert h.api.responses and "REQ-1" in h.api.responses[-1]["text"]  # done before the HTTP answer
        assert len(h.api.dm("U0MARK")) == 1 or await h.settle() is None


async def test_expiring_dm_offers_extend_through_a_modal_and_the_same_chain(slack: SlackHarness) -> None:
    h = slack
    await h.command("alice@example.com", "request analytics-read for 4h")  # auto-approved
    assert (await h.request(1)).state == "active"
    h.clock.advance(hours=3, minutes=55)
    await h.app.service.sweep(drift=False)
    await h.settle()
    [expiring] = [m for m in h.api.dm("U0ALICE") if m.action_ids == ["extend"]]
    assert expiring.values == ["REQ-1"]
    await h.click("alice@example.com", "extend", "REQ-1", message=expiring)
    modal = h.api.modals[-1]
    assert modal["callback_id"] == "access_extend" and "REQ-1" in modal["private_metadata"]
    def extend(email: str, duration: str, reason: str) -> dict:
        submission = h.submission("view_submission_deny", email, {}, {"request": "REQ-1"})
        submission["view"].update(callback_id="access_extend", state={"values": {
            "duration": {"duration": {"type": "plain_text_input", "value": duration}},
            "reason": {"reason": {"type": "plain_text_input", "value": reason}}}})
        return submission

    # bob sends the metadata of alice's grant: he acts as bob, who is not its requester
    forged = await h.interact(extend("bob@example.com", "2h", "mine now"))
    assert forged.json()["response_action"] == "errors"
    # bob may not see alice's request: he is told what he would be told of one that does not exist
    assert "There is no request REQ-1 that you can see" in json.dumps(forged.json()) and "alice" not in forged.text
    assert not [e for e in await h.events("approval.requested") if e["data"].get("extension")]
    done = await h.interact(extend("alice@example.com", "2h", "migration still running"))
    assert done.status == 200 and done.text == ""
    requested = [e for e in await h.events("approval.requested") if e["data"].get("extension")]
    assert len(requested) == 1 and requested[0]["actor"] == "system"
    # the chain of analytics-read is dana: she gets the extension to approve
    [dana] = h.api.dm("U0DANA")
    assert dana.action_ids == ["approve", "deny"] and "extend" in dana.text
    await h.click("dana.dba@example.com", "approve", "REQ-1", message=dana)
    assert len(await h.events("grant.extended")) == 1
    record = await h.request(1)
    assert record.expires_at - record.started_at == timedelta(hours=6)
    assert dana.action_ids == []
    check_all(h.api)


async def test_a_click_is_acknowledged_before_bolt_runs_its_listener(slack: SlackHarness) -> None:
    h = slack
    await h.command("bob@example.com", "request staging-admin for 1h")
    assert (await h.request(1)).state == "pending"
    before = len(await h.events())
    sent = await h.click("mark.mgr@example.com", "approve", "REQ-1", settle=False)
    assert (sent.status, sent.text) == (200, "")  # the ack: empty, at once
    assert len(await h.events()) == before  # nothing decided yet
    await h.settle()
    assert (await h.request(1)).state == "active"
    # the same click, urlencoded as Slack sends it, but signed with another secret or stale: 401
    # from the fast path's check as from Bolt's, and nothing runs after
    body = urlencode({"payload": json.dumps(h.action_payload("mark.mgr@example.com", "approve", "REQ-1"))})
    now = str(int(time.time()))
    for ts, signature in ((now, sign(body, now, secret="another-secret")),
                          (str(int(now) - 6 * 60), sign(body, str(int(now) - 6 * 60)))):
        sent = await h.post_raw(body, "application/x-www-form-urlencoded", timestamp=ts, signature=signature)
        assert sent.status == 401
    assert [e["type"] for e in (await h.events())[before:]].count("approval.granted") == 1
