"""Evidence that arrives by itself: the policy's evidence block, the quarter's pack and the weekly CSV
of admin access delivered to a folder and to a SharePoint library (Graph drive stand-in), retries
and failures reported, never silent."""

from __future__ import annotations

import csv
import hashlib
import os
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.bootstrap import build_app
from bot.evidence_delivery import run_scheduled_evidence, target_for
from bot.scheduler import run_sweep
from bot.settings import Settings
from handlers.evidence_schedule import last_quarter, last_week
from handlers.policy import PolicyError, parse_policy
from provisioning.entra import EntraProvider
from provisioning.http import RetryPolicy
from provisioning.sharepoint import RANGE_UNIT, SharePointTarget
from tests.standins.drive import DriveStandIn
from tests.standins.tls import make_tls
from tests.support import EXAMPLES, Harness, MutableClock, RecordingNotifier, copy_examples

FAST = RetryPolicy(max_attempts=4, max_retry_wait=0.2, backoff_base=0.01, request_timeout=5)


def with_evidence(tmp_path: Path, block: dict) -> None:
    policy = tmp_path / "policy.yaml"
    data = yaml.safe_load(policy.read_text())
    data["evidence"] = block
    policy.write_text(yaml.safe_dump(data, sort_keys=False))


@asynccontextmanager
async def evidence_app(db: str, tmp_path: Path, block: dict, clock: MutableClock | None = None,
                       **settings: Any) -> AsyncIterator[Harness]:
    files = copy_examples(tmp_path)
    with_evidence(tmp_path, block)
    clock = clock or MutableClock()
    notifier = RecordingNotifier()
    cfg = Settings(database_url=db, policy=str(files.policy), directory=str(files.directory), **settings)
    async with build_app(cfg, clock=clock, notifier=notifier) as app:
        yield Harness(app, clock, notifier, files)


def test_calendar() -> None:
    at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # a Monday
    assert (str(last_quarter(at).start), str(last_quarter(at).end)) == ("2026-07-01", "2026-09-30")
    assert (str(last_week(at).start), str(last_week(at).end)) == ("2026-11-16", "2026-11-22")
    new_year = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
    assert (str(last_quarter(new_year).start), str(last_quarter(new_year).end)) == ("2026-10-01", "2026-12-31")


def test_policy_check_names_each_evidence_problem_by_line() -> None:
    raw = (EXAMPLES / "policy.yaml").read_text() + (
        "evidence:\n"
        "  quarterly: yes please\n"
        "  weekly_admin_export: [prod-db-read, prod-db-raed]\n"
        "  deliver_to: ''\n"
        "  every: week\n")
    lines = len((EXAMPLES / "policy.yaml").read_text().splitlines())
    with pytest.raises(PolicyError) as err:
        parse_policy(raw.encode())
    found = {(i.line, i.field) for i in err.value.issues}
    assert found == {(lines + 2, "evidence.quarterly"), (lines + 3, "evidence.weekly_admin_export[1]"),
                     (lines + 4, "evidence.deliver_to"), (lines + 5, "evidence.every")}
    assert "did you mean 'prod-db-read'" in str(err.value)
    good = parse_policy(((EXAMPLES / "policy.yaml").read_text() + "evidence: {quarterly: true, "
                         "weekly_admin_export: [prod-db-read, prod-k8s-admin], deliver_to: sharepoint}\n").encode())
    assert good.evidence.quarterly and good.evidence.weekly_admin_export == ("prod-db-read", "prod-k8s-admin")
    assert good.evidence.deliver_to == "sharepoint"
    assert not parse_policy((EXAMPLES / "policy.yaml").read_bytes()).evidence.enabled


async def test_quarter_pack_and_weekly_csv_land_in_a_folder_once(sqlite_url, tmp_path) -> None:
    out = tmp_path / "delivered"
    clock = MutableClock(datetime(2026, 11, 18, 9, 0, tzinfo=UTC))
    block = {"quarterly": True, "weekly_admin_export": ["prod-db-read"], "deliver_to": str(out)}
    async with evidence_app(sqlite_url, tmp_path, block, clock) as h:
        reply = await h.say("alice@example.com", "request prod-db-read for 30m because INC-7 page")
        assert reply.ok and reply.request.state == "active"
        await h.say("bob@example.com", "request analytics-read for 1d")  # not a listed profile
        clock.at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
        lines = await run_scheduled_evidence(h.app)
        assert len(lines) == 2 and all(line.startswith("Delivered") for line in lines), lines
        weekly = out / "admin-access-2026-11-16-2026-11-22.csv"
        rows = list(csv.DictReader(weekly.open()))
        assert [(r["request_id"], r["user"], r["profile"]) for r in rows] == [
            (reply.request.id, "alice@example.com", "prod-db-read")]
        pack = out / "evidence-2026-07-01-2026-09-30.zip"
        with zipfile.ZipFile(pack) as zf:
            assert "manifest.json" in zf.namelist()
        delivered = await h.events("evidence.delivered")
        by_kind = {e["data"]["kind"]: e["data"] for e in delivered}
        assert by_kind["weekly"]["sha256"] == hashlib.sha256(weekly.read_bytes()).hexdigest()
        assert by_kind["quarterly"]["item_id"] == str(pack.resolve())
        assert by_kind["quarterly"]["sha256"] == hashlib.sha256(pack.read_bytes()).hexdigest()
        told = h.notifier.to("sam.sec@example.com", "info")
        assert any("admin-access-2026-11-16-2026-11-22.csv" in n.text for n in told)
        assert await run_scheduled_evidence(h.app) == []  # once per period, however often it runs
        clock.advance(days=7)
        again = await run_scheduled_evidence(h.app)
        assert [line for line in again if "admin-access-2026-11-23-2026-11-29.csv" in line]
        assert len(await h.events("evidence.delivered")) == 3


async def test_a_failed_delivery_is_reported_and_retried(sqlite_url, tmp_path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    async with evidence_app(sqlite_url, tmp_path, {"quarterly": True, "deliver_to": str(blocked / "evidence")}) as h:
        lines = await run_scheduled_evidence(h.app)
        assert len(lines) == 1 and "failed (attempt 1)" in lines[0]
        failed = await h.events("evidence.delivery_failed")
        assert [(e["data"]["kind"], e["data"]["attempt"]) for e in failed] == [("quarterly", 1)]
        assert any("failed" in n.text for n in h.notifier.to("sasha.sec@example.com", "failure"))
        assert await run_scheduled_evidence(h.app) == []  # not before its retry time
        blocked.unlink()
        h.clock.advance(minutes=6)
        lines = await run_scheduled_evidence(h.app)
        assert len(lines) == 1 and lines[0].startswith("Delivered"), lines
        assert (blocked / "evidence" / "evidence-2026-07-01-2026-09-30.zip").exists()
        await run_sweep(h.app, "evidence")  # the scheduler's job: nothing more is due
        assert len(await h.events("evidence.delivered")) == 1


@pytest.fixture
def drive(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    stand_in = DriveStandIn(tls)
    stand_in.start()
    yield stand_in
    stand_in.stop()


def entra(drive: DriveStandIn) -> EntraProvider:
    return EntraProvider(tenant_id=drive.tenant, client_id=drive.client_id, client_secret=drive.client_secret,
                         graph_url=drive.graph_url, authority_url=drive.url, max_attempts=4, max_retry_wait=0.2,
                         backoff_base=0.01, request_timeout=5)


async def test_sharepoint_small_upload_honours_429(drive, tmp_path) -> None:
    provider = entra(drive)
    try:
        target = SharePointTarget(provider, drive.drive_id, policy=FAST)
        small = tmp_path / "small.csv"
        small.write_bytes(b"request_id,user\nREQ-1,alice@example.com\n")
        drive.fail_next(1, status=429, retry_after=0.05)
        done = await target.deliver(small, "admin-access.csv")
        assert drive.files["accessbot-evidence/admin-access.csv"] == small.read_bytes()
        assert done.item_id == drive.items["accessbot-evidence/admin-access.csv"]
        assert done.sha256 == hashlib.sha256(small.read_bytes()).hexdigest() and done.size == small.stat().st_size
        assert [r.status for r in drive.received("PUT", "/content")] == [429, 201]
    finally:
        await provider.close()


async def test_sharepoint_upload_session_resumes_after_a_dropped_range_and_429(drive, tmp_path) -> None:
    provider = entra(drive)
    try:
        target = SharePointTarget(provider, drive.drive_id, policy=FAST, chunk_size=RANGE_UNIT, simple_limit=1024)
        big = tmp_path / "pack.zip"
        big.write_bytes(os.urandom(3 * RANGE_UNIT + 12345))  # four ranges
        drive.drop_range(2)  # aiohttp resends an idempotent PUT once on a fresh connection by itself,
        drive.drop_range(3)  # so drop that too: our code must ask the session where to resume
        done = await target.deliver(big, "evidence-2026-07-01-2026-09-30.zip")
        assert drive.files["accessbot-evidence/evidence-2026-07-01-2026-09-30.zip"] == big.read_bytes()
        assert done.size == big.stat().st_size and done.extra["quickXorHash"]
        assert len(drive.received("GET", "/upload/")) >= 1  # asked where to resume
        assert not any("Authorization" in r.headers for r in drive.received("PUT", "/upload/"))

        again = tmp_path / "again.zip"
        again.write_bytes(os.urandom(2 * RANGE_UNIT + 1))
        drive.fail_next(1, status=429, retry_after=0.05)  # the session request itself
        await target.deliver(again, "again.zip")
        assert drive.files["accessbot-evidence/again.zip"] == again.read_bytes()
    finally:
        await provider.close()


async def test_deliver_to_sharepoint_from_the_policy(drive, sqlite_url, tmp_path) -> None:
    entra_settings = {"identity": "directory", "entra_tenant_id": drive.tenant, "entra_client_id": drive.client_id,
                      "entra_client_secret": drive.client_secret, "graph_url": drive.graph_url,
                      "authority_url": drive.url}
    block = {"quarterly": True, "deliver_to": "sharepoint"}
    async with evidence_app(sqlite_url, tmp_path, block, sharepoint_drive_id=drive.drive_id, **entra_settings) as h:
        assert target_for(h.app).name == "sharepoint"
        drive.fail_next(2, status=503, retry_after=0.01)
        lines = await run_scheduled_evidence(h.app)
        assert lines and lines[0].startswith("Delivered"), lines
        data = (await h.events("evidence.delivered"))[0]["data"]
        path = "accessbot-evidence/evidence-2026-07-01-2026-09-30.zip"
        assert data["item_id"] == drive.items[path] and data["target"] == "sharepoint"
        assert data["sha256"] == hashlib.sha256(drive.files[path]).hexdigest()


async def test_sharepoint_without_a_drive_fails_loudly(sqlite_url, tmp_path) -> None:
    async with evidence_app(sqlite_url, tmp_path, {"quarterly": True, "deliver_to": "sharepoint"}) as h:
        lines = await run_scheduled_evidence(h.app)
        assert len(lines) == 1 and "ACCESSBOT_SHAREPOINT_DRIVE_ID" in lines[0]
        assert len(await h.events("evidence.delivery_failed")) == 1
        assert h.notifier.to("sam.sec@example.com", "failure")
