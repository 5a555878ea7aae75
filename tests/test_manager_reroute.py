"""The requester's manager changes while a ``manager`` step waits: the sweep passes the step to the new manager.

The new manager gets the approval card (``approval.rerouted`` records it), the old one is told the step is no
longer theirs and a click of theirs decides nothing; a second sweep, or a second process sweeping at once,
sends no second card.
"""

from __future__ import annotations

from handlers.sweeps import sweep
from tests.support import Harness, RecordingNotifier, before_looking_up, harness, second_process

BOB, MARK, PAT = "bob@example.com", "mark.mgr@example.com", "pat.lead@example.com"


def new_manager(h: Harness, email: str, manager: str) -> None:
    def change(data: dict) -> None:
        next(u for u in data["users"] if u["email"] == email)["manager"] = manager

    h.files.edit_directory(change)


async def test_a_new_manager_gets_the_card_and_the_old_one_is_told(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "request staging-admin for 1h")
        assert r.ok and r.request.state == "pending", r.text
        assert len(h.notifier.to(MARK, "approval")) == 1
        new_manager(h, BOB, PAT)
        report = await h.app.service.sweep()
        assert report.rerouted == ["REQ-1"], report.lines()
        assert "reroute: 1 — REQ-1" in report.lines()
        [event] = await h.events("approval.rerouted")
        assert event["actor"] == "system" and event["request_id"] == "REQ-1"
        data = event["data"]
        assert (data["step"], data["approvers"], data["from"], data["to"], data["reason"]) == (
            1, [PAT], [MARK], [PAT], "manager-changed")
        [card] = h.notifier.to(PAT, "approval")
        assert card.request_id == 1
        assert "manager" in card.text and MARK in card.text, card.text
        [told] = h.notifier.to(MARK, "outcome")
        assert "no longer yours" in told.text and PAT in told.text, told.text
        assert told.request_id == 1
        # idempotent: the next sweep sends nothing more
        again = await h.app.service.sweep()
        assert again.rerouted == [] and len(await h.events("approval.rerouted")) == 1
        assert len(h.notifier.to(PAT, "approval")) == 1
        # the old manager's click decides nothing and says why; the new manager decides
        r = await h.say(MARK, "approve REQ-1")
        assert not r.ok, r.text
        refused = (await h.events("approval.refused"))[-1]
        assert refused["actor"] == MARK and refused["data"]["reason"] == "not-an-approver"
        assert not await h.events("approval.granted")
        r = await h.say(PAT, "approve REQ-1")
        assert r.ok and r.request.state == "active", r.text


async def test_a_request_asked_before_the_request_kept_whom_it_asked_is_judged_from_its_events(database_url,
                                                                                              tmp_path):
    """A request written before requests kept ``asked`` (migration 0019) has none: whom its step asked is read
    from its events, as it was, and the re-route and the old manager's refusal work the same."""
    from sqlalchemy import update

    from store import schema as t

    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h")).ok
        async with h.app.store.write() as repo:
            await repo.conn.execute(update(t.requests).values(asked_step=None, asked=None, asked_at=None))
        new_manager(h, BOB, PAT)
        assert (await h.app.service.sweep()).rerouted == ["REQ-1"]
        assert len(h.notifier.to(PAT, "approval")) == 1
        r = await h.say(MARK, "approve REQ-1")
        assert not r.ok and (await h.events("approval.refused"))[-1]["data"]["reason"] == "not-an-approver"
        assert (await h.say(PAT, "approve REQ-1")).ok


async def test_a_waiting_extension_is_passed_to_the_new_manager(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 2h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(BOB, "extend REQ-1 by 1h because release night")).ok
        new_manager(h, BOB, PAT)
        report = await h.app.service.sweep()
        assert report.rerouted == ["REQ-1"], report.lines()
        [event] = await h.events("approval.rerouted")
        assert event["data"]["extension"] is True and event["data"]["to"] == [PAT]
        [card] = h.notifier.to(PAT, "approval")
        assert "extend staging-admin by 1h" in card.text, card.text
        assert (await h.say(PAT, "approve REQ-1")).ok
        assert (await h.events("grant.extended"))[-1]["actor"] == PAT


async def test_no_reroute_while_the_manager_is_unchanged_or_in_a_dry_run(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        assert (await h.app.service.sweep()).rerouted == []
        new_manager(h, BOB, PAT)
        assert (await h.app.service.sweep(dry_run=True)).rerouted == ["REQ-1"]
        assert not await h.events("approval.rerouted") and not h.notifier.to(PAT)


async def test_two_processes_sweeping_at_once_send_one_card(database_url, tmp_path, monkeypatch) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h")).ok
        new_manager(h, BOB, PAT)
        notifier = RecordingNotifier()
        async with second_process(h, notifier) as other:
            # the other process has read the step as asking Mark (and looks him up), when this one's sweep passes
            # the step to Pat and commits; then the other goes on to its write
            ran = before_looking_up(monkeypatch, other, MARK, lambda: sweep(h.app.deps))
            theirs = await sweep(other.deps)
        assert ran and ran[0].rerouted == ["REQ-1"], ran
        assert theirs.rerouted == []
        assert len(await h.events("approval.rerouted")) == 1
        assert len(h.notifier.to(PAT, "approval")) == 1 and not notifier.to(PAT)


async def test_status_shows_whom_each_reroute_took_the_step_from_and_gave_it_to(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h")).ok
        new_manager(h, BOB, PAT)
        assert (await h.app.service.sweep()).rerouted == ["REQ-1"]
        new_manager(h, BOB, MARK)  # and back
        assert (await h.app.service.sweep()).rerouted == ["REQ-1"]
        text = (await h.say("sam.sec@example.com", "status REQ-1")).text
        lines = [line for line in text.splitlines() if "approval.rerouted" in line]
        assert len(lines) == 2, text
        assert f"from={MARK}, to={PAT}" in lines[0] and f"from={PAT}, to={MARK}" in lines[1], lines


async def test_an_old_manager_who_could_sign_an_earlier_step_is_refused_and_recorded(database_url, tmp_path):
    """Sasha (security, who could have signed step 1) was asked as Bob's manager at step 2; once the step is
    passed to Pat her approval decides nothing and is recorded, not answered as a step already decided."""
    from tests.test_extension_policy import new_policy

    sam, sasha = "sam.sec@example.com", "sasha.sec@example.com"
    async with harness(database_url, tmp_path) as h:
        await new_policy(h, "2026.12", ("    justification: optional\n    approval:\n      - manager\n",
                                        "    justification: optional\n    approval:\n      - {any_of: security}\n"
                                        "      - manager\n"))
        new_manager(h, BOB, sasha)
        assert (await h.say(BOB, "request staging-admin for 1h")).ok
        assert (await h.say(sam, "approve REQ-1")).ok
        assert len(h.notifier.to(sasha, "approval")) == 2  # step 1, then step 2 as the manager
        new_manager(h, BOB, PAT)
        assert (await h.app.service.sweep()).rerouted == ["REQ-1"]
        r = await h.say(sasha, "approve REQ-1")
        assert not r.ok and r.rule == "not-an-approver", r.text
        refused = (await h.events("approval.refused"))[-1]
        assert refused["actor"] == sasha
        assert (refused["data"]["step"], refused["data"]["reason"]) == (2, "not-an-approver")
        assert (await h.request(1)).state == "pending"


async def test_a_new_manager_deciding_before_any_sweep_is_recorded_as_asked_first(database_url, tmp_path):
    """Who decided is always someone the record says was asked: a new manager who approves before a sweep passed
    the step on gets ``approval.rerouted`` recorded just before their decision; the old manager is told."""
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "request staging-admin for 1h")
        assert r.ok and r.request.state == "pending", r.text
        new_manager(h, BOB, PAT)
        r = await h.say(PAT, "approve REQ-1 new lead here")
        assert r.ok and r.request.state == "active", r.text
        events = [e for e in await h.events() if e["type"].startswith("approval.")]
        assert [e["type"] for e in events] == ["approval.requested", "approval.rerouted", "approval.granted"]
        rerouted = events[1]["data"]
        assert (rerouted["from"], rerouted["to"], rerouted["reason"]) == ([MARK], [PAT], "manager-changed")
        assert h.notifier.to(PAT, "approval") == []  # no card for a step they just decided
        [told] = h.notifier.to(MARK, "outcome")
        assert "no longer yours" in told.text, told.text
        # nothing left for a sweep to pass on
        assert (await h.app.service.sweep()).rerouted == []


async def test_a_withdrawal_before_any_sweep_tells_the_manager_holding_the_card(database_url, tmp_path):
    """The requester's manager changed and no sweep passed the step on: the card is still the old manager's, so a
    withdrawal closes it there and tells them; the new manager, who never got a card, is told nothing. The same
    for an extension closed by the grant's release."""
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h")).ok
        new_manager(h, BOB, PAT)
        r = await h.say(BOB, "cancel REQ-1")
        assert r.ok and r.request.state == "cancelled", r.text
        [told] = h.notifier.to(MARK, "outcome")
        assert "withdrawn" in told.text and told.request_id == 1, told.text
        assert h.notifier.to(PAT, "outcome") == []
        # an extension asked of Pat; Bob's manager then goes back to Mark before a sweep: Pat holds the card
        assert (await h.say(BOB, "request staging-admin for 2h")).ok
        assert (await h.say(PAT, "approve REQ-2")).ok
        assert (await h.say(BOB, "extend REQ-2 by 1h because more")).ok
        assert len(h.notifier.to(PAT, "approval")) == 2
        new_manager(h, BOB, MARK)
        r = await h.say(BOB, "release REQ-2")
        assert r.ok, r.text
        assert [n.request_id for n in h.notifier.to(PAT, "outcome") if "extension" in n.text] == [2]
        assert [n for n in h.notifier.to(MARK, "outcome") if n.request_id == 2] == []


async def test_the_new_manager_is_reminded_in_their_turn(database_url, tmp_path):
    """The old manager was reminded; the step then went to the new one: they get a reminder once the step has
    waited ``remind_after`` (4h in the example policy) on them, not at once and not never."""
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "request staging-admin for 1h")
        assert r.ok and r.request.state == "pending", r.text
        h.clock.advance(hours=4, minutes=1)
        assert (await h.app.service.sweep()).reminded == ["REQ-1"]
        assert len(h.notifier.to(MARK, "reminder")) == 1
        h.clock.advance(hours=1)
        new_manager(h, BOB, PAT)
        report = await h.app.service.sweep()
        assert report.rerouted == ["REQ-1"] and report.reminded == []
        h.clock.advance(hours=3, minutes=58)  # 3h58m since the re-route: not yet
        assert (await h.app.service.sweep()).reminded == []
        h.clock.advance(minutes=3)
        assert (await h.app.service.sweep()).reminded == ["REQ-1"]
        [reminder] = h.notifier.to(PAT, "reminder")
        assert reminder.request_id == 1
        assert len(h.notifier.to(MARK, "reminder")) == 1  # the old manager is not reminded again
        reminded = await h.events("approval.reminded")
        assert [e["data"]["approvers"] for e in reminded] == [[MARK], [PAT]]
        assert (await h.app.service.sweep()).reminded == []  # once


def test_an_identity_provider_that_cannot_answer_reroutes_nothing(tmp_path, sqlite_url):
    """Through the real CLI: while the identity provider is down, the sweep cannot say who the manager is now, so
    the step stays with whom it asked (nothing recorded, the failed look-up printed); once it answers again, the
    step goes to the new manager once."""
    from tests.support import chat, cli, copy_examples
    from tests.test_sweep_idp_down import DEAD_IDP

    files = copy_examples(tmp_path)
    assert "REQ-1 submitted" in chat(BOB, "request staging-admin for 1h", db=sqlite_url, files=files)

    def change(data: dict) -> None:
        next(u for u in data["users"] if u["email"] == BOB)["manager"] = PAT

    files.edit_directory(change)
    down = cli("sweep", db=sqlite_url, files=files, env=DEAD_IDP)
    assert down.returncode == 0 and "Traceback" not in down.stderr, down.stderr[-800:]
    assert "reroute: 0" in down.stdout and "could not check" in down.stdout, down.stdout
    status = chat(BOB, "status REQ-1", db=sqlite_url, files=files)
    assert "approval.rerouted" not in status, status
    up = cli("sweep", db=sqlite_url, files=files)
    assert "reroute: 1 — REQ-1" in up.stdout, up.stdout
    assert "reroute: 0" in cli("sweep", db=sqlite_url, files=files).stdout
    assert "Approved REQ-1" in chat(PAT, "approve REQ-1", db=sqlite_url, files=files)
