"""What an auditor reads agrees with what happened (SPEC §3.6, §6, §7, §8): report.html's terminations reckoned as
`report terminations` reckons them, a mover's and a review's grant removals in removals.csv with the person and
the times, the sign-off fallback in the certification and report.html, and a service principal's dashboard page
naming the group drift found it in."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date

from bot.evidence_commands import _report, write_pack
from handlers.evidence import Period
from handlers.policy import load_policy
from handlers.sweeps import sweep
from tests.reviews.test_own_access import on_the_list
from tests.support import harness
from tests.test_leaver_lookups import graph  # noqa: F401

BOB, ALICE, SAM = "bob@example.com", "alice@example.com", "sam.sec@example.com"


def _limit(h, n: int) -> None:  # type: ignore[no-untyped-def]
    h.files.policy.write_text(h.files.policy.read_text() + f"\nsafety: {{max_removals: {n}}}\n")
    h.app.deps.policy = load_policy(h.files.policy)


async def _pack(h, tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    day = h.clock.now().date()
    out = tmp_path / "pack.zip"
    await write_pack(h.app.store, Period.parse(date(day.year, day.month, 1).isoformat(), "2027-12-31"), out,
                     sla_hours=24)
    with zipfile.ZipFile(out) as zf:
        return {n: zf.read(n).decode() for n in zf.namelist() if n.endswith((".csv", ".html"))}


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _html_rows(html: str, heading: str) -> list[list[str]]:
    part = html[html.index(f"<h2>{heading}"):]
    part = part[:part.index("</table>")] if "</table>" in part else ""
    rows = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", part)]
    return [r for r in rows if r]


async def test_a_leaver_held_by_the_brake_is_the_same_sla_breach_in_report_html(database_url, tmp_path):
    """Bob and Alice turn inactive; the brake holds their removals; the security team resumes 30 hours
    later. SPEC §3.6: the termination hours run from the first sweep that saw them inactive to the last
    removal. `report terminations` and removals.csv say 30 h, outside the 24 h SLA. report.html's own
    Terminations table must not tell the same auditor, for the same leavers, 'detected' 30 hours later,
    '0.00' hours and 'yes' within the SLA."""
    async with harness(database_url, tmp_path) as h:
        _limit(h, 1)
        for who in (BOB, ALICE):
            h.files.add_to_group("sg-staging-admin", who)
        assert (await h.say(BOB, "request analytics-read for 1d")).ok
        for who in (BOB, ALICE):
            h.files.set_active(who, False)
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 3 and report.terminated == [], report.lines()
        h.clock.advance(hours=30)
        assert (await h.say(SAM, "resume removals")).ok
        report = await sweep(h.app.deps, drift=False)
        assert sorted(report.terminated) == [ALICE, BOB], report.lines()

        text, ok = await _report(h.app.service, "terminations", None, "csv")
        assert ok
        cli_rows = {r["user"]: r for r in _csv(text)}
        assert cli_rows[BOB]["within_sla"] == "no" and float(cli_rows[BOB]["hours_to_revoke"]) >= 30, cli_rows
        assert cli_rows[ALICE]["within_sla"] == "no", cli_rows
        files = await _pack(h, tmp_path)
    removals = _csv(files["removals.csv"])
    assert all(float(r["hours"]) >= 30 for r in removals), removals
    html = files["report.html"]
    terms = {row[0]: row for row in _html_rows(html, "Terminations")}
    assert set(terms) == {BOB, ALICE}, terms
    for who in (BOB, ALICE):
        # columns: user, detected, grants, revoked, hours, within SLA
        assert terms[who][1] == cli_rows[who]["detected_at"], (terms[who], cli_rows[who])
        assert terms[who][4] == cli_rows[who]["hours_to_revoke"], (terms[who], cli_rows[who])
        assert terms[who][5] == "NO", (terms[who], cli_rows[who])


async def test_a_movers_removal_in_removals_csv_names_the_person_and_when_it_was_found(database_url, tmp_path):
    """A mover (SPEC §3.6): Bob holds analytics-read and moves out of Engineering/Finance; the next sweep
    revokes the grant (`grant.revoked` reason `ineligible: ...`). removals.csv (SPEC §6: user, provider, group,
    reason, request_id, detected_at, removed_at, hours) must say whose access it was and the hours from
    detection to removal, as it does for a leaver: a row with an empty user tells an auditor nothing."""
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request analytics-read for 1d")).ok
        assert (await h.request(1)).state == "active"

        def move(data: dict) -> None:
            for u in data["users"]:
                if u["email"] == BOB:
                    u["department"] = "Sales"

        h.files.edit_directory(move)
        report = await sweep(h.app.deps, drift=False)
        assert report.revoked == ["REQ-1"], report.lines()
        files = await _pack(h, tmp_path)
    (row,) = [r for r in _csv(files["removals.csv"]) if r["request_id"] == "REQ-1"]
    assert row["reason"] == "ineligible", row
    assert row["user"] == BOB, row
    assert row["detected_at"] and row["hours"], row


async def test_a_reviews_removal_of_a_granted_membership_is_in_removals_csv(database_url, tmp_path):
    """A review removes Alice's grant-backed membership (`grant.revoked` reason `review`, SPEC §7). SPEC §6:
    removals.csv holds every removal not caused by a grant's own expiry, release or revoke, reason
    `terminated|ineligible|drift|review`: a leaver's or a mover's ended grant is listed, and so must a review's.
    A standing membership the same review removes is listed (membership.removed reason review); the granted one
    must not vanish from the file, while review_items.csv says it was removed."""
    from tests.reviews.test_decisions import started

    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice, bob = items[ALICE].number, items[BOB].number
        assert (await h.request(1)).state == "active"
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {alice} {bob} because not on call any more")).ok
        assert (await h.say(SAM, "keep RV-1 1 2")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all because needed")).ok
        reply = await h.say(SAM, "review close RV-1")
        assert reply.ok and "sign-off of 2 removal(s)" in reply.text, reply.text
        reply = await h.say("sasha.sec@example.com", "approve RV-1")
        assert reply.ok and "removed 2" in reply.text, reply.text
        assert (await h.request(1)).state == "revoked"
        files = await _pack(h, tmp_path)
    outcome = {r["user"]: r for r in _csv(files["review_items.csv"])}
    assert outcome[ALICE]["held_via"] == "REQ-1" and outcome[ALICE]["removed_at"], outcome[ALICE]
    removals = {(r["user"], r["group"], r["reason"]) for r in _csv(files["removals.csv"])}
    assert (BOB, "sg-prod-db-read", "review") in removals, removals  # the standing one is there
    assert (ALICE, "sg-prod-db-read", "review") in removals, removals


PAT, SASHA = "pat.lead@example.com", "sasha.sec@example.com"


async def test_the_certification_says_the_security_team_signed_instead_of_the_named_approver(database_url,
                                                                                            tmp_path):
    """`sign_off: [{user: pat.lead}]`; the removal list takes pat.lead's own access, so the step goes to the
    security team and `review.signoff_requested` records `instead_of: [pat.lead]`. The auditor reading the
    certification (`accessbot review report`, SPEC §7: 'the removals and their outcome') or the pack's
    report.html sees a policy naming pat.lead as the signer and a list signed by sasha.sec: without saying that
    sasha stood in for pat.lead, that reads as the wrong person signing. Both must say so."""
    from handlers.reviews.report import certification

    async with on_the_list(database_url, tmp_path, f"[{{user: {PAT}}}]", who=PAT, by=SASHA) as h:
        reply = await h.say(SASHA, "review close RV-1")
        assert reply.ok and "sign-off of 1 removal(s)" in reply.text, reply.text
        (asked,) = await h.events("review.signoff_requested")
        assert asked["data"].get("instead_of") == [PAT], asked["data"]
        reply = await h.say(SAM, "approve RV-1")
        assert reply.ok and "removed 1" in reply.text, reply.text
        view = await certification(h.app.store, 1, h.clock.now())
        assert view is not None
        files_ = await _pack(h, tmp_path)
    assert SAM in view.signoff, view.signoff
    assert PAT in view.signoff, f"the sign-off line does not say whom sam stood in for: {view.signoff!r}"
    html = files_["report.html"]
    reviews = html[html.index("<h2>Access reviews"):] if "<h2>Access reviews" in html else html
    assert PAT in reviews and "instead" in reviews.lower(), "report.html does not show the sign-off fallback"


async def test_a_principals_page_does_not_say_it_is_not_a_member_of_the_group_drift_found_it_in(
        database_url, tmp_path, graph):  # noqa: F811
    """At Entra a service principal put into the managed group is drift (`drift.detected` user
    `serviceprincipal:<id>`, SPEC §3.6). The security team opens its page on the dashboard
    (/dashboard/people/serviceprincipal:<id>, SPEC §8) to see what it holds: the membership row for that group
    must not say 'not a member' while the finding about it is open (the page reads the group with the listing
    that leaves principals out)."""
    from bot.bootstrap import build_app
    from handlers.dashboard import pages
    from handlers.dashboard.signin import Viewer
    from store.dashboard import SqlDashboardSource
    from tests.compliance.test_unknown_drift_providers import PAT, SASHA, _graph_app

    group = graph.add_group("sg-tools")
    for email in (PAT, SAM, SASHA):
        graph.add_user(email, department="Engineering")
    async with build_app(_graph_app(database_url, tmp_path, graph, group)) as app:
        spid = graph.add_service_principal("deploy-bot", owners=(PAT,))
        graph.add_member(group, spid)
        report = await app.service.sweep()
        assert report.drift == [f"serviceprincipal:{spid} in entra/{group}"], report.lines()
        viewer = Viewer(email=SAM, name="Sam", security=True)
        page = await pages.person_page(app.deps, SqlDashboardSource(app.store), viewer, f"serviceprincipal:{spid}")
    assert page is not None
    (row,) = [m for m in page.memberships if m.group == group]
    assert row.member is True and row.status == "drift", row

