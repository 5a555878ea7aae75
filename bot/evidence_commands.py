"""Evidence packs and reports: the composition for the CLI and the security team's chat commands."""

from __future__ import annotations

import os
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.bootstrap import build_app
from bot.pack_check import verifier_module
from bot.settings import Settings
from bot.signing import ManifestSigner, SigningError, signer_from
from cards.report_html import render_report
from handlers.audit import format_ts
from handlers.evidence import EvidenceMismatch, PackSummary, Period, build_pack
from handlers.grammar import Evidence, Report
from handlers.ports import Person
from handlers.reports import (
    ACCESS_COLUMNS,
    DRIFT_COLUMNS,
    ROLLUP_COLUMNS,
    TERMINATION_COLUMNS,
    access_rows,
    drift_rows,
    render,
    termination_rollup,
    termination_rows,
)
from handlers.service import AccessService
from handlers.views import Reply
from store.evidence_queries import SqlEvidenceSource, SqlReportSource
from store.repository import SqlStore


def _file(name: str) -> str:
    return (Path(__file__).resolve().parent / "evidence_files" / name).read_text(encoding="utf-8")


async def write_pack(store: SqlStore, period: Period, out: Path, *, sla_hours: float,
                     signer: ManifestSigner | None = None) -> PackSummary:
    now = datetime.now(UTC)
    source = SqlEvidenceSource(store)

    def report(figures: Any) -> str:
        return render_report(figures, generated_at=format_ts(now), sla_hours=sla_hours, chain_ok=figures.chain_ok)

    out.parent.mkdir(parents=True, exist_ok=True)
    return await build_pack(source, period, out, generated_at=now, verifying=_file("VERIFYING.md"),
                            verifier_script=_file("verify_pack.py"), report=report, signer=signer,
                            rules=verifier_module())


async def export_pack(settings: Settings, period: Period, out: Path, *, actor: str) -> PackSummary:
    signer = signer_from(settings.env)  # a bad key refuses before anything is written
    async with build_app(settings) as app:
        sla = app.deps.policy.schedule.termination_sla.total_seconds() / 3600
        summary = await write_pack(app.store, period, out, sla_hours=sla, signer=signer)
        await _record(app.service, actor, period, summary)
    return summary


async def _record(service: AccessService, actor: str, period: Period, summary: PackSummary) -> None:
    deps = service.deps
    async with deps.store.write() as repo:
        await repo.append("evidence.exported", actor=actor, ts=deps.now(), data={
            "from": period.start.isoformat(), "to": period.end.isoformat(), "file": summary.path.name,
            "manifest_files": summary.files, "head_hash": summary.audit.get("head_hash"),
            "verified": summary.audit.get("verified")})


async def report_text(settings: Settings, what: str, profile: str | None, fmt: str) -> tuple[str, bool]:
    async with build_app(settings, record_policy=False) as app:
        return await _report(app.service, what, profile, fmt)


async def _report(service: AccessService, what: str, profile: str | None, fmt: str) -> tuple[str, bool]:
    deps = service.deps
    source = SqlReportSource(deps.store)  # type: ignore[arg-type]
    if what == "drift":
        return render(await drift_rows(source), DRIFT_COLUMNS, fmt, "Drift findings"), True
    if what == "trends":
        from handlers.reviews.campaign import repo_of
        from handlers.reviews.trends import TREND_COLUMNS, trend_rows

        async with deps.store.read() as raw:
            snapshots = await repo_of(raw).snapshots()
        return render(trend_rows(snapshots), TREND_COLUMNS, fmt, "Members per profile per quarter"), True
    if what == "terminations":
        sla = deps.policy.schedule.termination_sla.total_seconds() / 3600
        rows = await termination_rows(source, sla)
        text = render(rows, TERMINATION_COLUMNS, fmt, f"Terminations (SLA {sla:g} h)")
        if fmt == "text" and rows:
            text += render(termination_rollup(rows), ROLLUP_COLUMNS, fmt, "By month")
        return text, True
    if profile is None:
        return render(await access_rows(deps, None), ACCESS_COLUMNS, fmt, "Who has access (every profile)"), True
    if deps.policy.profile(profile) is None:
        return f"There is no profile {profile!r}.\n", False
    return render(await access_rows(deps, profile.lower()), ACCESS_COLUMNS, fmt, f"Who has {profile}"), True


def private_pack_path(configured: str | None, stem: str) -> Path:
    """A new, empty file for a pack that only this process's user can reach.

    Without ``ACCESSBOT_EVIDENCE_DIR``: a fresh folder under the temp folder (``mkdtemp``: an
    unguessable name, mode 0700), never a fixed path another local user could plant a link at.
    With it: that folder, made 0700 when missing; a link, another owner, or a folder others may
    write is refused. The file itself is created with ``O_EXCL`` (and ``O_NOFOLLOW``), mode 0600.
    """
    if configured:
        folder = Path(configured)
        if not folder.exists() and not folder.is_symlink():
            folder.mkdir(mode=0o700, parents=True)
        st = os.lstat(folder)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise OSError(f"ACCESSBOT_EVIDENCE_DIR {folder} is not a plain folder (a link is refused)")
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise OSError(f"ACCESSBOT_EVIDENCE_DIR {folder} must belong to this user and not be writable by others")
    else:
        folder = Path(tempfile.mkdtemp(prefix="accessbot-evidence-"))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for attempt in range(100):
        path = folder / (f"{stem}.zip" if attempt == 0 else f"{stem}-{attempt}.zip")
        try:
            os.close(os.open(path, flags, 0o600))
        except FileExistsError:
            continue
        return path
    raise OSError(f"no free file name for {stem} in {folder}")


def install(service: AccessService, settings: Settings) -> None:
    """The security team's chat commands ``evidence <from> <to>`` and ``report …``."""

    async def evidence(actor: Person, cmd: Evidence) -> Reply:
        try:
            period = Period.parse(cmd.date_from, cmd.date_to)
        except ValueError as exc:
            return Reply(text=f"{exc}. Say `evidence 2026-11-01 2026-11-30`.", ok=False, kind="refusal")
        try:
            out = private_pack_path(settings.env.get("ACCESSBOT_EVIDENCE_DIR"),
                                    f"evidence-{period.start}-{period.end}-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        except OSError as exc:
            return Reply(text=f"No pack written: {exc}.", ok=False, kind="refusal", rule="evidence-dir")
        sla = service.deps.policy.schedule.termination_sla.total_seconds() / 3600
        try:
            signer = signer_from(settings.env)
        except SigningError as exc:
            return Reply(text=f"No evidence pack written: {exc}.", ok=False, kind="refusal")
        try:
            summary = await write_pack(service.deps.store, period, out, sla_hours=sla,  # type: ignore[arg-type]
                                       signer=signer)
        except EvidenceMismatch as exc:
            return Reply(text=f"No evidence pack written: {exc}.", ok=False, kind="refusal")
        os.chmod(out, 0o600)
        await _record(service, actor.email, period, summary)
        counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
        return Reply(text=f"Evidence pack for {period.start} to {period.end} written on the server: {out} ({counts}; "
                     f"chain verified: {summary.audit['verified']}).", data={"path": str(out)})

    async def report(actor: Person, cmd: Report) -> Reply:
        text, ok = await _report(service, cmd.what, cmd.profile, "text")
        return Reply(text=text.rstrip("\n"), ok=ok)

    service.extra[Evidence] = evidence
    service.extra[Report] = report
