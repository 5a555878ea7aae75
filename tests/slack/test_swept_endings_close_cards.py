"""A request or extension that a sweep ends while it waits on its chain leaves no approval message with buttons:
each person its open step asked gets an ``outcome`` notice, written to the outbox with the ending, whose send edits
their approval message (``chat.update``) to say it closed and why. The sweep is cut off right after its commit (the
process dies before it sends anything): the messages still show buttons, a click on one is refused naming the
ending and records nothing, and the next delivery edits them. On SQLite and PostgreSQL, through the Slack stand-in.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.policy_watch import PolicyWatch
from handlers.outbox import deliver_pending, notice_lease
from handlers.sweeps import sweep
from tests.compliance.test_movers import move
from tests.slack.conftest import UID, SlackHarness
from tests.slack.test_outbox_settled import CutOnce
from tests.test_notice_outbox import _outbox

BOB, MARK = "bob@example.com", "mark.mgr@example.com"
DANA, SAM, SASHA = "dana.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com"


async def _extension_asked(h: SlackHarness) -> object:
    """Bob holds staging-admin (REQ-1, his manager Mark approved) and asks to extend it: Mark's message of the
    extension, with its buttons."""
    await h.command(BOB, "request staging-admin for 2h")
    [first] = h.api.dm(UID[MARK])
    await h.click(MARK, "approve", "REQ-1", message=first)
    assert (await h.request(1)).state == "active"
    await h.command(BOB, "extend REQ-1 by 1h because more")
    [ask] = [m for m in h.api.dm(UID[MARK]) if m.action_ids == ["approve", "deny"]]
    return ask


async def _swept_and_cut(h: SlackHarness, words: str = "") -> list[dict]:
    """A sweep whose first send (of a notice saying ``words``) is cut off (the process stops right after the commit
    that decided it): the rows it left."""
    real = h.app.deps.notifier
    h.app.deps.notifier = CutOnce(real, words)  # type: ignore[arg-type]
    try:
        with pytest.raises(asyncio.CancelledError):
            await sweep(h.app.deps, drift=False)
    finally:
        h.app.deps.notifier = real
    await h.settle()
    return [r for r in await _outbox(h) if r["status"] == "pending"]


async def _stale_click_refused(h: SlackHarness, who: str, ref: str, message: object, why: str) -> None:
    """A click on the message that still shows buttons: refused, naming the ending; nothing recorded."""
    before = await h.events()
    await h.click(who, "approve", ref, message=message)
    assert await h.events() == before
    text = message.all_text  # type: ignore[attr-defined]
    assert "there is nothing to decide" in text and why in text, text


async def _delivered(h: SlackHarness, who: str, message: object, why: str) -> None:
    """Past the lease of the process that stopped, one delivery sends what it left: ``who``'s message is edited
    (``chat.update``) to say why, without buttons, and a DM line says it too."""
    updates = len(h.api.calls_of("chat.update"))
    h.clock.advance(seconds=notice_lease(h.app.deps.notifier).total_seconds() + 1)
    assert await deliver_pending(h.app.deps) > 0
    await h.settle()
    ts = message.ts  # type: ignore[attr-defined]
    edits = [c for c in h.api.calls_of("chat.update")[updates:] if c.args.get("ts") == ts]
    assert any(why in str(c.args.get("blocks")) for c in edits), [c.args.get("text") for c in edits]
    assert message.action_ids == [] and why in message.all_text  # type: ignore[attr-defined]  # later redraws too
    assert [m for m in h.api.dm(UID[who]) if m.ts != ts and why in m.text and "waiting on you was closed" in m.text]
    assert {r["status"] for r in await _outbox(h)} <= {"sent", "dropped"}


async def test_a_movers_revocation_closes_the_extension_message(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    ask = await _extension_asked(h)
    move(h, BOB, "Finance")
    pending = await _swept_and_cut(h)
    assert (await h.request(1)).state == "revoked"
    [closing] = [r for r in pending if r["recipient"] == MARK]
    assert closing["kind"] == "outcome" and "no longer eligible (ineligible: not eligible)" in closing["text"]
    assert ask.action_ids == ["approve", "deny"]  # nothing was sent before the stop
    await _stale_click_refused(h, MARK, "REQ-1", ask, "revoked: ineligible: not eligible")
    await _delivered(h, MARK, ask, "no longer eligible")


async def test_a_leavers_revocation_closes_the_extension_message(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    ask = await _extension_asked(h)
    h.files.set_active(BOB, False)
    pending = await _swept_and_cut(h)
    assert (await h.request(1)).state == "revoked"
    assert [r["kind"] for r in pending if r["recipient"] == MARK] == ["outcome"]
    await _stale_click_refused(h, MARK, "REQ-1", ask, "revoked: terminated")
    await _delivered(h, MARK, ask, f"{BOB} is no longer active")


async def test_an_expiry_closes_the_extension_message(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    ask = await _extension_asked(h)
    h.clock.advance(hours=3)
    await _swept_and_cut(h)
    assert (await h.request(1)).state == "expired"
    await _stale_click_refused(h, MARK, "REQ-1", ask, "(expired)")
    await _delivered(h, MARK, ask, "the grant expired before it was decided")


async def test_a_step_that_can_no_longer_be_satisfied_closes_the_others_messages(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    await h.command(BOB, "request prod-db-read for 2h because INC-1 replica lag")
    for who in (MARK, DANA):
        [card] = [m for m in h.api.dm(UID[who]) if m.action_ids == ["approve", "deny"]]
        await h.click(who, "approve", "REQ-1", message=card)
    [ask] = [m for m in h.api.dm(UID[SAM]) if m.action_ids == ["approve", "deny"]]  # 2 of security: Sam and Sasha
    h.files.set_active(SASHA, False)  # she left: two of the security team can no longer be found
    pending = await _swept_and_cut(h, "can no longer be satisfied")  # (the leaver sweep's notice to the team is sent)
    record = await h.request(1)
    assert record.state == "failed"
    # Sam's message closes; Sasha, who left, is not written to
    assert [r["kind"] for r in pending if r["recipient"] == SAM] == ["outcome"]
    assert not [r for r in pending if r["recipient"] == SASHA and r["kind"] == "outcome"]
    await _stale_click_refused(h, SAM, "REQ-1", ask, f"failed ({record.failure})")
    await _delivered(h, SAM, ask, "can no longer be satisfied")


async def test_a_message_slack_no_longer_has_does_not_hold_the_notice_back(slack_any_db: SlackHarness) -> None:
    h = slack_any_db
    ask = await _extension_asked(h)
    with h.api.lock:  # Mark deleted the message: Slack answers its edit message_not_found
        del h.api.messages[(ask.channel, ask.ts)]
    move(h, BOB, "Finance")
    await sweep(h.app.deps, drift=False)
    await h.settle()
    [row] = [r for r in await _outbox(h) if r["recipient"] == MARK]
    assert (row["kind"], row["status"], row["attempts"]) == ("outcome", "sent", 1)
    assert [c for c in h.api.calls_of("chat.update", ok=False) if c.args.get("ts") == ask.ts]
    assert [m for m in h.api.dm(UID[MARK]) if "no longer eligible" in m.text]  # the line is sent all the same


def _end_removed_holders(path: Path) -> None:
    """A new version of the policy whose staging-admin says ``removed_holder: end``."""
    text = path.read_text()
    path.write_text(text.replace('version: "', 'version: "end-', 1).replace(
        "    group: sg-staging-admin\n", "    group: sg-staging-admin\n    removed_holder: end\n", 1))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


async def test_a_drift_ending_closes_the_extension_message(slack_any_db: SlackHarness) -> None:
    """SPEC §3.6 drift: the holder was taken out of the group by hand and the profile says ``removed_holder: end``,
    so the drift sweep ends the grant (``grant.revoked`` reason ``drift``) while its extension waits on Mark."""
    h = slack_any_db
    _end_removed_holders(h.files.policy)
    assert await PolicyWatch(h.app, str(h.files.policy), quiet=True, wait=True).check() is not None  # put in force
    assert h.app.deps.policy.profile("staging-admin").removed_holder == "end"  # type: ignore[union-attr]
    ask = await _extension_asked(h)
    await h.app.deps.providers["directory"].remove_member("sg-staging-admin", BOB)  # by hand, not through the bot
    h.clock.advance(minutes=1)
    real = h.app.deps.notifier
    h.app.deps.notifier = CutOnce(real, "waiting on you was closed")  # type: ignore[arg-type]
    try:
        with pytest.raises(asyncio.CancelledError):
            await sweep(h.app.deps)
    finally:
        h.app.deps.notifier = real
    await h.settle()
    assert (await h.request(1)).state == "revoked"
    [revoked] = [e for e in await h.events() if e["type"] == "grant.revoked"]
    assert revoked["data"]["reason"] == "drift", revoked
    pending = [r for r in await _outbox(h) if r["status"] == "pending"]
    [closing] = [r for r in pending if r["recipient"] == MARK]
    assert closing["kind"] == "outcome" and "revoked for drift D-1" in closing["text"], closing
    assert ask.action_ids == ["approve", "deny"]  # nothing was sent to Mark before the stop
    await _stale_click_refused(h, MARK, "REQ-1", ask, "revoked: drift")
    await _delivered(h, MARK, ask, "revoked for drift D-1")
    # the requester's live status message is redrawn as the grant is now, and the DM line says why
    [status] = [m for m in h.api.dm(UID[BOB]) if m.all_text.startswith("Your request REQ-1")]
    assert "REVOKED" in status.all_text and "awaiting approval" not in status.all_text, status.all_text
    assert [m for m in h.api.dm(UID[BOB]) if "D-1" in m.text and "the grant is ended" in m.text]
