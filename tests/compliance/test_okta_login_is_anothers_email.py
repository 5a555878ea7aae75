"""Okta: a person is the account whose email they are, even when another account's login is that address.

Okta keeps a login when the email changes: Ana renamed keeps the login ``ana@…`` with the email
``ana.lima@…``, and a new hire may then get the email ``ana@…`` under another login. The bot knows people by
email (requests, group listings), so ``ana@…`` is the new hire: her access must not be judged by, granted to, or
removed from the other account (SPEC §2.4, §3.6).
"""

from __future__ import annotations

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, provider_policy
from tests.test_leaver_lookups import PAT

NEW = "ana@example.com"  # the new hire's email
OLD = "ana.lima@example.com"  # the renamed account's email; its login is still ana@example.com


async def _events(app, type_: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]


def _settings(database_url: str, tmp_path, okta: OktaStandIn, group: str) -> Settings:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(provider_policy("okta", group, version="logins-1"))
    return Settings(database_url=database_url, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


async def test_the_new_hire_is_not_judged_by_the_renamed_account_nor_made_its_reports_manager(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        old = okta.add_user(OLD, login=NEW, department="Engineering", manager=PAT)
        new = okta.add_user(NEW, login="ana.new@example.com", department="Engineering", manager=PAT)
        okta.add_user("bo@example.com", department="Engineering", manager=NEW, manager_by_login=True)
        async with build_app(_settings(database_url, tmp_path, okta, group)) as app:
            person = await app.service.identify(NEW)
            assert person is not None and person.email == NEW and person.extra["okta_id"] == new
            reply = await app.service.handle_text(person, "request tools for 2h")
            assert reply.ok and reply.request is not None and reply.request.state == "active", reply.text
            assert okta.members[group] == [new]  # granted to the new hire, not to the account whose login it is
            # a manager named by login is the account signing in with it, not the one whose email it is now
            bo = await app.service.identify("bo@example.com")
            assert bo is not None and bo.manager == OLD

            okta.set_status(NEW, "DEPROVISIONED")  # the renamed account (login ana@…) leaves
            report = await app.service.sweep(drift=False)
            assert report.terminated == [] and report.revoked == [], report.lines()
            assert await _events(app, "user.terminated") == []
            assert okta.members[group] == [new]
            assert okta.users[old]["status"] == "DEPROVISIONED"
