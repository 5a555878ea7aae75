"""Scheduled evidence: the builder (the evidence export of SPEC §6, and a weekly CSV of admin access),
the delivery targets (a folder, or a SharePoint document library through Graph), and the run that
the scheduler and ``accessbot sweep`` call."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.bootstrap import App
from bot.evidence_commands import write_pack
from bot.signing import signer_from
from handlers.evidence import Period, create_private
from handlers.evidence_schedule import Delivered, EvidenceTarget, file_name, run_due
from store.deliveries import SqlDeliveryStore
from store.evidence_queries import SqlEvidenceSource

ADMIN_COLUMNS = ["request_id", "user", "profile", "kind", "provider", "group", "started_at", "expires_at",
                 "ended_at", "end_reason", "policy_version"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Builder:
    def __init__(self, app: App) -> None:
        self.app = app

    async def pack(self, period: Period, folder: Path) -> Path:
        sla = self.app.deps.policy.schedule.termination_sla.total_seconds() / 3600
        signer = signer_from(self.app.settings.env)  # a bad key is a failed delivery, retried and reported
        summary = await write_pack(self.app.store, period, folder / file_name("quarterly", period), sla_hours=sla,
                                   signer=signer)
        return summary.path

    async def admin_csv(self, period: Period, profiles: Sequence[str], folder: Path) -> Path:
        """Every grant of the listed profiles active at any time in the period."""
        wanted = set(profiles)
        rows = [row async for row in SqlEvidenceSource(self.app.store).grants_active(period.start_at, period.end_at)
                if row["profile"] in wanted]
        out = folder / file_name("weekly", period)

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            with out.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(ADMIN_COLUMNS)
                for row in rows:
                    writer.writerow([_cell(row.get(c)) for c in ADMIN_COLUMNS])

        await asyncio.to_thread(write)
        return out


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class FolderTarget:
    """Copies the file into a folder: written beside, then renamed, so a reader never sees half a file."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.name = f"folder:{folder}"

    async def deliver(self, path: Path, name: str) -> Delivered:
        def copy() -> Delivered:
            self.folder.mkdir(parents=True, exist_ok=True)
            final = self.folder / name
            partial = final.with_name(final.name + ".partial")
            create_private(partial)
            shutil.copyfile(path, partial)  # into the file made private: the folder may be shared
            os.replace(partial, final)
            return Delivered(item_id=str(final.resolve()), sha256=_sha256(final), size=final.stat().st_size,
                             location=str(final.resolve()))

        return await asyncio.to_thread(copy)


def target_for(app: App) -> EvidenceTarget:
    where = app.deps.policy.evidence.deliver_to
    if where.lower() != "sharepoint":
        return FolderTarget(where)
    from provisioning.sharepoint import SharePointTarget, Unconfigured

    provider = app.deps.providers.get("entra")
    if provider is None or not app.settings.sharepoint_drive_id:
        return Unconfigured("deliver_to: sharepoint needs the Entra app settings and ACCESSBOT_SHAREPOINT_DRIVE_ID")
    return SharePointTarget(provider, app.settings.sharepoint_drive_id)  # type: ignore[arg-type]


async def run_scheduled_evidence(app: App, target: EvidenceTarget | None = None) -> list[str]:
    """Build and deliver what the policy's ``evidence:`` block has made due (nothing when it has none)."""
    if not app.deps.policy.evidence.enabled:
        return []
    target = target or target_for(app)
    scratch = Path(tempfile.mkdtemp(prefix="accessbot-evidence-"))
    try:
        return await run_due(app.deps, SqlDeliveryStore(app.store), Builder(app), target, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
