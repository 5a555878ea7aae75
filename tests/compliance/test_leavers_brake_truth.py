"""Leavers, movers, drift and the safety brake driven through the real sweep (SPEC §3.6): what one sweep
removes counts together, a resume releases what it was shown, a sweep that cannot read the source holds the
pause, a rehired person is judged afresh, and a half-written directory file resolves nothing."""

from __future__ import annotations

from handlers.policy import load_policy
from handlers.sweeps import sweep
from tests.support import harness

BOB, CAROL, FRANK, SAM = "bob@example.com", "carol@example.com", "frank@example.com", "sam.sec@example.com"


def _drop(email: str):  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        data["users"] = [u for u in data["users"] if u["email"] != email]
    return change


async def test_a_rehired_person_missing_later_still_waits_for_the_unknown_grace(database_url, tmp_path):
    """Bob left once (terminated), was rehired, holds a new grant; later a half-written directory file
    lacks him. SPEC §3.6: a user the IdP no longer finds is a leaver only after two sweeps at least
    safety.unknown_grace apart -- a half-written directory file must not revoke at once."""
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-staging-admin", BOB)
        h.files.set_active(BOB, False)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [BOB]

        h.clock.advance(days=30)  # rehired
        h.files.set_active(BOB, True)
        assert (await sweep(h.app.deps, drift=False)).terminated == []
        reply = await h.say(BOB, "request analytics-read for 1d")
        assert reply.ok and (await h.request(1)).state == "active", reply.text

        h.clock.advance(hours=2)
        original = h.files.directory.read_text()
        h.files.edit_directory(_drop(BOB))  # the file is being rewritten: Bob is not in it right now
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [] and report.unconfirmed == [BOB], report.lines()
        assert (await h.request(1)).state == "active"
        assert BOB in await h.members("sg-analytics-read")

        h.files.directory.write_text(original)
        h.files.edit_directory(lambda d: None)
        h.clock.advance(minutes=1)
        assert (await sweep(h.app.deps, drift=False)).terminated == []
        assert (await h.request(1)).state == "active"


async def test_a_rehired_person_who_leaves_again_is_recorded_as_terminated_again(database_url, tmp_path):
    """A second departure is a new termination: `user.terminated` with what they hold now, so that
    `report terminations` / removals.csv measure the hours from this departure, not the first one."""
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-staging-admin", BOB)
        h.files.set_active(BOB, False)
        assert (await sweep(h.app.deps, drift=False)).terminated == [BOB]
        h.clock.advance(days=60)
        h.files.set_active(BOB, True)
        assert (await sweep(h.app.deps, drift=False)).terminated == []
        assert (await h.say(BOB, "request analytics-read for 1d")).ok

        h.clock.advance(hours=2)
        h.files.set_active(BOB, False)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [BOB] and report.revoked == ["REQ-1"]
        terminated = await h.events("user.terminated")
        assert len(terminated) == 2, [e["data"] for e in terminated]
        assert terminated[-1]["data"]["grants"] == ["REQ-1"]
        assert terminated[-1]["data"]["inactive_hours"] < 1


async def one_bad_edit(h) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    """max_removals 4; three people with a standing membership (leavers) and three with an auto-approved grant
    (movers), then one directory edit that deactivates the first three and moves the others out of Engineering
    (six removals, not yet swept)."""
    _limit(h, 4)
    await h.app.service.start()
    leavers = [f"l{i}@example.com" for i in range(3)]
    movers = [f"m{i}@example.com" for i in range(3)]

    def hire(data: dict) -> None:
        for e in leavers + movers:
            data["users"].append({"email": e, "name": e, "department": "Engineering", "employment_type": "FTE",
                                  "manager": "mark.mgr@example.com", "active": True})
        data["groups"]["sg-staging-admin"] = [*(data["groups"].get("sg-staging-admin") or []), *leavers]

    h.files.edit_directory(hire)
    for e in movers:
        assert (await h.say(e, "request analytics-read for 1d")).ok  # auto-approved: Engineering
    assert (await sweep(h.app.deps, drift=False)).revoked == []

    def bad_edit(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in leavers:
                u["active"] = False
            if u["email"] in movers:
                u["department"] = "Sales"

    h.files.edit_directory(bad_edit)
    return leavers, movers


def set_active(wave: list[str], active: bool):  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in wave:
                u["active"] = active
    return change


def _limit(h, n: int) -> None:  # type: ignore[no-untyped-def]
    h.files.policy.write_text(h.files.policy.read_text() + f"\nsafety: {{max_removals: {n}}}\n")
    h.app.deps.policy = load_policy(h.files.policy)


async def test_leavers_and_movers_of_one_sweep_count_together_against_the_brake(database_url, tmp_path):
    """SPEC §3.6: removals the source triggers in bulk (leavers, movers, ...) are counted per sweep; above
    safety.max_removals none of them is executed. One bad directory edit that deactivates 3 people and
    moves 3 others out of Engineering is 6 removals in one sweep: with max_removals 4 it must pause."""
    async with harness(database_url, tmp_path) as h:
        leavers, movers = await one_bad_edit(h)
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 6 and report.revoked == [] and report.terminated == [], report.lines()
        assert sorted(await h.members("sg-analytics-read")) == sorted(movers)
        assert sorted(await h.members("sg-staging-admin")) == sorted(leavers)


WAVE_A = [f"a{i:02d}@example.com" for i in range(30)]
WAVE_B = [f"b{i:02d}@example.com" for i in range(26)]


async def test_a_resume_runs_only_the_removals_the_security_team_saw(database_url, tmp_path):
    """The security team resumes the 30 removals they were shown (wave A). Before the next sweep the source
    changes: wave A is active again and 26 *other* people (wave B) are inactive. SPEC §3.6: the resume
    lets "the next sweep execute *them*" (the held removals); removals nobody was shown above the limit
    must pause again, not run on the strength of a resume given for other people."""
    async with harness(database_url, tmp_path) as h:
        def hire(data: dict) -> None:
            for e in WAVE_A + WAVE_B:
                data["users"].append({"email": e, "name": e, "department": "Sales", "active": True})
            data["groups"]["sg-analytics-read"] = [*(data["groups"].get("sg-analytics-read") or []),
                                                   *WAVE_A, *WAVE_B]

        h.files.edit_directory(hire)
        h.files.edit_directory(set_active(WAVE_A, False))
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 30
        assert (await h.say(SAM, "resume removals")).ok

        h.files.edit_directory(set_active(WAVE_A, True))
        h.files.edit_directory(set_active(WAVE_B, False))
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [] and report.paused == 26, report.lines()
        assert sorted(await h.members("sg-analytics-read")) == sorted(WAVE_A + WAVE_B)


async def test_a_backdated_sweep_does_not_start_the_unknown_grace_in_the_past(sqlite_url, tmp_path):
    """`accessbot sweep --as-of` an hour and a half ago, then the ordinary sweep a moment later. The
    directory was read *now* both times: Bob has been missing for seconds, yet the second sweep revokes
    him. SPEC §3.6: not found -> a leaver only after two sweeps at least safety.unknown_grace apart ("a
    half-written directory file must not revoke at once"); SPEC §5: --as-of sets only the clock timers
    are judged by, "the command acts on the store ... as they are now" -- it cannot make an observation
    made now count as one made in the past."""
    from datetime import UTC, datetime, timedelta

    from tests.support import chat, cli, copy_examples

    files = copy_examples(tmp_path)
    out = chat(BOB, "request analytics-read for 1d", db=sqlite_url, files=files)
    assert "REQ-1" in out, out
    original = files.directory.read_text()
    files.edit_directory(_drop(BOB))  # a half-written file
    earlier = (datetime.now(UTC) - timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = cli("sweep", "--as-of", earlier, db=sqlite_url, files=files)
    assert first.returncode == 0 and "terminate: 0" in first.stdout, first.stdout + first.stderr
    second = cli("sweep", db=sqlite_url, files=files)  # the scheduler's next tick, seconds later
    files.directory.write_text(original)
    assert second.returncode == 0, second.stderr
    assert "terminate: 0" in second.stdout and "revoke: 0" in second.stdout, second.stdout


async def test_a_sweep_that_cannot_read_the_source_does_not_end_the_pause(database_url, tmp_path):
    """30 leavers pause; the security team resumes them. The next sweep runs while the directory file is
    being rewritten (not valid YAML): the sweep can check nobody. SPEC §3.6: the pause ends by itself
    (`automation.resumed` {count: 0}) only "if the source is fixed first"; an unreadable source is not a
    fixed one. Recording that the removals vanished is false, and it throws away the resume the security
    team gave: when the file is readable again the same 30 removals must run, not pause a second time."""
    async with harness(database_url, tmp_path) as h:
        def hire(data: dict) -> None:
            for e in WAVE_A:
                data["users"].append({"email": e, "name": e, "department": "Sales", "active": False})
            data["groups"]["sg-analytics-read"] = [*(data["groups"].get("sg-analytics-read") or []), *WAVE_A]

        h.files.edit_directory(hire)
        assert (await sweep(h.app.deps, drift=False)).paused == 30
        assert (await h.say(SAM, "resume removals")).ok
        whole = h.files.directory.read_text()

        h.files.directory.write_text(whole[: len(whole) // 2] + "\n  - email: [unterminated\n")
        h.clock.advance(seconds=30)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == []
        resumed = await h.events("automation.resumed")
        assert [(e["actor"], e["data"]["count"]) for e in resumed] == [(SAM, 30)], resumed

        h.files.directory.write_text(whole)
        h.files.edit_directory(lambda d: None)
        h.clock.advance(seconds=30)
        report = await sweep(h.app.deps, drift=False)
        assert sorted(report.terminated) == WAVE_A, report.lines()
        assert len(await h.events("automation.paused")) == 1


async def test_a_half_written_directory_file_does_not_resolve_drift_and_report_it_again(database_url, tmp_path):
    """Carol is a standing member of sg-prod-db-read with no grant: drift D-1, told to the security team once.
    One sweep reads a half-written file (the users are there, the groups section is not yet). SPEC §3.6:
    drift is "reported to the security team once"; the grace of §3.6 exists precisely because "a
    half-written directory file" is not the truth. Nobody left the group: D-1 must not resolve as `gone`
    and come back as a new finding D-2, told a second time."""
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-prod-db-read", CAROL)
        report = await sweep(h.app.deps)
        assert report.drift == [f"{CAROL} in directory/sg-prod-db-read"], report.lines()
        whole = h.files.directory.read_text()

        h.files.edit_directory(lambda d: d.pop("groups"))
        h.clock.advance(seconds=30)
        await sweep(h.app.deps)
        h.files.directory.write_text(whole)
        h.files.edit_directory(lambda d: None)
        h.clock.advance(seconds=30)
        await sweep(h.app.deps)

        detected = await h.events("drift.detected")
        assert [e["data"]["id"] for e in detected] == ["D-1"], [e["data"] for e in detected]
        assert await h.events("drift.resolved") == []
