"""``snapshot_members``: a group's members with attributes, manager and last sign-in, per provider,
through the real wire formats (Graph paging, ``$batch`` and ``signInActivity``; Okta ``Link`` paging,
``lastLogin`` and ``X-Rate-Limit-Reset``; the directory file's ``last_sign_in``, ``kind`` and ``owner``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from handlers.ports import Member, MemberSource
from provisioning.directory import DirectoryError, DirectoryProvider

if TYPE_CHECKING:
    from tests.providers.conftest import EntraEnv, OktaEnv
    from tests.standins.graph import GraphStandIn
    from tests.standins.okta import OktaStandIn


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_graph_members_with_sign_in_manager_and_service_principals(entra: EntraEnv, graph: GraphStandIn):
    graph.add_user("boss@example.com", display_name="Boss")
    for i in range(5):
        graph.add_user(f"u{i}@example.com", display_name=f"User {i}", department="Engineering", job_title="SRE",
                       manager="boss@example.com" if i != 4 else None, enabled=i != 3,
                       last_sign_in=f"2026-03-0{i + 1}T10:00:00Z" if i != 2 else None,
                       last_non_interactive="2026-03-09T08:00:00Z" if i == 0 else None)
    gid = graph.add_group("sg-prod-db-read")
    for i in range(5):
        graph.add_member(gid, f"u{i}@example.com")
    sp = graph.add_service_principal("deploy-bot", owners=("boss@example.com",))
    graph.add_member(gid, sp)
    graph.fail_inner_next(3, status=429, retry_after=0.05)  # Graph throttles inside the batch
    assert isinstance(entra.provider, MemberSource)
    members = await entra.provider.snapshot_members("sg-prod-db-read")
    by_email = {m.email: m for m in members}
    assert by_email["u0@example.com"] == Member(
        email="u0@example.com", name="User 0", department="Engineering", title="SRE", manager="boss@example.com",
        last_sign_in=utc("2026-03-09T08:00:00Z"))  # the latest of interactive and non-interactive sign-ins
    assert by_email["u1@example.com"].last_sign_in == utc("2026-03-02T10:00:00Z")
    assert by_email["u2@example.com"].last_sign_in is None  # never signed in
    assert by_email["u3@example.com"].active is False
    assert by_email["u4@example.com"].manager is None
    robot = by_email[f"serviceprincipal:{sp}"]
    assert (robot.kind, robot.name, robot.owner) == ("service", "deploy-bot", "boss@example.com")
    listing = graph.received("GET", f"/groups/{gid}/members")
    assert len(listing) == 3  # six members, two a page: followed @odata.nextLink
    batches = graph.received("POST", "/$batch")
    asked = [r["url"] for b in batches for r in b.body["requests"]]
    assert all(len(b.body["requests"]) <= 20 for b in batches)
    assert len(asked) == 5 * 2 + 1 + 3  # sign-in and manager per user, the owners, and the 3 throttled again


async def test_graph_sign_in_activity_refused_is_unknown_not_a_failure(entra: EntraEnv, graph: GraphStandIn):
    graph.add_user("a@example.com", last_sign_in="2026-03-01T10:00:00Z")
    gid = graph.add_group("g")
    graph.add_member(gid, "a@example.com")
    graph.sign_in_forbidden = True
    (member,) = await entra.provider.snapshot_members(gid)
    assert member.email == "a@example.com" and member.last_sign_in is None


async def test_graph_paging_throttled_by_retry_after(entra: EntraEnv, graph: GraphStandIn):
    for i in range(3):
        graph.add_user(f"t{i}@example.com")
    gid = graph.add_group("g")
    for i in range(3):
        graph.add_member(gid, f"t{i}@example.com")
    graph.fail_next(1, status=429, retry_after=0.3)
    started = time.monotonic()
    members = await entra.provider.snapshot_members(gid)
    assert [m.email for m in members] == ["t0@example.com", "t1@example.com", "t2@example.com"]
    assert time.monotonic() - started >= 0.3  # waited as Graph asked


async def test_okta_members_with_last_login_and_managers(okta_provider_env: OktaEnv, okta: OktaStandIn):
    okta.add_user("boss@example.com", first_name="Boss")
    okta.add_user("lead@example.com", first_name="Lead")
    okta.add_user("a@example.com", first_name="Ann", last_name="Lee", department="Engineering", title="SRE",
                  user_type="FTE", manager="boss@example.com", last_login="2026-03-01T10:00:00.000Z")
    okta.add_user("b@example.com", manager="lead@example.com", manager_by_login=True, status="SUSPENDED")
    okta.add_user("c@example.com", manager="boss@example.com")
    gid = okta.add_group("prod")
    for who in ("a@example.com", "b@example.com", "c@example.com", "boss@example.com"):
        okta.add_member(gid, who)
    okta.fail_next(1, status=429, retry_after=0.3)  # X-Rate-Limit-Reset 0.3 s ahead
    started = time.monotonic()
    members = await okta_provider_env.provider.snapshot_members(gid)
    assert time.monotonic() - started >= 0.25
    by_email = {m.email: m for m in members}
    assert by_email["a@example.com"] == Member(
        email="a@example.com", name="Ann Lee", department="Engineering", title="SRE", employment_type="FTE",
        manager="boss@example.com", last_sign_in=utc("2026-03-01T10:00:00Z"))
    assert by_email["b@example.com"].manager == "lead@example.com" and by_email["b@example.com"].active is False
    assert by_email["c@example.com"].last_sign_in is None
    pages = okta.received("GET", f"/api/v1/groups/{gid}/users")
    assert len([p for p in pages if p.status == 200]) == 2  # four members, two a page: followed Link rel="next"
    # the manager who is a member too is not looked up again
    assert okta.received("GET", "/api/v1/users/boss@example.com") == []


async def test_directory_members_with_sign_in_service_accounts_and_unknown_members(tmp_path: Path):
    from tests.providers.conftest import DirectoryEnv  # noqa: F401  (the same file format)

    path = tmp_path / "directory.yaml"
    path.write_text("""users:
  - {email: ann@example.com, name: Ann, department: Eng, title: SRE, manager: boss@example.com,
     last_sign_in: "2026-03-01T10:00:00Z"}
  - {email: old@example.com, name: Old, active: false, last_sign_in: 2025-01-02}
  - {email: deploy-bot@example.com, name: Deploy bot, kind: service, owner: Ann@Example.com}
groups:
  g: [ann@example.com, old@example.com, deploy-bot@example.com, ghost@example.com]
""")

    class NoOverlay:
        async def overlay(self):  # type: ignore[no-untyped-def]
            return {}

        async def overlay_for(self, *, email=None, group=None):  # type: ignore[no-untyped-def]
            return {}

        async def set_membership(self, group, email, present):  # type: ignore[no-untyped-def]
            return None

    provider = DirectoryProvider(path, NoOverlay())
    members = {m.email: m for m in await provider.snapshot_members("g")}
    assert members["ann@example.com"] == Member(email="ann@example.com", name="Ann", department="Eng", title="SRE",
                                                manager="boss@example.com", last_sign_in=utc("2026-03-01T10:00:00Z"))
    assert members["old@example.com"].active is False
    assert members["old@example.com"].last_sign_in == datetime(2025, 1, 2, tzinfo=UTC)
    assert (members["deploy-bot@example.com"].kind, members["deploy-bot@example.com"].owner) == (
        "service", "ann@example.com")
    assert members["ghost@example.com"] == Member(email="ghost@example.com", found=False)


@pytest.mark.parametrize(("entry", "problem"), [
    ("last_sign_in: yesterday", "last_sign_in: not a date"),
    ("kind: robot", "kind: must be user or service"),
    ("owner: nobody", "owner: not an email"),
])
def test_directory_refuses_bad_review_fields(tmp_path: Path, entry: str, problem: str):
    from provisioning.directory import parse_directory

    raw = f"users:\n  - email: a@example.com\n    {entry}\n".encode()
    with pytest.raises(DirectoryError, match=problem):
        parse_directory(raw)
