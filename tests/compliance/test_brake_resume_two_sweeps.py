"""Two sweeps at once (two processes) just after `resume removals` (SPEC §3.6): the sweep that passes the brake runs
the resumed removals; the other one, which judged the same removals before they ran, must not record them as a new
pause ("again only when the count changes"), ask the security team to resume what already ran, nor have the next
sweep end that pause as if the source had been fixed (`automation.resumed` {count: 0})."""

from __future__ import annotations

from typing import Any

from handlers.compliance.commands import ResumeRemovals, handle_compliance
from handlers.sweeps import sweep
from tests.support import harness, second_process

SAM, MARK = "sam.sec@example.com", "mark.mgr@example.com"
WAVE = [f"m{i:02d}@example.com" for i in range(26)]  # one above the default safety.max_removals (25)


def _set(key: str, value: Any):  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in WAVE:
                u[key] = value
    return change


def _hire(data: dict) -> None:
    for e in WAVE:
        data["users"].append({"email": e, "name": e, "department": "Engineering", "active": True, "manager": MARK})


async def _two_sweeps_after_resume(h, monkeypatch, reason: str) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    sam = await h.app.deps.person(SAM)
    assert sam is not None
    assert (await handle_compliance(h.app.deps, sam, ResumeRemovals())).ok
    h.clock.advance(seconds=30)
    async with second_process(h) as other:
        provider = other.deps.providers["directory"]
        look_up = provider.get_user
        asked: dict[str, int] = {}
        ran: list[Any] = []

        async def meanwhile(who: str) -> Any:
            # the other process has judged everyone (the movers sweep looks each holder up a second time) when
            # this one's sweep passes the brake and runs the resumed removals
            asked[who] = asked.get(who, 0) + 1
            if who == WAVE[-1] and asked[who] == (2 if reason == "ineligible" else 1) and not ran:
                ran.append(await sweep(h.app.deps, drift=False))
            return await look_up(who)

        monkeypatch.setattr(provider, "get_user", meanwhile)
        theirs = await sweep(other.deps, drift=False)
    assert ran, asked
    return ran[0], theirs


async def _nothing_paused_again(h, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert [e["data"]["count"] for e in await h.events("automation.paused")] == [26]
    assert len(h.notifier.to(SAM, "brake")) == 1  # one card: nobody asked to resume what already ran
    h.clock.advance(seconds=30)
    report = await sweep(h.app.deps, drift=False)
    assert report.paused == 0 and report.revoked == [], report.lines()
    resumed = [(e["actor"], e["data"]["count"]) for e in await h.events("automation.resumed")]
    assert resumed == [(SAM, 26)], resumed  # no "the source was fixed" ({count: 0}) by the system


async def test_movers_resumed_are_not_paused_again_by_a_sweep_that_judged_them_before_they_ran(
        database_url, tmp_path, monkeypatch):
    async with harness(database_url, tmp_path) as h:
        h.files.edit_directory(_hire)
        for e in WAVE:  # auto-approved for Engineering
            assert (await h.say(e, "request analytics-read for 1d")).ok
        h.files.edit_directory(_set("department", "Sales"))
        assert (await sweep(h.app.deps, drift=False)).paused == 26
        mine, theirs = await _two_sweeps_after_resume(h, monkeypatch, "ineligible")
        assert len(mine.revoked) == 26 and mine.paused == 0, mine.lines()
        assert theirs.paused == 0, theirs.lines()
        revoked = await h.events("grant.revoked")
        assert len(revoked) == 26 and {e["data"]["reason"] for e in revoked} == {"ineligible: not eligible"}
        assert not set(WAVE) & set(await h.members("sg-analytics-read"))
        await _nothing_paused_again(h, "ineligible")


async def test_leavers_resumed_are_not_paused_again_by_a_sweep_that_judged_them_before_they_ran(
        database_url, tmp_path, monkeypatch):
    async with harness(database_url, tmp_path) as h:
        h.files.edit_directory(_hire)
        for e in WAVE:
            assert (await h.say(e, "request analytics-read for 1d")).ok
        h.files.edit_directory(_set("active", False))
        assert (await sweep(h.app.deps, drift=False)).paused == 26
        mine, theirs = await _two_sweeps_after_resume(h, monkeypatch, "terminated")
        assert sorted(mine.terminated) == WAVE and mine.paused == 0, mine.lines()
        assert theirs.paused == 0, theirs.lines()
        assert len(await h.events("user.terminated")) == 26 and len(await h.events("grant.revoked")) == 26
        assert not set(WAVE) & set(await h.members("sg-analytics-read"))
        await _nothing_paused_again(h, "terminated")
