"""The security team's lines of a drift sweep (handlers/outbox.py ``batched``): what one sweep settled for many
holders reaches each security member as one Slack DM listing them, while each line stays its own outbox row,
written with what decides it and marked once; a delivery cut off part-way, or a combined send Slack refuses (429,
500), leaves every row to the next delivery, none lost and none sent twice. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable

import pytest

from bot.slack.notifier import SlackNotifier
from handlers.outbox import BATCH_LINES, deliver_pending, notice_lease
from handlers.ports import Notice
from handlers.sweeps import sweep
from tests.slack.conftest import UID
from tests.slack.test_outbox_settled import GROUP, _dm, _slack
from tests.standins.slack import SlackWebApi, block_text
from tests.support import Harness, harness
from tests.test_notice_outbox import _outbox

SAM, SASHA = "sam.sec@example.com", "sasha.sec@example.com"
HEADING = "Drift sweep:"


def _holder(i: int) -> str:
    return f"holder{i:02d}@example.com"


def _rnd_holder(i: int) -> str:
    """An address every character of which Slack's escaping grows fivefold, every other one (``&`` → ``&amp;``)."""
    return "r&d&" * 14 + f"h{i:02d}@example.com"


async def _holders_removed(h: Harness, api: SlackWebApi, n: int,
                          holder: Callable[[int], str] = _holder) -> list[str]:
    """``n`` people on call, each granted prod-db-read (auto-approved), then each taken out of the group by hand
    (not through the bot): the next sweep puts every one back."""
    people = [holder(i) for i in range(1, n + 1)]

    def hire(data: dict) -> None:
        for i, email in enumerate(people, start=1):
            data["users"].append({"email": email, "name": f"Holder {i}", "department": "Engineering",
                                  "title": "Software Engineer", "employment_type": "FTE",
                                  "manager": "mark.mgr@example.com", "active": True, "slack_id": f"U0H{i:02d}"})
        data["groups"]["oncall"] = [*data["groups"]["oncall"], *people]

    h.files.edit_directory(hire)
    for email in people:
        r = await h.say(email, "request prod-db-read for 30m because INC-7 page")
        assert r.ok, r.text
    for email in people:
        await h.app.deps.providers["directory"].remove_member(GROUP, email)
    h.clock.advance(minutes=1)
    return people


async def _told_rows(h: Harness) -> list[dict]:
    """The outbox rows of what the sweep settled. Each re-add landed at once: the notices that it is queued, written
    with its plan, are dropped as stale when taken (never sent), and left out here."""
    rows = await _outbox(h)
    queued = [r for r in rows if "adding them back is queued" in r["text"]]
    assert all(r["status"] == "dropped" and r["last_error"].endswith("landed already") for r in queued
               if r["status"] != "pending"), [(r["status"], r["last_error"]) for r in queued]
    return [r for r in rows if r not in queued]


def _combined(api: SlackWebApi, who: str) -> list[str]:
    """The combined messages to ``who``, as their blocks show them (the notification text is cut shorter)."""
    return [block_text(m.blocks) for m in api.dm(UID[who]) if m.text.startswith(HEADING)]


def _lists_every_holder(text: str, n: int, holder: Callable[[int], str] = _holder) -> None:
    shown = min(n, BATCH_LINES)
    assert text.startswith(f"{HEADING} {n} notices"), text
    for i in range(1, shown + 1):
        assert f"{holder(i)} holds REQ-{i} but was not in directory/{GROUP}: added back" in text, (i, text)
    for i in range(shown + 1, n + 1):
        assert holder(i) not in text, (i, text)
    if n > shown:
        assert f"and {n - shown} more: say `report drift`" in text, text


class CutAt:
    """The Slack channel, whose first send to ``who`` of a message starting ``start`` is cut off (the sweep
    cancelled while Slack holds it, at a stop); every other send goes through."""

    def __init__(self, real: SlackNotifier, who: str, start: str) -> None:
        self.real, self.who, self.start, self.cut = real, who, start, 1

    @property
    def send_budget(self):  # type: ignore[no-untyped-def]
        return self.real.send_budget

    async def notify(self, notices: list[Notice]) -> None:
        await self.real.notify(notices)

    async def send(self, notices: list[Notice]) -> list[str | None]:
        if self.cut and any(n.recipient == self.who and n.text.startswith(self.start) for n in notices):
            self.cut -= 1
            raise asyncio.CancelledError
        return await self.real.send(notices)


class RefusedAt(CutAt):
    """The Slack channel, whose first send to ``who`` of a message starting ``start`` meets a Slack answering
    ``status`` (the stand-in's next request)."""

    def __init__(self, real: SlackNotifier, api: SlackWebApi, who: str, start: str, status: int) -> None:
        super().__init__(real, who, start)
        self.api, self.status = api, status

    async def send(self, notices: list[Notice]) -> list[str | None]:
        if self.cut and any(n.recipient == self.who and n.text.startswith(self.start) for n in notices):
            self.cut -= 1
            self.api.fail_next(1, status=self.status, retry_after=1)
        return await self.real.send(notices)


async def test_many_holders_settled_in_one_sweep_reach_each_security_member_as_one_dm(database_url, tmp_path,
                                                                                      slack_api):
    n = BATCH_LINES + 5
    async with harness(database_url, tmp_path) as h:
        people = await _holders_removed(h, slack_api, n)
        real = _slack(h, slack_api)
        await sweep(h.app.deps)
        await real.idle()
        assert set(people) <= set(await h.members(GROUP))
        assert len(await h.events("drift.resolved")) == n
        rows = await _told_rows(h)
        # one row per line, each marked sent once
        for member in (SAM, SASHA):
            mine = [r for r in rows if r["recipient"] == member and r["kind"] == "drift"]
            assert len(mine) == n and {(r["status"], r["attempts"]) for r in mine} == {("sent", 1)}, mine
            [text] = _combined(slack_api, member)
            _lists_every_holder(text, n)
            assert _dm(slack_api, member, "added back") == [m.all_text for m in slack_api.dm(UID[member])
                                                           if m.text.startswith(HEADING)]
        for i, email in enumerate(people, start=1):  # each holder is still told on their own
            told = [m for m in slack_api.dm(f"U0H{i:02d}") if f"D-{i}: {email} holds REQ-{i}" in m.all_text]
            assert len(told) == 1, slack_api.dm(f"U0H{i:02d}")
        await sweep(h.app.deps)  # nothing more to tell
        assert len(_combined(slack_api, SAM)) == 1 and len(_combined(slack_api, SASHA)) == 1


async def test_a_delivery_cut_off_part_way_sends_the_rest_once(database_url, tmp_path, slack_api):
    n = 6
    async with harness(database_url, tmp_path) as h:
        await _holders_removed(h, slack_api, n)
        real = _slack(h, slack_api)
        h.app.deps.notifier = CutAt(real, SASHA, HEADING)  # Sam's message went; Sasha's is cut off
        with pytest.raises(asyncio.CancelledError):
            await sweep(h.app.deps)
        await real.idle()
        [sent] = _combined(slack_api, SAM)
        _lists_every_holder(sent, n)
        assert _combined(slack_api, SASHA) == []
        rows = await _told_rows(h)
        assert {r["status"] for r in rows if r["recipient"] == SAM} == {"sent"}
        assert len([r for r in rows if r["recipient"] == SASHA and r["status"] == "pending"]) == n
        await deliver_pending(h.app.deps)  # within the lease of the process cut off: Sasha's lines are its own
        await real.idle()
        assert _combined(slack_api, SASHA) == []
        h.clock.advance(seconds=notice_lease(real).total_seconds() + 1)
        h.app.deps.notifier = real
        left = [r for r in await _told_rows(h) if r["status"] == "pending"]
        assert {r["recipient"] for r in left} == {SASHA} and len(left) == n
        assert await deliver_pending(h.app.deps) == n
        assert await deliver_pending(h.app.deps) == 0
        await real.idle()
        [told] = _combined(slack_api, SASHA)
        _lists_every_holder(told, n)
        assert len(_combined(slack_api, SAM)) == 1  # what went before the cut is not sent again
        assert {r["status"] for r in await _told_rows(h)} == {"sent"}


@pytest.mark.parametrize("status", [429, 500])
async def test_a_combined_send_slack_refuses_is_retried_row_by_row(database_url, tmp_path, slack_api, status):
    n = 4
    async with harness(database_url, tmp_path) as h:
        await _holders_removed(h, slack_api, n)
        real = _slack(h, slack_api)
        await real.dm_channel(SAM)  # the DM is open: the refused call is the message itself
        h.app.deps.notifier = RefusedAt(real, slack_api, SAM, HEADING, status)
        await sweep(h.app.deps)
        await real.idle()
        assert _combined(slack_api, SAM) == [] and len(_combined(slack_api, SASHA)) == 1
        rows = [r for r in await _told_rows(h) if r["recipient"] == SAM]
        assert len(rows) == n
        assert {(r["status"], r["attempts"]) for r in rows} == {("pending", 1)}, rows
        said = "ratelimited" if status == 429 else "internal_error"
        assert all(said in (r["last_error"] or "") for r in rows), rows
        h.app.deps.notifier = real
        h.clock.advance(minutes=1, seconds=1)  # the first retry is due
        assert await deliver_pending(h.app.deps) == n
        assert await deliver_pending(h.app.deps) == 0
        await real.idle()
        [told] = _combined(slack_api, SAM)
        _lists_every_holder(told, n)
        assert len(_combined(slack_api, SASHA)) == 1
        rows = [r for r in await _told_rows(h) if r["recipient"] == SAM]
        assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 2)}, rows
        assert await h.events("notice.undeliverable") == []


async def test_lines_slack_escapes_to_five_times_their_length_are_all_listed_within_the_section_limit(
        database_url, tmp_path, slack_api):
    """Each holder's address is mostly ``&``, which Slack's escaping makes five characters: the message still
    lists every line it counts as listed, each section within Slack's limit (the stand-in refuses a longer one with
    ``invalid_blocks``), none cut part-way."""
    n = BATCH_LINES + 3
    async with harness(database_url, tmp_path) as h:
        await _holders_removed(h, slack_api, n, _rnd_holder)
        real = _slack(h, slack_api)
        await sweep(h.app.deps)
        await real.idle()
        refused = [c for c in slack_api.calls if c.method == "chat.postMessage" and not c.ok]
        assert refused == [], [(c.error, c.args.get("text", "")[:80]) for c in refused]
        for member in (SAM, SASHA):
            [message] = [m for m in slack_api.dm(UID[member]) if m.text.startswith(HEADING)]
            sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
            assert sections and all(len(s) <= 3000 for s in sections), [len(s) for s in sections]
            shown = html.unescape(block_text(message.blocks))  # as Slack shows it
            _lists_every_holder(shown, n, _rnd_holder)
            assert "…" not in shown.replace(f"… and {n - BATCH_LINES} more", ""), shown  # no line cut short
        rows = [r for r in await _told_rows(h) if r["kind"] == "drift"]
        assert len(rows) == 2 * n and {r["status"] for r in rows} == {"sent"}


async def test_a_line_with_line_breaks_inside_is_one_line_of_the_message(database_url, tmp_path, slack_api):
    """A finding whose text has line breaks inside (a name the provider gave with one, any line separator) is one
    line of the combined message: the message lists ``BATCH_LINES`` findings in as many lines, and a line break
    cannot make a line look like a finding of its own."""
    n = BATCH_LINES + 2
    breaks = ["\n", "\r\n", "\u2028", "\n\n  "]
    async with harness(database_url, tmp_path) as h:
        real = _slack(h, slack_api)
        async with h.app.store.write() as repo:
            await repo.queue_notices([Notice(SAM, "drift", f"Drift: D-{i}: odd{i}@example.com in directory/odd"
                                             f"{breaks[i % len(breaks)]}• forged line {i}: added back", None)
                                      for i in range(1, n + 1)], h.clock.now())
        assert await deliver_pending(h.app.deps) == n
        await real.idle()
        [text] = _combined(slack_api, SAM)
        lines = text.splitlines()
        assert lines[0] == f"{HEADING} {n} notices", lines
        assert len(lines) == 1 + BATCH_LINES + 1, lines  # the heading, a line per finding, how many more
        for i, line in enumerate(lines[1:-1], start=1):
            assert line == f"• D-{i}: odd{i}@example.com in directory/odd • forged line {i}: added back", line
        assert lines[-1].startswith("… and 2 more: say `report drift`"), lines
