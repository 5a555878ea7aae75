"""The certification report of a campaign as a PDF (reportlab): a pure renderer, view-model in, bytes out."""

from __future__ import annotations

import io

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from cards.pdf_fonts import Fonts, load
from handlers.reviews.report import CertificationView, ItemLine

COLUMNS = ("#", "member", "profile / group", "held via", "advice", "decision", "by", "at", "comment", "outcome")
WIDTHS = (9, 44, 42, 24, 16, 16, 38, 30, 38, 16)  # mm: 273 in all, the width of a landscape A4 page inside its margins;
# "outcome" and "undecided" fit their columns in the widest font of the chain (DejaVu Sans, cards/pdf_fonts.py)


def _table(lines: tuple[ItemLine, ...], small, _p) -> Table:  # type: ignore[no-untyped-def]
    rows = [[_p(c, small) for c in COLUMNS]]
    for x in lines:
        member = x.user if not x.name or x.name == x.user else f"{x.name} <{x.user}>"
        rows.append([_p(str(v), small) for v in (
            x.number, member, f"{x.profile} / {x.group}", x.held_via, x.recommendation, x.decision or "undecided",
            x.decided_by, x.decided_at, x.comment, x.outcome)])
    table = Table(rows, colWidths=[w * mm for w in WIDTHS], repeatRows=1, splitInRow=1)  # a row taller than a page
    # (a 2000-character comment) goes on over the next page rather than failing the whole report
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def render_certification(view: CertificationView, *, note: str = "", fonts: Fonts | None = None) -> bytes:
    """The report; ``note`` says how it is signed (or that it is not). Its text is set in ``fonts`` (by default
    the packaged and system ones, cards/pdf_fonts.py); the characters none of them draws are left in
    ``fonts.missing``."""
    fonts = fonts if fonts is not None else load()

    def _p(text: str, style) -> Paragraph:  # type: ignore[no-untyped-def]
        return Paragraph(fonts.markup(text), style)

    styles = getSampleStyleSheet()
    for name in ("BodyText", "Title", "Heading2"):
        styles[name].fontName = fonts.primary
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    body = styles["BodyText"]
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"{view.heading}: {view.title}", author="accessbot",
                            subject=f"Access review {view.review_id}, snapshot {view.snapshot_sha256}")
    facts = [
        ("Campaign", f"{view.review_id} — {view.title} (review {view.review}), {view.state}"),
        ("Started", f"{view.started_at} by {view.started_by}; closes {view.due_at}"
         + (f"; closed {view.closed_at}" if view.closed_at else "")),
        ("Policy", f"version {view.policy_version}, sha256 {view.policy_sha256}"),
        ("Snapshot sha256", view.snapshot_sha256),
        ("Audit chain head", f"{view.chain_head} ({view.chain_events} events, "
         f"{'verified' if view.chain_verified else 'NOT verified'} at {view.generated_at})"),
        ("Decisions", f"{view.decided} of {view.items} items decided"),
    ]
    if view.signoff:
        facts.append(("Sign-off", view.signoff))
    story = [_p(view.heading, styles["Title"])]
    if not view.is_certification:
        story.append(_p(f"{view.review_id} is {view.state}: decisions can still change, undecided items have no "
                        "outcome and nothing on the removal list has been removed. This shows progress; the "
                        "certification is written once the campaign is closed.", body))
    if note:
        story.append(_p(note, body))
    fact_table = Table([[_p(k, body), _p(v, body)] for k, v in facts], colWidths=[40 * mm, 220 * mm], splitInRow=1)
    fact_table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [fact_table, Spacer(1, 4 * mm), Paragraph("Scope", styles["Heading2"])]
    scope = [[_p(c, small) for c in ("profile", "provider", "group", "members in the snapshot")]]
    scope += [[_p(str(v), small) for v in row] for row in view.scope]
    story.append(Table(scope, colWidths=[50 * mm, 30 * mm, 70 * mm, 40 * mm], splitInRow=1, style=TableStyle(
        [("GRID", (0, 0), (-1, -1), 0.25, colors.grey)])))
    for section in view.reviewers:
        story.append(_p(f"Reviewer {section.reviewer}", styles["Heading2"]))
        when = (f"; decisions from {section.first_decision} to {section.last_decision}"
                if section.first_decision else "")
        story.append(_p(f"{section.decided} of {len(section.items)} items decided{when}.", body))
        story.append(_table(section.items, small, _p))
    story.append(Paragraph("Removals" if view.is_certification else "Decided for removal so far (not removed)",
                           styles["Heading2"]))
    story.append(_table(view.removals, small, _p) if view.removals else _p("No item is decided for removal.", body))
    if fonts.missing:  # said on the first page, under the heading, before any of them is read
        codes = ", ".join(f"U+{ord(c):04X}" for c in sorted(fonts.missing))
        story.insert(1, _p(f"No font available here draws {codes}: each is written as recorded into this file's "
                           "text (copy or extract it to read it), printed as an empty box followed by its code "
                           "point in brackets.", body))
    doc.build(story)
    return out.getvalue()
