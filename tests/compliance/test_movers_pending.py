"""Movers' pending requests (SPEC §3.6): a request waiting on its chain whose requester is no longer eligible
fails at the next sweep, as its last approval would fail it, and its approvers are no longer asked."""

from __future__ import annotations

import json

from handlers.policy import load_policy
from handlers.sweeps import sweep
from tests.support import chat, cli, copy_examples, harness

BOB, CAROL = "bob@example.com", "carol@example.com"
MARK, DANA, SAM = "mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com"


def move(files, email: str, **attributes: str) -> None:  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] == email:
                u.update(attributes)

    files.edit_directory(change)


async def test_a_movers_pending_request_fails_at_the_sweep_and_its_approvers_cards_close(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 2h because INC-1 replica lag")).ok  # REQ-1
        assert (await h.say(MARK, "approve REQ-1")).ok  # step 2 (dana, dev) is open
        assert (await h.say(CAROL, "exception prod-db-read for 2d because INC-9 migration")).ok  # REQ-2
        assert (await h.say(BOB, "request analytics-read for 2d")).ok  # REQ-3: Finance may ask for it too
        assert (await sweep(h.app.deps, drift=False)).failed == []  # nobody moved: nothing fails

        move(h.files, BOB, department="Finance")
        move(h.files, CAROL, department="Finance")
        before = len(await h.events())
        h.notifier.notices.clear()
        dry = await sweep(h.app.deps, drift=False, dry_run=True)
        assert dry.failed == ["REQ-1"] and len(await h.events()) == before and h.notifier.notices == []
        assert "would fail: 1 — REQ-1" in dry.lines()

        report = await sweep(h.app.deps, drift=False)
        assert report.failed == ["REQ-1"] and report.revoked == [] and report.paused == 0, report.lines()
        record = await h.request(1)
        assert record.state == "failed" and record.started_at is None
        (failed,) = await h.events("request.failed")
        # the rule the last approval would have named (tests/compliance/test_movers.py)
        assert failed["request_id"] == "REQ-1" and failed["actor"] == "system"
        assert failed["data"]["rule"] == "eligible: no rule matched"
        # an exception is an exception; a profile Bob still may ask for keeps waiting
        assert (await h.request(2)).state == "pending" and (await h.request(3)).state == "pending"
        assert any("REQ-1 failed: you are no longer eligible for prod-db-read" in n.text for n in h.notifier.to(BOB))
        for approver in (DANA, "dev.dba@example.com"):  # step 2 asked both: their cards close
            (closed,) = [n for n in h.notifier.to(approver) if n.request_id == 1]
            assert closed.kind == "outcome" and "no longer eligible" in closed.text
        assert not [n for n in h.notifier.to(MARK) if n.request_id == 1]  # he decided: his card is not his to close

        r = await h.say(DANA, "approve REQ-1")  # a card still open somewhere: nothing left to decide
        assert not r.ok and (await h.request(1)).state == "failed"
        assert await h.events("request.approved") == [] and BOB not in await h.members("sg-prod-db-read")
        again = await sweep(h.app.deps, drift=False)  # nothing twice
        assert again.failed == [] and len(await h.events("request.failed")) == 1
        assert (await h.say(SAM, "verify")).ok


async def test_a_leaver_s_pending_request_is_withdrawn_not_failed(database_url, tmp_path):
    """A leaver is the leaver sweep's: withdrawn (``terminated``), not failed as a mover's."""
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 2h because INC-1 replica lag")).ok
        move(h.files, BOB, department="Finance")
        h.files.set_active(BOB, False)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [BOB] and report.failed == [], report.lines()
        assert (await h.request(1)).state == "cancelled" and await h.events("request.failed") == []


async def test_movers_pending_failures_count_against_the_brake(database_url, tmp_path):
    """An identity source that suddenly finds everyone ineligible must not withdraw everyone's pending requests:
    above ``safety.max_removals`` none fails, the security team is told, and `resume removals` lets them run."""
    async with harness(database_url, tmp_path) as h:
        for who, text in ((CAROL, "request staging-admin for 1h"),
                          (BOB, "request prod-db-read for 2h because INC-1 replica lag"),
                          (BOB, "request staging-admin for 1h")):
            assert (await h.say(who, text)).ok
        h.files.policy.write_text(h.files.policy.read_text() + "\nsafety: {max_removals: 2}\n")
        h.app.deps.policy = load_policy(h.files.policy)
        move(h.files, CAROL, department="Finance")
        move(h.files, BOB, department="Finance")
        report = await sweep(h.app.deps, drift=False)
        assert report.failed == [] and report.paused == 3, report.lines()
        assert [(await h.request(n)).state for n in (1, 2, 3)] == ["pending"] * 3
        (paused,) = await h.events("automation.paused")
        assert paused["data"]["count"] == 3 and paused["data"]["reason"] == "ineligible"
        assert f"{CAROL}: pending REQ-1 (staging-admin) fails" in paused["data"]["sample"]
        assert (await h.say(SAM, "resume removals")).ok
        report = await sweep(h.app.deps, drift=False)
        assert report.failed == ["REQ-1", "REQ-2", "REQ-3"] and report.paused == 0, report.lines()
        assert [(await h.request(n)).state for n in (1, 2, 3)] == ["failed"] * 3


def test_a_movers_pending_request_fails_through_accessbot_sweep(database_url, tmp_path):
    files = copy_examples(tmp_path)
    db = database_url
    out = chat(BOB, "request prod-db-read for 2h because INC-7 vacuum", db=db, files=files)
    assert "REQ-1 submitted" in out, out
    move(files, BOB, department="Finance")
    out = cli("sweep", db=db, files=files, check=True).stdout
    assert "fail: 1 — REQ-1" in out, out
    events = [json.loads(x) for x in cli("audit", "export", "--format", "jsonl", db=db, check=True).stdout.splitlines()]
    assert [e["type"] for e in events][-1] == "request.failed"
    assert events[-1]["data"]["rule"] == "eligible: no rule matched"
    assert "state: failed" in chat(SAM, "status REQ-1", db=db, files=files)
    assert cli("audit", "verify", db=db).returncode == 0


async def test_an_identity_source_that_cannot_answer_fails_no_pending_request(database_url, tmp_path):
    """The directory file half-written (the identity source cannot answer for anyone): nobody is judged, no pending
    request fails, and the next sweep, once it reads again, judges as before."""
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 2h because INC-1 replica lag")).ok
        move(h.files, BOB, department="Finance")
        good = h.files.directory.read_text()
        h.files.directory.write_text("users: [\n  - {email: bob@example.com")  # cut off mid-write
        before = len(await h.events())
        report = await sweep(h.app.deps, drift=False)
        assert "REQ-1" not in report.failed and (await h.request(1)).state == "pending", report.lines()
        assert report.failed and all("invalid YAML" in line for line in report.failed)  # the cause is said
        assert not [e for e in (await h.events())[before:] if e["type"].startswith(("request.", "grant."))]
        h.files.directory.write_text(good)
        h.files.edit_directory(lambda d: None)  # saved again: its change is seen
        assert (await sweep(h.app.deps, drift=False)).failed == ["REQ-1"]


async def test_the_dry_run_names_a_movers_request_as_failing_and_reminds_nobody_of_it(database_url, tmp_path):
    """The dry run says what the sweep would do: the mover's request fails, so its approvers are not reminded."""
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 2h because INC-1 replica lag")).ok  # REQ-1
        assert (await h.say(MARK, "approve REQ-1")).ok  # step 2 (dana, dev) is open
        h.clock.advance(hours=5)  # past the policy's remind_after (4h)
        due = await sweep(h.app.deps, drift=False, dry_run=True)
        assert any("REQ-1" in line for line in due.reminded) and due.failed == [], due.lines()
        move(h.files, BOB, department="Finance")
        before = len(await h.events())
        dry = await sweep(h.app.deps, drift=False, dry_run=True)
        assert dry.failed == ["REQ-1"] and not any("REQ-1" in line for line in dry.reminded), dry.lines()
        assert len(await h.events()) == before
        report = await sweep(h.app.deps, drift=False)
        assert report.failed == ["REQ-1"] and report.reminded == [], report.lines()


async def test_the_dry_run_does_not_name_as_failing_a_leavers_request_the_sweep_withdraws(database_url, tmp_path):
    """A leaver's pending request is withdrawn by the leaver sweep, before the reminders see it: the dry run, which
    withdraws nothing, must not name it as failing because its step's only approver left too."""
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h because INC-2 deploy")).ok  # waits on Mark
        h.files.set_active(BOB, False)
        h.files.set_active(MARK, False)
        dry = await sweep(h.app.deps, drift=False, dry_run=True)
        report = await sweep(h.app.deps, drift=False)
        assert BOB in report.terminated and (await h.request(1)).state == "cancelled", report.lines()
        assert report.failed == [] and dry.terminated == report.terminated, report.lines()
        assert dry.failed == report.failed and dry.reminded == report.reminded, dry.lines()
