"""``/dashboard/evidence``: the evidence pack of any period, for the security team (the export of SPEC §6)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from bot.evidence_commands import write_pack
from bot.signing import SigningError, signer_from
from bot.web.routes import html, page
from bot.web.session import board, harden
from handlers.dashboard.signin import Viewer
from handlers.evidence import EvidenceMismatch, Period

CHUNK = 256 * 1024


@page(security=True)
async def evidence_form(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return html(request, "evidence.html", viewer=viewer, nav="evidence", message="")


def navigated_here(request: web.Request) -> bool:
    """The pack is asked for by a navigation of our own (the form's Download button, a typed or bookmarked
    address), never as a subresource of another page. Building it records ``evidence.exported`` in the
    viewer's name, and the SameSite=Strict cookie still goes along on a same-site subresource (an ``<img>`` on
    a sibling host), so the browser's fetch metadata must say so where it is sent: ``Sec-Fetch-Site``
    ``same-origin`` or ``none``, ``Sec-Fetch-Dest`` ``document``. A client that sends neither is no browser
    and carries no cookie it did not mean to."""
    site = request.headers.get("Sec-Fetch-Site")
    dest = request.headers.get("Sec-Fetch-Dest")
    return site in (None, "same-origin", "none") and dest in (None, "document")


@page(security=True)
async def evidence_pack(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    if not navigated_here(request):
        return html(request, "evidence.html", status=403, viewer=viewer, nav="evidence",
                    message="No evidence pack written: download it with this page's Download button.")
    try:
        period = Period.parse(request.query.get("from", ""), request.query.get("to", ""))
    except ValueError as exc:
        return html(request, "evidence.html", status=400, viewer=viewer, nav="evidence", message=str(exc))
    b = board(request)
    deps = b.app.deps
    try:
        signer = signer_from(b.app.settings.env)  # signed like every pack the bot writes (docs/audit-integrity.md)
    except SigningError as exc:
        return html(request, "evidence.html", status=500, viewer=viewer, nav="evidence",
                    message=f"No evidence pack written: {exc}.")
    folder = Path(tempfile.mkdtemp(prefix="accessbot-pack-"))
    try:
        name = f"evidence-{period.start}-{period.end}.zip"
        sla = deps.policy.schedule.termination_sla.total_seconds() / 3600
        try:
            summary = await write_pack(b.app.store, period, folder / name, sla_hours=sla, signer=signer)
        except EvidenceMismatch as exc:  # the database contradicts the chain: no rows that say otherwise
            return html(request, "evidence.html", status=409, viewer=viewer, nav="evidence",
                        message=f"No evidence pack written: {exc}.")
        async with deps.store.write() as repo:
            await repo.append("evidence.exported", actor=viewer.email, ts=deps.now(), data={
                "from": period.start.isoformat(), "to": period.end.isoformat(), "file": name,
                "channel": "dashboard", "manifest_files": summary.files,
                "head_hash": summary.audit.get("head_hash"), "verified": summary.audit.get("verified")})
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(summary.path.stat().st_size)})
        harden(request, response.headers)
        await response.prepare(request)
        with summary.path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        shutil.rmtree(folder, ignore_errors=True)
