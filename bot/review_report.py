"""``accessbot review report RV-n --out FILE.pdf``: the campaign's certification, signed when a key is set.

Nothing is written when the audit chain does not verify or the database contradicts the campaign's
``review.*`` events (exit 1, the first disagreement named). A campaign not closed yet gets an interim status
titled "Interim status — not a certification", never a certification."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.errors import output_file
from bot.settings import Settings
from handlers.evidence import create_private


def _fail(message: str) -> int:
    print(f"accessbot: {message}", file=sys.stderr)
    return 1


def _schema_problem(url: str) -> str | None:
    """Why this database holds no accessbot schema, without creating anything; None when it does."""
    from sqlalchemy.engine import make_url

    from store.db import backend, current_revision

    u = make_url(url)
    shown = u.render_as_string(hide_password=True)
    if backend(u) == "sqlite" and (not u.database or u.database == ":memory:" or not Path(u.database).is_file()):
        return f"no database at {shown}"
    try:
        if current_revision(u) is None:
            return f"the database {shown} has no accessbot schema (run accessbot db upgrade)"
    except Exception as exc:
        return f"the database {shown} cannot be used ({type(exc).__name__})"
    return None


ATTEMPTS = 3  # a campaign decided while it is read can look like a disagreement: it is read again


async def _view(url: str, campaign_id: int):  # type: ignore[no-untyped-def]
    from handlers.reviews.report import certification
    from store.repository import SqlStore

    store = SqlStore(url)
    try:
        for _ in range(ATTEMPTS):
            view = await certification(store, campaign_id, datetime.now(UTC))
            if view is None or not view.disagreement:
                return view
            await asyncio.sleep(0.5)
        return view
    finally:
        await store.close()


def write_report(settings: Settings, campaign: str, out: Path) -> int:
    m = re.fullmatch(r"(?:RV-)?([0-9]{1,9})", campaign.strip(), re.IGNORECASE)
    if m is None:
        return _fail(f"{campaign!r} is not a campaign id like RV-3")
    problem = _schema_problem(settings.database_url)
    if problem:
        return _fail(problem)
    out = output_file(out)
    key = settings.env.get("ACCESSBOT_SIGNING_KEY", "")
    cert = settings.env.get("ACCESSBOT_SIGNING_CERT", "")
    signer = None
    if key or cert:
        from bot.pdf_signing import SigningError, load_signer

        if not (key and cert):
            return _fail("set both ACCESSBOT_SIGNING_KEY and ACCESSBOT_SIGNING_CERT, or neither")
        try:
            signer = load_signer(key, cert)
        except (SigningError, ValueError, OSError) as exc:
            return _fail(f"cannot sign: {exc}")
    from cards.pdf_fonts import FontError, configured, load

    try:
        fonts = load(configured(settings.env.get("ACCESSBOT_PDF_FONT", "")))
    except FontError as exc:
        return _fail(f"cannot set the report's text: {exc}")
    view = asyncio.run(_view(settings.database_url, int(m.group(1))))
    if view is None:
        return _fail(f"there is no campaign RV-{int(m.group(1))}")
    if view.chain_problem:
        return _fail(f"the audit chain does not verify ({view.chain_problem}): no report of {view.review_id} is "
                     "written; run accessbot audit verify")
    if view.disagreement:
        return _fail(f"the database contradicts the audit chain: {view.disagreement}. No report of "
                     f"{view.review_id} is written (docs/audit-integrity.md)")
    from cards.review_pdf import render_certification

    what = "certification" if view.is_certification else f"interim status (not a certification: {view.state})"
    if signer is not None:
        from bot.pdf_signing import sign_pdf, signer_name

        name = signer_name(signer)
        reason = (f"Certification of access review {view.review_id}" if view.is_certification else
                  f"Interim status of access review {view.review_id}, not a certification")
        try:
            unsigned = render_certification(view, note=f"Signed (PAdES) by {name}.", fonts=fonts)
        except FontError as exc:
            return _fail(f"cannot set the report's text: {exc}; no report of {view.review_id} is written")
        data = sign_pdf(unsigned, signer, reason=reason)
        how = f"signed by {name}"
    else:
        try:
            data = render_certification(view, note="Unsigned: no signing key is set (ACCESSBOT_SIGNING_KEY / "
                                        "ACCESSBOT_SIGNING_CERT), so nothing shows whether this file was changed.",
                                        fonts=fonts)
        except FontError as exc:
            return _fail(f"cannot set the report's text: {exc}; no report of {view.review_id} is written")
        how = "unsigned (no signing key set)"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    create_private(partial)  # 0600: the certification names people and their access
    try:
        partial.write_bytes(data)
        partial.replace(out)
    except BaseException:  # the certification names people and their access: no copy of it is left behind
        partial.unlink(missing_ok=True)
        raise
    if fonts.missing:
        codes = ", ".join(f"U+{ord(c):04X} {c}" for c in sorted(fonts.missing))
        print(f"accessbot: warning: no font draws {codes}; they are in the PDF's text but printed as a box and "
              "their code point (set ACCESSBOT_PDF_FONT to a TrueType font that has them)", file=sys.stderr)
    print(f"wrote {out}: {view.review_id} {what}, {view.items} items, {view.decided} decided, snapshot sha256 "
          f"{view.snapshot_sha256}, chain head {view.chain_head}; {how}")
    return 0
