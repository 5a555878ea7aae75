"""A grant a sweep ends while its extension waits on the chain leaves no approval card with buttons: each person
the extension's open step asked gets an ``outcome`` notice, written to the outbox with the ending, whose send edits
their card (the connector's activity update) to say it closed and why. The sweep is cut off right after its commit
(the process dies before it sends anything): a click on the card is refused naming the ending and records nothing,
and the next delivery edits the card. On SQLite and PostgreSQL, through the Bot Connector stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.policy_watch import PolicyWatch
from handlers.outbox import deliver_pending, notice_lease
from handlers.sweeps import sweep
from tests.slack.test_outbox_settled import CutOnce
from tests.slack.test_swept_endings_close_cards import _end_removed_holders
from tests.support import Files
from tests.teams.cardcheck import actions_of, texts_of
from tests.teams.conftest import TeamsHarness, conversation_id
from tests.test_notice_outbox import _outbox

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


def _files(h: TeamsHarness) -> Files:
    return Files(Path(h.app.settings.policy), Path(h.app.settings.directory))


async def _extension_asked(h: TeamsHarness) -> tuple[str, dict]:
    """Bob holds staging-admin (REQ-1, Mark approved) and asks to extend it: the id of Mark's card of the
    extension, and the data its approve button carries."""
    for email in (BOB, MARK):
        status, _ = await h.post(h.activity("installation_update_add", email))
        assert status == 200
    await h.say(BOB, "request staging-admin for 2h because deploy test")
    first = h.connector.of("send", conversation_id(MARK))[-1]
    await h.click(MARK, "approve", dict(actions_of(first.card or {})[0]["data"]))
    assert (await h.request(1)).state == "active"
    await h.say(BOB, "extend REQ-1 by 1h because a little more")
    ask = h.connector.of("send", conversation_id(MARK))[-1]
    assert ask.card is not None and [a["verb"] for a in actions_of(ask.card)] == ["approve", "deny"]
    return ask.activity_id or "", dict(actions_of(ask.card)[0]["data"])


async def _closed(h: TeamsHarness, card_id: str, data: dict, refused: str, why: str, *, drift: bool = False) -> None:
    """The sweep cut off after its commit; a click on the card is refused naming the ending, recording nothing;
    one delivery past the lease of the process that stopped edits Mark's card to say why, without buttons.
    ``drift``: the sweep runs its drift pass too, cut off at the send of the closing (its finding's notice to the
    security team goes out before, from a transaction of its own)."""
    real = h.app.deps.notifier
    h.app.deps.notifier = CutOnce(real, "waiting on you was closed" if drift else "")  # type: ignore[arg-type]
    try:
        with pytest.raises(asyncio.CancelledError):
            await sweep(h.app.deps, drift=drift)
    finally:
        h.app.deps.notifier = real
    await h.idle()
    pending = [r for r in await _outbox(h) if r["status"] == "pending"]
    assert [r["kind"] for r in pending if r["recipient"] == MARK] == ["outcome"], pending
    assert not [p for p in h.connector.of("update", conversation_id(MARK)) if p.activity_id == card_id]

    before = await h.events()
    answer = await h.click(MARK, "approve", data)
    assert await h.events() == before
    assert "there is nothing to decide" in texts_of(answer) and refused in texts_of(answer), texts_of(answer)
    assert actions_of(answer) == [] or all(a.get("verb") not in ("approve", "deny") for a in actions_of(answer))

    h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
    assert await deliver_pending(h.app.deps) > 0
    await h.idle()
    edits = [p for p in h.connector.of("update", conversation_id(MARK)) if p.activity_id == card_id]
    # the outcome's edit says why, and so does every later redraw (another notice's refresh) of the card
    assert edits and why in texts_of(edits[-1].card or {}), [texts_of(p.card or {}) for p in edits]
    assert not [a for p in edits for a in actions_of(p.card or {}) if a.get("verb") in ("approve", "deny")]
    assert [p for p in h.connector.of("send", conversation_id(MARK)) if why in p.text]  # and a line says it
    assert {r["status"] for r in await _outbox(h)} <= {"sent", "dropped"}
    # the client refreshing the card itself (Teams' refresh invoke) redraws it from the current state: still why
    refreshed = await h.click(MARK, "refresh", {"request_id": 1})
    assert why in texts_of(refreshed), texts_of(refreshed)
    assert not [a for a in actions_of(refreshed) if a.get("verb") in ("approve", "deny")]


async def test_a_movers_revocation_closes_the_extension_card(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    card_id, data = await _extension_asked(h)

    def finance(d: dict) -> None:
        for u in d["users"]:
            if u["email"] == BOB:
                u["department"] = "Finance"

    _files(h).edit_directory(finance)
    await _closed(h, card_id, data, "revoked: ineligible: not eligible", "no longer eligible")
    assert (await h.request(1)).state == "revoked"


async def test_a_drift_ending_closes_the_extension_card(teams_any_db: TeamsHarness) -> None:
    """SPEC §3.6 drift: Bob was taken out of the group by hand and the profile says ``removed_holder: end``, so
    the drift sweep ends the grant (``grant.revoked`` reason ``drift``) while its extension waits on Mark."""
    h = teams_any_db
    _end_removed_holders(Path(h.app.settings.policy))
    assert await PolicyWatch(h.app, str(h.app.settings.policy), quiet=True, wait=True).check() is not None
    card_id, data = await _extension_asked(h)
    await h.app.deps.providers["directory"].remove_member("sg-staging-admin", BOB)  # by hand, not through the bot
    h.clock.advance(minutes=1)
    await _closed(h, card_id, data, "revoked: drift", "revoked for drift D-1", drift=True)
    assert (await h.request(1)).state == "revoked"
    assert [e["data"]["reason"] for e in await h.events() if e["type"] == "grant.revoked"] == ["drift"]
    # the requester's live status card is redrawn as the grant is now, and a line says why
    status = [p for p in h.connector.of("update", conversation_id(BOB))
              if "Your request REQ-1" in texts_of(p.card or {})]
    assert status and "REVOKED" in texts_of(status[-1].card or {}), [texts_of(p.card or {}) for p in status]
    assert "awaiting approval" not in texts_of(status[-1].card or {})
    assert [p for p in h.connector.of("send", conversation_id(BOB))
            if "D-1" in p.text and "the grant is ended" in p.text]


async def test_a_leavers_revocation_closes_the_extension_card(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    card_id, data = await _extension_asked(h)
    _files(h).set_active(BOB, False)
    await _closed(h, card_id, data, "revoked: terminated", f"{BOB} is no longer active")
    assert (await h.request(1)).state == "revoked"


async def test_a_movers_failed_request_closes_the_approvers_card(teams_any_db: TeamsHarness) -> None:
    """A pending request whose requester moved out of the profile's eligibility fails at the sweep
    (tests/compliance/test_movers_pending.py): the approver's card is edited to say so, without buttons, and a
    click on it records nothing."""
    h = teams_any_db
    for email in (BOB, MARK):
        status, _ = await h.post(h.activity("installation_update_add", email))
        assert status == 200
    await h.say(BOB, "request staging-admin for 2h because deploy test")
    ask = h.connector.of("send", conversation_id(MARK))[-1]
    assert ask.card is not None and [a["verb"] for a in actions_of(ask.card)] == ["approve", "deny"]

    def finance(d: dict) -> None:
        for u in d["users"]:
            if u["email"] == BOB:
                u["department"] = "Finance"

    _files(h).edit_directory(finance)
    assert (await sweep(h.app.deps, drift=False)).failed == ["REQ-1"]
    await h.idle()
    assert (await h.request(1)).state == "failed"
    edits = [p for p in h.connector.of("update", conversation_id(MARK)) if p.activity_id == ask.activity_id]
    assert edits and "no longer eligible" in texts_of(edits[-1].card or {}), [texts_of(p.card or {}) for p in edits]
    assert not [a for a in actions_of(edits[-1].card or {}) if a.get("verb") in ("approve", "deny")]
    before = await h.events()
    answer = await h.click(MARK, "approve", dict(actions_of(ask.card)[0]["data"]))
    assert await h.events() == before and "nothing to decide" in texts_of(answer), texts_of(answer)
    assert [p for p in h.connector.of("send", conversation_id(BOB)) if "no longer eligible" in p.text]
