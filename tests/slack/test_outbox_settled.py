"""What the drift sweep settles by itself, and the scheduled evidence deliveries, are told through the outbox
(handlers/outbox.py), sent through the Slack stand-in: each notice is a pending row once the record that decides
it is committed (a holder put back, a grant ended, a finding resolved, an accept withdrawn past the SLA, an
evidence delivery failed or done); a send cut off after that commit (the sweep cancelled at a stop) is made by
the next delivery, once. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import build_app
from bot.evidence_delivery import run_scheduled_evidence
from bot.settings import Settings
from bot.slack.notifier import SlackNotifier
from handlers.outbox import deliver_pending, notice_lease
from handlers.ports import Notice
from handlers.sweeps import sweep
from tests.slack.conftest import UID
from tests.standins.slack import SlackWebApi
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples, harness
from tests.test_evidence_schedule import with_evidence
from tests.test_notice_outbox import _outbox

ALICE, BOB, SAM = "alice@example.com", "bob@example.com", "sam.sec@example.com"
GROUP = "sg-prod-db-read"
WHY = "because CHG-12 standing read access for the migration"


class CutOnce:
    """The Slack channel, whose first send of a notice saying ``words`` is cut off (a sweep cancelled while Slack
    holds it, at a stop); the others are sent."""

    def __init__(self, real: SlackNotifier, words: str) -> None:
        self.real, self.words, self.cut = real, words, 1

    @property
    def send_budget(self) -> timedelta:
        return self.real.send_budget

    async def notify(self, notices: list[Notice]) -> None:
        await self.real.notify(notices)

    async def send(self, notices: list[Notice]) -> list[str | None]:
        if self.cut and any(self.words in n.text for n in notices):
            self.cut -= 1
            raise asyncio.CancelledError
        return await self.real.send(notices)


def _slack(h: Harness, api: SlackWebApi) -> SlackNotifier:
    """The Slack channel's notifier against the stand-in, as ``accessbot serve`` builds it."""
    api.reset()
    notifier = SlackNotifier(h.app, AsyncWebClient(token=SlackWebApi.TOKEN, base_url=api.url + "/api/"))
    h.app.deps.notifier = notifier
    return notifier


def _dm(api: SlackWebApi, who: str, words: str) -> list[str]:
    return [m.all_text for m in api.dm(UID[who]) if words in m.all_text]


def _said(api: SlackWebApi, who: str, start: str) -> list[str]:
    """The DM lines to ``who`` that begin with ``start`` (not the status message a line is also noted on)."""
    return [m.text for m in api.dm(UID[who]) if m.text.startswith(start)]


async def _cut_then_delivered(h: Harness, real: SlackNotifier, run: Callable[[], Awaitable[object]],
                              words: str, *, stale: str | None = None) -> list[dict]:
    """``run`` with its first send of a notice saying ``words`` cut off: the pending rows it left; then, past the
    lease of the process cut off, one delivery (through Slack) and a second one that finds nothing left. Rows
    saying ``stale`` no longer hold by then: they end dropped, never sent."""
    h.app.deps.notifier = CutOnce(real, words)
    with pytest.raises(asyncio.CancelledError):
        await run()
    pending = [r for r in await _outbox(h) if r["status"] == "pending"]
    assert any(words in r["text"] for r in pending), pending
    h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
    h.app.deps.notifier = real
    dropped = [r for r in pending if stale is not None and stale in r["text"]]
    assert await deliver_pending(h.app.deps) == len(pending) - len(dropped)
    assert await deliver_pending(h.app.deps) == 0
    await real.idle()
    rows = await _outbox(h)
    assert {r["status"] for r in rows if stale is None or stale not in r["text"]} == {"sent"}
    assert {r["status"] for r in rows if stale is not None and stale in r["text"]} <= {"dropped"}
    return pending


async def _granted_then_removed(h: Harness) -> None:
    r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: Alice is on call
    assert r.ok and (await h.request(1)).state == "active", r.text
    await h.app.deps.providers["directory"].remove_member(GROUP, ALICE)  # by hand, not through the bot
    h.clock.advance(minutes=1)


async def test_a_holder_put_back_is_told_through_the_outbox(database_url, tmp_path, slack_api):
    async with harness(database_url, tmp_path) as h:
        real = _slack(h, slack_api)
        await _granted_then_removed(h)
        pending = await _cut_then_delivered(h, real, lambda: sweep(h.app.deps), "added back", stale="is queued")
        (resolved,) = await h.events("drift.resolved")
        # the re-add landed at once: nobody is told it was queued (that is written only with an answer that leaves it
        # queued), so no row of it is left behind either
        assert not [r for r in await _outbox(h) if "is queued" in r["text"]]
        assert not [m for m in slack_api.dm(UID[ALICE]) + slack_api.dm(UID[SAM]) if "queued" in m.all_text]
        assert resolved["data"]["resolution"] == "restored" and ALICE in await h.members(GROUP)
        security = sorted(h.app.deps.policy.security_members())
        assert sorted((r["recipient"], r["kind"]) for r in pending if "added back" in r["text"]) == sorted(
            [(ALICE, "status")] + [(m, "drift") for m in security])
        # her status message says it, and one DM line tells her (an edited message does not notify)
        assert len(_said(slack_api, ALICE, "D-1: alice@example.com holds REQ-1")) == 1, slack_api.dm(UID[ALICE])
        assert "added back" in _said(slack_api, ALICE, "D-1: alice@example.com holds REQ-1")[0]
        [line] = _dm(slack_api, SAM, "added back")
        assert line.startswith("Drift: D-1: alice@example.com holds REQ-1"), line
        await sweep(h.app.deps)  # nothing more to tell
        assert len(_dm(slack_api, SAM, "added back")) == 1


async def test_a_grant_ended_for_a_removed_holder_is_told_through_the_outbox(database_url, tmp_path, slack_api):
    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text().replace(
        f"    group: {GROUP}\n", f"    group: {GROUP}\n    removed_holder: end\n", 1))
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory), env={})
    clock, recording = MutableClock(), RecordingNotifier()
    async with build_app(settings, clock=clock, notifier=recording) as app:
        h = Harness(app, clock, recording, files)
        real = _slack(h, slack_api)
        await _granted_then_removed(h)
        pending = await _cut_then_delivered(h, real, lambda: sweep(h.app.deps), "the grant is ended")
        assert (await h.request(1)).state == "revoked"
        assert {(r["recipient"], r["kind"]) for r in pending} >= {(ALICE, "status"), (SAM, "drift")}
        [line] = _said(slack_api, ALICE, "D-1: alice@example.com holds REQ-1")
        assert "the grant is ended" in line
        assert len(_dm(slack_api, SAM, "the grant is ended")) == 1


async def test_a_finding_resolved_by_a_sweep_edits_the_card_through_the_outbox(database_url, tmp_path, slack_api):
    async with harness(database_url, tmp_path) as h:
        real = _slack(h, slack_api)
        h.files.add_to_group(GROUP, BOB)  # by hand: no grant behind it
        await sweep(h.app.deps)
        await real.idle()
        [card] = [m for m in slack_api.dm(UID[SAM]) if "Drift D-1" in m.all_text]
        await h.app.deps.providers["directory"].remove_member(GROUP, BOB)  # gone by other means
        await sweep(h.app.deps)  # seen gone once: it resolves after the unknown grace
        h.clock.advance(seconds=h.app.deps.policy.safety.unknown_grace.total_seconds() + 1)
        pending = await _cut_then_delivered(h, real, lambda: sweep(h.app.deps), "resolved (gone)")
        (resolved,) = await h.events("drift.resolved")
        assert resolved["data"]["resolution"] == "gone"
        assert {r["kind"] for r in pending} == {"drift_outcome"} and SAM in {r["recipient"] for r in pending}
        [edited] = [m for m in slack_api.dm(UID[SAM]) if m.ts == card.ts]
        assert "D-1 resolved (gone)" in edited.all_text, edited.all_text
        assert edited.action_ids == []  # its buttons are gone
        assert len(edited.edits) == 1


async def test_an_accept_withdrawn_past_the_sla_is_told_through_the_outbox(database_url, tmp_path, slack_api):
    async with harness(database_url, tmp_path) as h:
        real = _slack(h, slack_api)
        h.files.add_to_group(GROUP, BOB)
        await sweep(h.app.deps)
        await real.idle()
        assert (await h.say(SAM, f"drift accept D-1 for 1d {WHY}")).ok
        h.clock.advance(hours=25)  # past safety.drift_sla, undecided
        pending = await _cut_then_delivered(h, real, lambda: sweep(h.app.deps), "drift accept of D-1")
        assert (await h.request(1)).state == "cancelled" and BOB not in await h.members(GROUP)
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("removed", "REQ-1")
        kinds = {(r["recipient"], r["kind"]) for r in pending}
        assert {(SAM, "drift"), (SAM, "drift_outcome")} <= kinds, kinds
        assert len(_dm(slack_api, SAM, "REQ-1 (drift accept of D-1) was undecided within safety.drift_sla")) == 1
        assert any("D-1 resolved (removed)" in m.all_text for m in slack_api.dm(UID[SAM])), slack_api.dm(UID[SAM])


async def test_scheduled_evidence_notices_go_through_the_outbox(database_url, tmp_path: Path, slack_api):
    files = copy_examples(tmp_path)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")  # the first delivery fails
    with_evidence(tmp_path, {"quarterly": True, "deliver_to": str(blocked / "evidence")})
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory), env={})
    clock, recording = MutableClock(), RecordingNotifier()
    async with build_app(settings, clock=clock, notifier=recording) as app:
        h = Harness(app, clock, recording, files)
        real = _slack(h, slack_api)
        pending = await _cut_then_delivered(h, real, lambda: run_scheduled_evidence(app), "failed (attempt 1)")
        security = sorted(h.app.deps.policy.security_members())
        assert sorted((r["recipient"], r["kind"]) for r in pending) == [(m, "failure") for m in security]
        (failed,) = await h.events("evidence.delivery_failed")
        assert failed["data"]["attempt"] == 1
        assert len(_dm(slack_api, SAM, "failed (attempt 1)")) == 1

        blocked.unlink()
        h.clock.advance(minutes=6)  # the delivery's retry is due
        pending = await _cut_then_delivered(h, real, lambda: run_scheduled_evidence(app), "Delivered quarterly")
        assert sorted((r["recipient"], r["kind"]) for r in pending) == [(m, "info") for m in security]
        assert len(await h.events("evidence.delivered")) == 1
        assert len(_dm(slack_api, SAM, "Delivered quarterly evidence")) == 1
        assert len(_dm(slack_api, SAM, "failed (attempt 1)")) == 1
