"""Entra-specific behaviour: msal tokens, group names, UPN vs mail, ``$batch`` and write quotas."""

from __future__ import annotations

import datetime as dt
import time
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from handlers.ports import ProviderError
from provisioning.entra import EntraProvider
from provisioning.http import parse_retry_after

if TYPE_CHECKING:
    from tests.providers.conftest import EntraEnv
    from tests.standins.graph import GraphStandIn


async def test_one_token_serves_many_calls(entra: EntraEnv, graph: GraphStandIn) -> None:
    graph.add_user("ana@example.com")
    ref = graph.add_group("g")
    for _ in range(3):
        await entra.provider.get_user("ana@example.com")
        await entra.provider.add_member(ref, "ana@example.com")
        await entra.provider.list_members(ref)
    assert graph.tokens_issued == 1
    token_calls = graph.received("POST", "/oauth2/v2.0/token")
    assert len(token_calls) == 1
    assert token_calls[0].body["scope"] == f"{graph.url}/.default"
    assert token_calls[0].body["grant_type"] == "client_credentials"


async def test_a_refused_token_is_refreshed_once(entra: EntraEnv, graph: GraphStandIn) -> None:
    graph.add_user("ana@example.com")
    await entra.provider.get_user("ana@example.com")
    graph.revoke_tokens()
    assert await entra.provider.get_user("ana@example.com") is not None
    assert graph.tokens_issued == 2
    graph.accept_tokens = False
    with pytest.raises(ProviderError) as caught:
        await entra.provider.get_user("ana@example.com")
    assert caught.value.transient is False and caught.value.status == 401
    assert graph.tokens_issued == 3
    assert "InvalidAuthenticationToken" in str(caught.value)


async def test_a_wrong_secret_is_a_permanent_error_naming_the_aadsts_code(graph: GraphStandIn) -> None:
    provider = EntraProvider(tenant_id=graph.tenant, client_id=graph.client_id, client_secret="wrong",
                             graph_url=graph.graph_url, authority_url=graph.url, max_attempts=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.get_user("ana@example.com")
    finally:
        await provider.close()
    assert caught.value.transient is False
    assert "AADSTS7000215" in str(caught.value)
    assert graph.tokens_issued == 0


def test_a_secret_or_a_certificate_is_required() -> None:
    with pytest.raises(ValueError):
        EntraProvider(tenant_id="t", client_id="c")


async def test_client_request_id_is_sent_and_request_id_reported(entra: EntraEnv, graph: GraphStandIn) -> None:
    graph.add_user("ana@example.com")
    ref = graph.add_group("g")
    graph.fail_next(5, status=429, retry_after=0.01)
    with pytest.raises(ProviderError) as caught:
        await entra.provider.add_member(ref, "ana@example.com")
    sent = [r.headers.get("client-request-id") for r in graph.received(contains="/v1.0/")]
    assert all(sent)
    assert caught.value.correlation_id and caught.value.correlation_id not in sent  # Graph's request-id


async def test_found_by_upn_or_by_mail(entra: EntraEnv, graph: GraphStandIn) -> None:
    oid = graph.add_user("eve.o'neil@example.com", upn="eoneil@contoso.onmicrosoft.com", display_name="Eve")
    by_mail = await entra.provider.get_user("Eve.O'Neil@example.com")
    by_upn = await entra.provider.get_user("eoneil@contoso.onmicrosoft.com")
    by_oid = await entra.provider.find_by_aad_object_id(oid)
    assert by_mail == by_upn == by_oid
    assert by_mail is not None and by_mail.email == "eve.o'neil@example.com" and by_mail.aad_object_id == oid
    filters = [r.query.get("$filter") for r in graph.received("GET") if r.path == "/v1.0/users"]
    assert filters == ["mail eq 'Eve.O''Neil@example.com'"]
    assert await entra.provider.find_by_slack_id("U123") is None


async def test_groups_are_transitive_and_named_both_ways(entra: EntraEnv, graph: GraphStandIn) -> None:
    inner = graph.add_group("dba-oncall")
    outer = graph.add_group("engineering")
    graph.add_member(outer, inner)
    graph.add_user("ana@example.com")
    graph.add_member(inner, "ana@example.com")
    for i in range(3):
        graph.add_member(graph.add_group(f"extra-{i}"), "ana@example.com")
    person = await entra.provider.get_user("ana@example.com")
    assert person is not None
    assert {inner, "dba-oncall", outer, "engineering", "extra-2"} <= person.groups
    assert len(person.groups) == 10


async def test_groups_by_display_name_are_resolved_once(entra: EntraEnv, graph: GraphStandIn) -> None:
    gid = graph.add_group("prod-db-readers")
    graph.add_group("twice")
    graph.add_group("twice")
    graph.add_user("ana@example.com")
    await entra.provider.add_member("prod-db-readers", "ana@example.com")
    await entra.provider.remove_member("prod-db-readers", "ana@example.com")
    await entra.provider.add_member("prod-db-readers", "ana@example.com")
    assert graph.member_emails(gid) == ["ana@example.com"]
    assert len([r for r in graph.received("GET") if r.path == "/v1.0/groups"]) == 1
    for name in ("twice", "missing"):
        with pytest.raises(ProviderError) as caught:
            await entra.provider.add_member(name, "ana@example.com")
        assert caught.value.transient is False


async def test_removing_a_deleted_user_succeeds(entra: EntraEnv, graph: GraphStandIn) -> None:
    ref = graph.add_group("g")
    graph.add_user("ana@example.com")
    await entra.provider.add_member(ref, "ana@example.com")
    graph.delete_user("ana@example.com")
    await entra.provider.remove_member(ref, "ana@example.com")
    assert graph.member_emails(ref) == []


async def test_batch_of_many_with_inner_throttling(entra: EntraEnv, graph: GraphStandIn) -> None:
    ref = graph.add_group("g")
    emails = [f"user{i:02}@example.com" for i in range(45)]
    for email in emails:
        graph.add_user(email)
    for email in emails[:5]:
        graph.add_member(ref, email)
    ops = [("add", ref, e) for e in emails] + [("remove", ref, e) for e in emails[40:]]
    for email in emails:  # resolve ids first, so the batch is what we count below
        await entra.provider.get_user(email)
    before = len(graph.received("POST", "/$batch"))
    graph.fail_inner_next(7, status=429, retry_after=0.05)
    results = await entra.provider.apply_batch(ops)
    assert results == [None] * len(ops)
    assert graph.member_emails(ref) == emails[:40]
    batches = graph.received("POST", "/$batch")[before:]
    assert all(len(b.body["requests"]) <= 20 for b in batches)
    # 45 adds and 5 removes, the 7 refused sent again; a remove of a member just added goes
    # in a later round than every attempt at the add
    sent = [(k, r) for k, b in enumerate(batches) for r in b.body["requests"]]
    assert len(sent) == 50 + 7
    for i in range(45, 50):
        add_batches = [k for k, r in sent if r["id"] == str(i - 5)]
        [remove_batch] = [k for k, r in sent if r["id"] == str(i)]
        assert remove_batch > max(add_batches)


async def test_batch_reports_throttling_that_never_ends(entra: EntraEnv, graph: GraphStandIn) -> None:
    ref = graph.add_group("g")
    graph.add_user("ana@example.com")
    graph.add_user("bo@example.com")
    graph.fail_inner_next(100, status=429, retry_after=0.02)
    results = await entra.provider.apply_batch([("add", ref, "ana@example.com"), ("add", ref, "bo@example.com")])
    for result in results:
        assert isinstance(result, ProviderError) and result.transient and result.status == 429
        assert result.retry_after == pytest.approx(0.02) and result.correlation_id
    assert len(graph.received("POST", "/$batch")) == 3  # max_attempts rounds
    assert graph.member_emails(ref) == []


async def test_write_quota_is_waited_out(entra: EntraEnv, graph: GraphStandIn) -> None:
    ref = graph.add_group("g")
    emails = [f"user{i}@example.com" for i in range(6)]
    for email in emails:
        graph.add_user(email)
        await entra.provider.get_user(email)
    graph.set_write_quota(3, window=0.3)
    started = time.monotonic()
    for email in emails:
        await entra.provider.add_member(ref, email)
    assert time.monotonic() - started >= 0.25
    assert graph.throttled_writes >= 1
    assert graph.member_emails(ref) == sorted(emails)


def test_retry_after_accepts_seconds_fractions_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.05") == 0.05
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    assert parse_retry_after(formatdate(now + 10, usegmt=True), now=now) == pytest.approx(10, abs=1)
    assert parse_retry_after(formatdate(now - 10, usegmt=True), now=now) == 0.0


def _certificate(tmp_path: Path, name: str) -> tuple[str, str, str]:
    """(path of a PEM with key + certificate, the certificate PEM, its SHA-1 thumbprint)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    path = tmp_path / f"{name}.pem"
    path.write_text(key_pem + cert_pem)
    return str(path), cert_pem, cert.fingerprint(hashes.SHA1()).hex().upper()


@pytest.mark.parametrize("with_thumbprint", [True, False])
async def test_certificate_credentials(graph: GraphStandIn, tmp_path: Path, with_thumbprint: bool) -> None:
    path, cert_pem, thumbprint = _certificate(tmp_path, "accessbot")
    other_path, _, other_thumbprint = _certificate(tmp_path, "someone-else")
    graph.certificate_pem = cert_pem
    graph.add_user("ana@example.com")

    def provider(pem: str, thumb: str) -> EntraProvider:
        return EntraProvider(tenant_id=graph.tenant, client_id=graph.client_id, certificate_path=pem,
                             certificate_thumbprint=thumb if with_thumbprint else None,
                             graph_url=graph.graph_url, authority_url=graph.url, max_attempts=2)

    good, bad = provider(path, thumbprint), provider(other_path, other_thumbprint)
    try:
        assert await good.get_user("ana@example.com") is not None
        with pytest.raises(ProviderError) as caught:
            await bad.get_user("ana@example.com")
    finally:
        await good.close()
        await bad.close()
    assert caught.value.transient is False and "AADSTS700027" in str(caught.value)
    assert graph.tokens_issued == 1


async def test_a_re_created_user_is_added_by_the_new_id(entra: EntraEnv, graph: GraphStandIn) -> None:
    ref = graph.add_group("g")
    graph.add_user("ana@example.com")
    await entra.provider.add_member(ref, "ana@example.com")
    graph.delete_user("ana@example.com")
    graph.add_user("ana@example.com")
    await entra.provider.add_member(ref, "ana@example.com")
    assert graph.member_emails(ref) == ["ana@example.com"]


async def test_member_of_names_principals_and_nested_groups_as_drift_does(entra: EntraEnv, graph: GraphStandIn
                                                                          ) -> None:
    """``member_of`` asks about a service principal or a nested group by its object id, and about a user whose
    cached id went away (deleted and re-created) by the new one."""
    ref, other = graph.add_group("g"), graph.add_group("other")
    spid = graph.add_service_principal("deploy-bot")
    inner = graph.add_group("inner")
    graph.add_member(ref, spid)
    graph.add_member(other, inner)
    assert set(await entra.provider.drift_members(ref)) == {f"serviceprincipal:{spid}"}
    assert await entra.provider.member_of(f"serviceprincipal:{spid}", [ref, other]) == {ref}
    assert await entra.provider.member_of(f"nestedgroup:{inner}", [ref, other]) == {other}
    assert await entra.provider.member_of("serviceprincipal:00000000-0000-0000-0000-000000000000", [ref]) == set()
    graph.add_user("ana@example.com")
    graph.add_member(ref, "ana@example.com")
    assert await entra.provider.member_of("ana@example.com", [ref, other]) == {ref}
    graph.delete_user("ana@example.com")
    graph.add_user("ana@example.com")
    graph.add_member(other, "ana@example.com")
    assert await entra.provider.member_of("ana@example.com", [ref, other]) == {other}
