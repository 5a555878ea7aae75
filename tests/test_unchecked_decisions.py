"""An approval or an extension answered "could not check" leaves an audit event naming the rule.

Eligibility is judged again when a chain's last approval lands (SPEC §3.6), and when an extension is asked. A
rule on an attribute the identity source cannot supply (a directory extension the app that registered it deleted
since: Graph refuses a ``$select`` naming it with a 400; a key Okta's user profile schema lacks) cannot be
judged: the person is answered "could not check", nothing is decided and nothing granted by guess. The decision's
write rolls back with it, so the attempt is recorded in a write of its own, as a request refused so is: the
approver's click as ``approval.refused`` (reason ``could-not-check``, the rule, the step, which stays open), the
extension asked as ``request.refused`` with the request's id. Nothing already recorded changes, the chain verifies
and the evidence pack lists the refusals.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.bootstrap import App, build_app
from bot.evidence_commands import write_pack
from bot.settings import Settings
from handlers.evidence import Period
from handlers.views import Reply
from tests.evidence.test_verifier_tampered import VERIFY
from tests.standins.graph import GraphStandIn
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, entra_settings, graph_over_tls, put_in_force

PAT, CAT, SAM = "pat.lead@example.com", "cat@example.com", "sam.sec@example.com"
EXT = "extension_0123456789abcdef0123456789abcdef_costCentre"
RULE = f"could not check: eligible: {EXT}=CC-1"


def _policy(vault: str, version: str = "unchecked-1") -> str:
    return "\n".join([
        f'version: "{version}"', "approver_groups:", f"  security: [{SAM}]", "security_team: security",
        "profiles:", "  - id: vault", "    title: Vault", f"    owner: {PAT}", "    provider: entra",
        f"    group: {vault}", "    eligible:", f"      - {{{EXT}: CC-1}}", "    duration: {default: 1h, max: 8h}",
        "    approval: [owner]", ""])


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    with graph_over_tls(tmp_path, monkeypatch, EXT) as server:
        server.add_user(PAT, department="Engineering")
        server.add_user(SAM, department="Security")
        server.add_user(CAT, department="Engineering", manager=PAT, properties={EXT: "CC-1"})
        yield server


async def _ask(app: App, email: str, text: str):  # type: ignore[no-untyped-def]
    person = await app.service.identify(email)
    assert person is not None, email
    return await app.service.handle_text(person, text)


async def _events(app: App) -> list:  # type: ignore[type-arg]
    return [e async for e in app.store.audit_events()]


async def _asked_adding(app: App, email: str, text: str) -> tuple[Reply, list]:  # type: ignore[type-arg]
    """What ``email`` saying ``text`` answers and the events it added; every event recorded before stays as it was."""
    before = [(e.seq, e.hash) for e in await _events(app)]
    reply = await _ask(app, email, text)
    events = await _events(app)
    assert [(e.seq, e.hash) for e in events[:len(before)]] == before  # nothing recorded is changed
    return reply, events[len(before):]



async def _chain_and_pack_hold(app: App, tmp_path: Path) -> None:
    verified = await _ask(app, SAM, "verify")
    assert verified.ok and verified.text.startswith("OK "), verified.text
    out = tmp_path / "pack.zip"
    today = date.today()
    summary = await write_pack(app.store, Period(today - timedelta(days=1), today + timedelta(days=1)), out,
                               sla_hours=24)
    assert summary.audit["verified"] is True, summary.audit
    with zipfile.ZipFile(out) as zf:
        report = zf.read("report.html").decode()
    assert "could not check: eligible" in report, "the refusals of the period list the attempt"
    shipped = await asyncio.to_thread(subprocess.run, [sys.executable, "-I", str(VERIFY), str(out)],
                                      capture_output=True, text=True, timeout=120)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr  # the pack's own verifier says OK


async def test_a_last_approval_that_cannot_check_the_rule_is_recorded_and_decides_nothing(
        database_url, tmp_path, graph):
    vault = graph.add_group("sg-vault")
    config = entra_settings(database_url, tmp_path, graph, _policy(vault))
    async with build_app(config) as app:
        asked = await _ask(app, CAT, "request vault for 1h because audit")
        assert asked.ok and asked.request is not None and asked.request.state == "pending", asked.text
        n = asked.request.number

        graph.delete_extension(EXT)  # the app that registered it deleted it: Graph refuses to select it
        refused, added = await _asked_adding(app, PAT, f"approve REQ-{n}")
        assert not refused.ok and refused.rule == RULE, refused.text
        assert "could not check" in refused.text, refused.text
        assert [e.type for e in added] == ["approval.refused"], [(e.type, e.data) for e in added]
        assert (added[0].actor, added[0].request_id, added[0].profile) == (PAT, f"REQ-{n}", "vault")
        assert added[0].data == {"step": 1, "reason": "could-not-check", "rule": RULE, "attributes": [EXT]}
        status = await _ask(app, CAT, f"status REQ-{n}")
        assert status.request is not None and status.request.state == "pending", status.text
        assert graph.member_emails(vault) == []
        await _chain_and_pack_hold(app, tmp_path)

        # the step stayed open: once the rule can be judged again, the owner's approval is taken
        graph.register_extension(EXT)
        await put_in_force(app, config.policy, _policy(vault, version="unchecked-2"))
        approved = await _ask(app, PAT, f"approve REQ-{n}")
        assert approved.ok and approved.request is not None and approved.request.state == "active", approved.text
        assert graph.member_emails(vault) == [CAT]


async def test_an_extension_that_cannot_check_the_rule_is_recorded_and_not_granted(database_url, tmp_path, graph):
    vault = graph.add_group("sg-vault")
    config = entra_settings(database_url, tmp_path, graph, _policy(vault))
    async with build_app(config) as app:
        asked = await _ask(app, CAT, "request vault for 1h because audit")
        assert asked.request is not None, asked.text
        n = asked.request.number
        granted = await _ask(app, PAT, f"approve REQ-{n}")
        assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
        expires = granted.request.expires_at
        extend = await _ask(app, CAT, f"extend REQ-{n} by 1h because longer audit")
        assert extend.ok, extend.text

        # the extension's last approval judges the holder again
        graph.delete_extension(EXT)
        refused, added = await _asked_adding(app, PAT, f"approve REQ-{n}")
        assert not refused.ok and refused.rule == RULE, refused.text
        assert [e.type for e in added] == ["approval.refused"], [(e.type, e.data) for e in added]
        assert (added[0].actor, added[0].request_id) == (PAT, f"REQ-{n}")
        assert added[0].data == {"step": 1, "reason": "could-not-check", "rule": RULE, "attributes": [EXT],
                                 "extension": True}
        status = await _ask(app, CAT, f"status REQ-{n}")
        assert status.request is not None and status.request.expires_at == expires, status.text  # not extended
        again = await _ask(app, CAT, f"extend REQ-{n} by 2h")
        assert again.rule == "extension-pending", again.text  # the extension still waits on its step

        # an extension asked while the rule cannot be checked: refused, recorded with the request's id
        withdrawn = await _ask(app, CAT, f"cancel REQ-{n}")
        assert withdrawn.ok, withdrawn.text
        refused, added = await _asked_adding(app, CAT, f"extend REQ-{n} by 1h because longer audit")
        assert not refused.ok and refused.rule == RULE, refused.text
        assert [(e.type, e.actor, e.request_id, e.profile) for e in added] == [
            ("request.refused", CAT, f"REQ-{n}", "vault")], [(e.type, e.data) for e in added]
        assert added[0].data == {"rule": RULE, "attributes": [EXT]}
        assert f"`{EXT}`" in refused.text and "keeps its expiry" in refused.text, refused.text
        status = await _ask(app, CAT, f"status REQ-{n}")
        assert status.request is not None and status.request.state == "active", status.text
        assert status.request.expires_at == expires
        assert graph.member_emails(vault) == [CAT]
        await _chain_and_pack_hold(app, tmp_path)


async def test_okta_a_last_approval_on_a_key_the_profile_schema_lacks_is_recorded(database_url, tmp_path):
    """Okta: submitted while the user profile schema could not be read (every key judged on the profile as Okta
    answers it), the request waits on its owner; the schema is read when a policy is put in force and has no
    ``clearence`` (a misspelling): the owner's approval cannot judge the rule, and is recorded, deciding nothing."""
    with OktaStandIn() as okta:
        okta.fail_path("/meta/schemas/", status=403)  # a token not allowed to read schemas, for now
        vault = okta.add_group("vault")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(SAM, department="Security")
        okta.add_user(CAT, department="Engineering", manager=PAT, attributes={"clearance": "secret"})
        policy = _policy(vault).replace("provider: entra", "provider: okta").replace(
            f"    eligible:\n      - {{{EXT}: CC-1}}", "    ineligible:\n      - {clearence: secret}")
        path = tmp_path / "policy.yaml"
        path.write_text(policy)
        config = Settings(database_url=database_url, policy=str(path), directory=str(EXAMPLES / "directory.yaml"),
                          identity="okta", okta_url=okta.url, okta_token=okta.token)
        async with build_app(config) as app:
            asked = await _ask(app, CAT, "request vault for 1h because audit")
            assert asked.ok and asked.request is not None and asked.request.state == "pending", asked.text
            n = asked.request.number

            okta.clear_path_faults()
            await put_in_force(app, config.policy, policy.replace('"unchecked-1"', '"unchecked-2"'))
            refused, added = await _asked_adding(app, PAT, f"approve REQ-{n}")
            assert not refused.ok and refused.rule == "could not check: ineligible: clearence=secret", refused.text
            assert [(e.type, e.actor, e.request_id) for e in added] == [("approval.refused", PAT, f"REQ-{n}")]
            assert added[0].data == {"step": 1, "reason": "could-not-check", "rule": refused.rule,
                                     "attributes": ["clearence"]}
            status = await _ask(app, CAT, f"status REQ-{n}")
            assert status.request is not None and status.request.state == "pending", status.text
            assert okta.member_emails(vault) == []
            verified = await _ask(app, SAM, "verify")
            assert verified.ok and verified.text.startswith("OK "), verified.text
