"""The access reviews section of report.html: campaigns of the period with completion, keeps and
removals, what was overdue and the sign-off; completion by department and time to decide."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from cards.report_html import Markup, _hours, _moment, _table, bar_chart


def _pct(part: int, whole: int | None) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def _state(c: Any, end: datetime) -> Markup:
    if c.overdue(end):
        return Markup(f"<span class='bad'>OVERDUE: open past {escape(_moment(c.due_at))}</span>")
    if c.closed_at:
        return Markup(escape(f"closed {_moment(c.closed_at)}"))
    if c.signoff == "requested":
        return Markup("waiting for sign-off")
    return Markup(escape(f"open, due {_moment(c.due_at)}" if c.due_at else "open"))


def _signoff(c: Any) -> str:
    text = {"requested": "asked", "approved": "approved", "denied": "DENIED: nothing removed",
            "failed": "FAILED (could not be completed): nothing removed"}.get(c.signoff or "", "not required")
    stood_in = getattr(c, "stood_in", None)
    if stood_in:  # a step whose every approver had their own access on the list went to the security team
        text += f" (by the security team instead of {', '.join(stood_in)}, whose own access was on the list)"
    return text


def _removals(c: Any) -> str:
    if not c.closed:
        return ""
    if c.signoff in ("denied", "failed"):
        return "none: nothing removed"
    failed = int(c.closed.get("failed") or 0)
    text = f"{failed} failed at close" if failed else "all done at close"
    if c.skipped:
        text += f", {c.skipped} not needed (review.removal_skipped)"
    if c.completed_later:
        text += f", {c.completed_later} done later"
    return text


def reviews_section(reviews: Any, end: datetime) -> list[str]:
    campaigns = reviews.ordered()
    parts = [f"<h2>Access reviews: {len(campaigns)} campaign(s)</h2>"]
    if not campaigns:
        return [*parts, "<p class='muted'>No access review campaign in this period.</p>"]
    summary = reviews.summary()
    rate = summary["removal_rate"]
    overdue = [c.review_id for c in campaigns if c.overdue(end)]
    parts.append("<p>From the review.* events of audit.jsonl (reviews.csv and review_items.csv hold the campaigns' "
                 f"records). Final decisions: {summary['kept']} kept, {summary['removed']} removed"
                 + (f" (removal rate {100 * rate:.0f}%)" if rate is not None else "") + "; completion counts the "
                 "items a person decided, not those defaulted at the close.</p>")
    if overdue:
        parts.append(f"<p class='bad'>Overdue campaigns: {escape(', '.join(overdue))}</p>")
    rows = []
    for c in campaigns:
        live = (c.items - len(c.gone)) if c.items is not None else None
        rows.append([c.review_id, c.review or "(started before the period)", _moment(c.started_at) or "before",
                     _state(c, end), "" if c.items is None else c.items,
                     f"{c.decided_by_people} ({_pct(c.decided_by_people, live)})", c.count("keep"), c.count("remove"),
                     c.defaulted, len(c.gone), f"{c.escalated} / {c.reminded}", _signoff(c), _removals(c)])
    parts.append(_table(["review", "policy id", "started", "state", "items", "decided by people", "kept",
                         "removed", "defaulted", "gone", "escalated / reminded", "sign-off", "removals"], rows,
                        numeric={4, 6, 7, 8, 9}, widths=[6, 11, 9, 12, 5, 9, 5, 6, 7, 5, 8, 8, 9], nowrap={0}))
    departments = reviews.by_department()
    if departments:
        parts.append("<h3>Completion by department</h3>")
        parts.append(_table(["department", "items", "decided by people", "completion"],
                            [[d, n, done, _pct(done, n)] for d, n, done in departments], {1, 2}))
    secs = reviews.decide_seconds()
    if secs:
        parts.append(f"<p>Time to decide (from the start to a person's first decision on an item): {len(secs)} "
                     f"items, median {_hours(float(summary['median_decide_s'] or 0))}, longest "
                     f"{_hours(float(summary['max_decide_s'] or 0))}.</p>")
        buckets = [("<1d", 86400), ("<3d", 3 * 86400), ("<7d", 7 * 86400), ("<14d", 14 * 86400),
                   (">=14d", float("inf"))]
        counts, low = [], 0.0
        for label, high in buckets:
            counts.append((label, float(sum(1 for s in secs if low <= s < high))))
            low = high
        parts.append(bar_chart("Review decisions by time since the campaign started", counts))
    return parts
