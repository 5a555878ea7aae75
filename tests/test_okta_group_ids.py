"""Okta group names in ``member_of`` mean the one group the name named when the policy version was put in force.

Okta group names are not unique: a group admin (or an app import) can create a second "Engineering" and put
someone in it. The names the policy uses are resolved to group ids when the policy loads (``GET /groups?search=
profile.name eq "…"``), kept in the store, and people's groups are compared by id: a look-alike makes nobody
eligible and keeps no mover's grant. A name matching no group or several is a policy error naming it. When Okta
cannot be asked at the start, the start goes on: the name stays unresolved, a check needing it answers "could not
check" (never eligible, never a removal, by guess), and it is resolved at its next use once Okta answers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.bootstrap import App, build_app
from bot.policy_watch import PolicyWatch
from bot.settings import Settings
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, Files, chat, cli, provider_policy

PAT, ANN, MAL = "pat.lead@example.com", "ann@example.com", "mal@example.com"
GROUPS_SEARCH = "/api/v1/groups"  # the path of the groups search (and of membership calls, not used here)


def _policy(group: str, eligible: str = "member_of: Engineering", version: str = "okta-groups-1") -> str:
    return provider_policy("okta", group, version=version, eligible=eligible)


def _settings(db: str, tmp_path: Path, okta: OktaStandIn, policy: str) -> Settings:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    return Settings(database_url=db, policy=str(path), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


def _seed(okta: OktaStandIn) -> tuple[str, str, str]:
    """The provisioned group, the real Engineering (Ann is in it) and Ann's id; Mal is in no group."""
    tools = okta.add_group("tools")
    engineering = okta.add_group("Engineering")
    okta.add_user(PAT, department="Engineering")
    ann = okta.add_user(ANN, department="Engineering", manager=PAT)
    okta.add_user(MAL, department="Engineering", manager=PAT)
    okta.add_member(engineering, ANN)
    return tools, engineering, ann


async def _ask(app: App, email: str, text: str = "request tools for 1h because deploy"):  # type: ignore[no-untyped-def]
    person = await app.service.identify(email)
    assert person is not None
    return await app.service.handle_text(person, text)


async def _events(app: App, type_: str) -> list[dict]:
    return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]


async def test_a_look_alike_group_makes_nobody_eligible_and_keeps_no_movers_grant(database_url, tmp_path):
    with OktaStandIn(page_size=1) as okta:
        tools, engineering, ann = _seed(okta)
        okta.add_group("Engineers")  # a name that only starts alike: not a candidate
        settings = _settings(database_url, tmp_path, okta, _policy(tools))
        async with build_app(settings) as app:
            assert [e["data"] for e in await _events(app, "group.resolved")] == [
                {"provider": "okta", "group": "Engineering", "id": engineering}]
            searches = okta.received("GET", GROUPS_SEARCH)
            assert searches and 'profile.name eq "Engineering"' in searches[0].query.get("search", "")

            look_alike = okta.add_group("Engineering")  # made after the policy was put in force
            okta.add_member(look_alike, MAL)
            refused = await _ask(app, MAL)
            assert not refused.ok and refused.rule == "eligible: no rule matched", refused.text
            granted = await _ask(app, ANN)
            assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
            assert okta.member_emails(tools) == [ANN]

            # Ann moves out of Engineering, and into the look-alike: she is a mover all the same
            with okta.lock:
                okta.members[engineering].remove(ann)
            okta.add_member(look_alike, ANN)
            report = await app.service.sweep(drift=False)
            assert report.revoked == [granted.request.id], report.lines()
            assert okta.member_emails(tools) == []

        # a restart keeps the first answer, though two groups are named Engineering now
        async with build_app(settings) as app:
            again = await _ask(app, MAL)
            assert not again.ok and again.rule == "eligible: no rule matched", again.text


async def test_an_ambiguous_or_unknown_name_is_a_policy_error_naming_it(database_url, tmp_path):
    with OktaStandIn(page_size=1) as okta:
        tools, _, _ = _seed(okta)
        okta.add_group("engineering")  # Okta's eq compares names case-insensitively: one more candidate
        settings = _settings(database_url, tmp_path, okta, _policy(tools, "member_of: [Engineering, Nowhere]"))
        with pytest.raises(SystemExit) as stopped:
            async with build_app(settings):
                pass
        text = str(stopped.value)
        assert "2 okta groups are named 'Engineering'" in text, text
        assert "no okta group is named 'Nowhere'" in text, text
        assert "profile tools (member_of)" in text, text


async def test_a_reload_naming_the_renamed_group_resolves_it_again(database_url, tmp_path):
    with OktaStandIn() as okta:
        tools, engineering, _ = _seed(okta)
        settings = _settings(database_url, tmp_path, okta, _policy(tools))
        path = tmp_path / "policy.yaml"
        async with build_app(settings) as app:
            watch = PolicyWatch(app, settings.policy, quiet=True, settle=0.0)
            await watch.check()
            okta.rename_group(engineering, "Platform Engineering")
            look_alike = okta.add_group("Engineering")
            okta.add_member(look_alike, MAL)
            await asyncio.to_thread(path.write_text,
                                    _policy(tools, "member_of: Platform Engineering", version="okta-groups-2"))
            change = await watch.check()
            assert change is not None and change.new.version == "okta-groups-2", app.state.get("policy_rejected")
            assert {"provider": "okta", "group": "Platform Engineering", "id": engineering} in [
                e["data"] for e in await _events(app, "group.resolved")]
            assert (await _ask(app, ANN)).ok
            refused = await _ask(app, MAL)
            assert not refused.ok and refused.rule == "eligible: no rule matched", refused.text


async def test_okta_down_at_start_with_a_profile_group_named_by_name_refuses_the_start(database_url, tmp_path):
    """Only member_of names may wait for Okta (their checks fail closed meanwhile): a profile's group by name would
    have its adds go to the name as if it were a group id."""
    with OktaStandIn() as okta:
        _seed(okta)
        settings = _settings(database_url, tmp_path, okta, _policy("tools"))
        okta.fail_path(GROUPS_SEARCH, status=503)
        with pytest.raises(SystemExit) as stopped:
            async with build_app(settings):
                pass
        text = str(stopped.value)
        assert "profile tools: okta group 'tools' could not be resolved" in text, text
        assert "Engineering" not in text, text  # the member_of name waits


def _cli_env(okta: OktaStandIn) -> dict[str, str]:
    return {"ACCESSBOT_IDENTITY": "okta", "ACCESSBOT_OKTA_URL": okta.url, "ACCESSBOT_OKTA_TOKEN": okta.token}


def test_okta_down_at_start_answers_could_not_check_then_judges_once_it_answers(database_url, tmp_path):
    with OktaStandIn() as okta:
        tools, engineering, _ = _seed(okta)
        files = Files(tmp_path / "policy.yaml", EXAMPLES / "directory.yaml")
        files.policy.write_text(_policy(tools))
        okta.fail_path(GROUPS_SEARCH, status=503)  # the groups search does not answer
        out = chat(ANN, "request tools for 1h because deploy", db=database_url, files=files, env=_cli_env(okta))
        assert "could not check" in out and "'Engineering'" in out and "REQ-1" not in out, out
        assert okta.member_emails(tools) == []

        okta.clear_path_faults()  # Okta answers again: the name is resolved at its next use
        out = chat(ANN, "request tools for 1h because deploy", db=database_url, files=files, env=_cli_env(okta))
        assert "REQ-1" in out and "could not check" not in out, out
        assert okta.member_emails(tools) == [ANN]
        out = chat(MAL, "request tools for 1h because deploy", db=database_url, files=files, env=_cli_env(okta))
        assert "not eligible" in out and "REQ-2" not in out, out
        events = cli("audit", "export", db=database_url, check=True).stdout
        assert events.count('"group.resolved"') == 1 and engineering in events


def test_a_sweep_that_cannot_resolve_the_name_removes_nobody_by_it(database_url, tmp_path):
    with OktaStandIn() as okta:
        tools, _, _ = _seed(okta)
        files = Files(tmp_path / "policy.yaml", EXAMPLES / "directory.yaml")
        files.policy.write_text(_policy(tools, eligible="department: Engineering"))
        out = chat(MAL, "request tools for 1h because deploy", db=database_url, files=files, env=_cli_env(okta))
        assert "REQ-1" in out and okta.member_emails(tools) == [MAL], out

        # the next version asks for Engineering, which Mal is not in; Okta's groups search is down meanwhile
        files.policy.write_text(_policy(tools, version="okta-groups-2"))
        okta.fail_path(GROUPS_SEARCH, status=503)
        swept = cli("sweep", db=database_url, files=files, env=_cli_env(okta))
        assert swept.returncode == 0 and "Traceback" not in swept.stderr, swept.stderr[-800:]
        assert "could not check" in swept.stdout and "REQ-1, movers" in swept.stdout, swept.stdout
        assert okta.member_emails(tools) == [MAL]  # not removed by guess

        okta.clear_path_faults()
        swept = cli("sweep", db=database_url, files=files, env=_cli_env(okta))
        assert swept.returncode == 0 and "REQ-1" in swept.stdout and "could not check" not in swept.stdout, \
            swept.stdout
        assert okta.member_emails(tools) == []


# ----- every view of who may ask judges member_of as a request does: by the id resolved at the load -----------------

def _two_profiles(tools: str, docs: str) -> str:
    """``tools`` for members of Engineering, ``docs`` for anyone: a form offers only what one is eligible for."""
    return provider_policy("okta", tools, version="okta-groups-views", eligible="member_of: Engineering") + (
        "  - id: docs\n    title: Docs\n    owner: pat.lead@example.com\n    provider: okta\n"
        f"    group: {docs}\n    duration: {{default: 1h, max: 8h}}\n    approval: [owner]\n")


def _look_alike_world(okta: OktaStandIn) -> tuple[str, str, str]:
    """Ann in the real Engineering; Mal in a group of the same name made after the policy loaded (see callers)."""
    tools, engineering, _ = _seed(okta)
    docs = okta.add_group("docs")
    okta.add_user("sam.sec@example.com", department="Security")
    return tools, docs, engineering


def _card_choices(card: object) -> list[str]:
    """The values of the Teams card's profile choice set."""
    if isinstance(card, dict):
        if card.get("id") == "profile" and "choices" in card:
            return [c["value"] for c in card["choices"]]
        return next((v for v in (_card_choices(x) for x in card.values()) if v), [])
    if isinstance(card, list):
        return next((v for v in (_card_choices(x) for x in card) if v), [])
    return []


async def test_a_look_alike_group_makes_nobody_eligible_in_profiles_or_the_request_forms(database_url, tmp_path):
    from cards import adaptive
    from cards import slack as blocks

    with OktaStandIn() as okta:
        tools, docs, _ = _look_alike_world(okta)
        settings = _settings(database_url, tmp_path, okta, _two_profiles(tools, docs))
        async with build_app(settings) as app:
            look_alike = okta.add_group("Engineering")
            okta.add_member(look_alike, MAL)
            for email, eligible in ((ANN, True), (MAL, False)):
                listed = await _ask(app, email, "profiles")
                assert listed.ok and listed.profiles is not None, listed.text
                tools_view = next(v for v in listed.profiles if v.id == "tools")
                assert tools_view.eligible is eligible, (email, listed.text)
                if not eligible:
                    assert "tools  Tools [medium] — not eligible (eligible: no rule matched)" in listed.text, \
                        listed.text

                person = await app.service.identify(email)
                assert person is not None
                form = (await app.service.handle_text(person, "request", forms=True)).form
                assert form is not None
                assert {v.id: v.eligible for v in form.profiles} == {"tools": eligible, "docs": True}, email
                modal = blocks.request_modal(form)
                select = next(b for b in modal["blocks"] if b.get("block_id") == "profile")["element"]
                offered = ["tools", "docs"] if eligible else ["docs"]
                assert [o["value"] for o in select["options"]] == offered, (email, select["options"])
                assert _card_choices(adaptive.form_card(form)) == offered, email


async def test_a_look_alike_group_makes_nobody_eligible_on_the_dashboard_person_page(database_url, tmp_path):
    from html import unescape

    from tests.web.conftest import serve_dashboard

    with OktaStandIn() as okta:
        tools, docs, _ = _look_alike_world(okta)
        async with serve_dashboard(database_url, tmp_path, policy=_two_profiles(tools, docs), identity="okta",
                                   okta_url=okta.url, okta_token=okta.token) as h:
            look_alike = okta.add_group("Engineering")
            okta.add_member(look_alike, MAL)
            cookie = await h.sign_in("sam.sec@example.com")
            rows = {}
            for email in (ANN, MAL):
                page = await h.get(f"/dashboard/people/{email}", cookie=cookie)
                assert page.status == 200, page.text[:300]
                text = unescape(page.text)
                rows[email] = text[text.index("Policy rules that apply"):].split("<tr><td>tools</td>")[1][:120]
            assert '<span class="ok">eligible</span>' in rows[ANN], rows[ANN]
            assert "no: eligible: no rule matched" in rows[MAL], rows[MAL]


async def test_a_profile_group_named_by_name_is_held_on_the_person_page(database_url, tmp_path):
    """A profile naming its Okta group by name: asking Okta about the one person (``member_of``, the person page
    and a review's live check) compares the person's groups with the id the name was resolved to, not the name."""
    import re

    from tests.web.conftest import serve_dashboard

    with OktaStandIn() as okta:
        _look_alike_world(okta)
        row = re.compile(r"<tr><td>okta/([^<]+)</td>.*?<span class=\"state [^\"]*\">([^<]+)</span>", re.S)
        async with serve_dashboard(database_url, tmp_path, policy=_two_profiles("tools", "docs"), identity="okta",
                                   okta_url=okta.url, okta_token=okta.token) as h:
            reply = await h.say(ANN, "request tools for 2h because deploy")
            assert reply.ok and reply.request is not None and reply.request.state == "active", reply.text
            cookie = await h.sign_in(ANN)
            page = await h.get(f"/dashboard/people/{ANN}", cookie=cookie)
            assert page.status == 200, page.text[:300]
            table = page.text[page.text.index('id="memberships"'):]
            assert dict(row.findall(table[:table.index("</table>")])) == {"tools": "granted", "docs": "not a member"}
