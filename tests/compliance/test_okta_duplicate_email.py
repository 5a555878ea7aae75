"""Okta: emails are not unique, so a person found by email among several accounts is not guessed (SPEC §2.4, §3.6).

A login renamed since (``ana.lima@…``) leaves the email to find the person by. When an old account that Okta keeps
(``DEPROVISIONED``) has the same email, the leaver sweep must judge the live account, and remove the account that is
in the group; when several live accounts share it, nobody is judged by a guess: the person is named as not checked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, provider_policy
from tests.test_leaver_lookups import PAT, grant_each

ANA = "ana@example.com"


def _first(okta: OktaStandIn, uid: str) -> None:
    """Okta does not order search results: put this account first."""
    with okta.lock:
        okta.users = {uid: okta.users[uid], **{k: v for k, v in okta.users.items() if k != uid}}


async def _events(app, type_: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]


def _settings(database_url: str, tmp_path, okta: OktaStandIn, group: str) -> Settings:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(provider_policy("okta", group, version="dup-1"))
    return Settings(database_url=database_url, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


async def test_an_old_account_with_the_same_email_does_not_make_a_leaver(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        ana = okta.add_user(ANA, login="ana.lima@example.com", department="Engineering", manager=PAT)
        async with build_app(_settings(database_url, tmp_path, okta, group)) as app:
            await grant_each(app, ANA)
            assert okta.member_emails(group) == [ANA]
            old = okta.add_user(ANA, login="ana.old@example.com", status="DEPROVISIONED")
            _first(okta, old)
            report = await app.service.sweep()
            assert report.terminated == [] and report.revoked == [], report.lines()
            assert await _events(app, "user.terminated") == []
            assert okta.members[group] == [ana]

            # she leaves: her own account is the one removed from the group
            okta.set_status("ana.lima@example.com", "SUSPENDED")
            report = await app.service.sweep()
            assert report.terminated == [ANA] and report.revoked == ["REQ-1"], report.lines()
            assert okta.members[group] == []


async def test_two_live_accounts_with_one_email_are_not_guessed(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        ana = okta.add_user(ANA, login="ana.lima@example.com", department="Engineering", manager=PAT)
        async with build_app(_settings(database_url, tmp_path, okta, group)) as app:
            await grant_each(app, ANA)
            other = okta.add_user(ANA, login="ana.test@example.com", status="SUSPENDED")
            _first(okta, other)
            report = await app.service.sweep()
            assert report.terminated == [] and report.revoked == [], report.lines()
            assert any(line.startswith(ANA) and "2 Okta users" in line for line in report.unchecked), report.lines()
            assert okta.members[group] == [ana]
            assert await _events(app, "user.terminated") == []


async def test_a_grant_ends_even_when_its_email_came_to_name_two_live_accounts(database_url, tmp_path):
    """Expiry in a fresh process (``accessbot sweep``), which has no user id remembered: the removal takes every
    account in the group carrying the email rather than keep the access for want of knowing which one it is."""
    from tests.support import Files, cli

    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(ANA, login="ana.lima@example.com", department="Engineering", manager=PAT)
        settings = _settings(database_url, tmp_path, okta, group)
        async with build_app(settings) as app:
            await grant_each(app, ANA)  # 2h
        okta.add_user(ANA, login="ana.test@example.com")  # a second live account with her email
        env = {"ACCESSBOT_IDENTITY": "okta", "ACCESSBOT_OKTA_URL": okta.url, "ACCESSBOT_OKTA_TOKEN": okta.token}
        files = Files(policy=tmp_path / "policy.yaml", directory=EXAMPLES / "directory.yaml")
        later = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        result = cli("sweep", "--as-of", later, db=database_url, files=files, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "expire: 1" in result.stdout, result.stdout
        assert okta.members[group] == []
        async with build_app(settings) as app:
            (expired,) = await _events(app, "grant.expired")
            assert expired["request_id"] == "REQ-1"
            assert await _events(app, "grant.revoke_failed") == []
