"""The safety brake's resume (SPEC §3.6): one broken look-up does not make a resume worthless for ever, a pause
card's Resume never lets through a different set of removals than the one it showed, and resuming one pause does
not release another."""

from __future__ import annotations

from bot.bootstrap import build_app
from handlers.compliance.commands import ResumeRemovals, handle_compliance
from handlers.sweeps import sweep
from tests.compliance.test_leavers_brake_truth import one_bad_edit, set_active
from tests.support import harness
from tests.test_leaver_lookups import PAT, entra_settings, grant_each, graph  # noqa: F401

SAM = "sam.sec@example.com"
WAVE_A = [f"a{i:02d}@example.com" for i in range(30)]
WAVE_B = [f"b{i:02d}@example.com" for i in range(30)]


async def test_an_old_pause_card_does_not_resume_a_different_pause_of_the_same_count(database_url, tmp_path):
    """30 leavers (wave A) pause; Sam gets a card "30 terminated removals", sample from wave A. Before he clicks,
    wave A is found active again (the source fixed) and 30 *other* people (wave B) go inactive: a new pause,
    30 removals again, a new card. README: "a different set is a new pause, even at the same count", and the
    card's Resume runs `resume removals` "for the pause the card shows". Sam's click on the wave-A card must not
    let wave B's 30 removals run: he never saw them."""
    async with harness(database_url, tmp_path) as h:
        def hire(data: dict) -> None:
            for e in WAVE_A + WAVE_B:
                data["users"].append({"email": e, "name": e, "department": "Sales", "active": True})
            data["groups"]["sg-analytics-read"] = [*(data["groups"].get("sg-analytics-read") or []),
                                                   *WAVE_A, *WAVE_B]

        h.files.edit_directory(hire)
        h.files.edit_directory(set_active(WAVE_A, False))
        assert (await sweep(h.app.deps, drift=False)).paused == 30
        first = h.notifier.to(SAM, "brake")[-1].view  # the card Sam got

        h.files.edit_directory(set_active(WAVE_A, True))
        h.files.edit_directory(set_active(WAVE_B, False))
        h.clock.advance(seconds=30)
        assert (await sweep(h.app.deps, drift=False)).paused == 30
        assert len(await h.events("automation.paused")) == 2

        sam = await h.app.deps.person(SAM)
        assert sam is not None
        # the button of the first card: the pause it showed (terminated) and the count on it (30)
        reply = await handle_compliance(h.app.deps, sam, ResumeRemovals(reason="terminated", count=30,
                                                                        pause=first.pause))
        assert not reply.ok and reply.rule == "stale-count", reply.text
        h.clock.advance(seconds=30)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [], report.lines()
        assert sorted(await h.members("sg-analytics-read")) == sorted(WAVE_A + WAVE_B)


async def test_a_resume_is_not_held_forever_by_one_person_the_idp_cannot_answer_for(sqlite_url, tmp_path,
                                                                                     graph):  # noqa: F811
    """At Entra, three grant holders are disabled at once (above max_removals 2): paused. Sam resumes the pause
    he was shown. One *other* holder's look-up answers 500 every time (a broken account). README: the resume
    lets through the removals the pause held, and SPEC §3.6: after `resume removals` "the next sweep executes
    them". One person the IdP cannot answer for must not shield everyone else: with the resume given, the three
    leavers lose their access while the unanswerable one is named in the report."""
    group = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(SAM, department="Security")
    leavers = ["ann@example.com", "cat@example.com", "dan@example.com"]
    broken = "ben@example.com"
    for email in [*leavers, broken]:
        graph.add_user(email, department="Engineering", manager=PAT)
    settings = entra_settings(sqlite_url, tmp_path, graph, group)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text() + "safety: {max_removals: 2}\n")
    async with build_app(settings) as app:
        await grant_each(app, *leavers, broken)
        for email in leavers:
            graph.users[graph.user_id(email)]["accountEnabled"] = False  # type: ignore[index]
        report = await app.service.sweep(drift=False)
        assert report.paused == 3 and report.terminated == [], report.lines()
        sam = await app.service.identify(SAM)
        assert sam is not None
        reply = await app.service.handle_text(sam, "resume removals")
        assert reply.ok, reply.text

        graph.fail_path(f"/users/{broken}", status=500)
        report = await app.service.sweep(drift=False)
        assert [u.split(":")[0] for u in report.unchecked] == [broken], report.lines()
        assert sorted(report.terminated) == leavers, report.lines()
        assert graph.member_emails(group) == [broken]


async def test_resuming_the_leavers_does_not_release_the_movers_pause_nobody_resumed(database_url, tmp_path):
    """One bad directory edit: 3 people deactivated, 3 others moved out of Engineering; max_removals 4, so the
    6 removals of the sweep pause (two pauses: `terminated` 3 and `ineligible` 3, two cards). Sam checks the
    leavers (they really left) and presses Resume on the `terminated` card only; the movers' card he leaves
    alone, the department change looks wrong. SPEC §3.6: held removals "wait until a security team member says
    `resume removals`"; a pause ends by itself only "if the source is fixed first" (the removals vanish).
    Nobody fixed the departments and nobody resumed the movers: their grants must stay, sweep after sweep."""
    async with harness(database_url, tmp_path) as h:
        leavers, movers = await one_bad_edit(h)
        assert (await sweep(h.app.deps, drift=False)).paused == 6
        paused = {e["data"]["reason"]: e["data"]["count"] for e in await h.events("automation.paused")}
        assert paused == {"terminated": 3, "ineligible": 3}, paused

        sam = await h.app.deps.person(SAM)
        assert sam is not None
        reply = await handle_compliance(h.app.deps, sam, ResumeRemovals(reason="terminated", count=3))
        assert reply.ok, reply.text
        for _ in range(3):
            h.clock.advance(seconds=30)
            await sweep(h.app.deps, drift=False)
        assert not set(leavers) & set(await h.members("sg-staging-admin"))  # the resumed leavers ran
        assert sorted(await h.members("sg-analytics-read")) == sorted(movers)
        resumed = [(e["actor"], e["data"]) for e in await h.events("automation.resumed")]
        assert all(d["reason"] == "terminated" for _, d in resumed), resumed
