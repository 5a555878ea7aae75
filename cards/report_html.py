"""report.html for an evidence pack: one self-contained page, charts as inline SVG, no external assets."""

from __future__ import annotations

from datetime import datetime
from html import escape
from statistics import median
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;padding:0 1rem;
max-width:72rem;color:#1f2328}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5rem 0;max-width:100%}
td,th{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
td.nw,th.nw{white-space:nowrap;overflow-wrap:normal}
table.wide{width:100%;font-size:13px;table-layout:fixed}th{background:#f6f8fa}.num{text-align:right}.ok{color:#1a7f37}
.bad{color:#cf222e;font-weight:600}.flag{display:inline-block;margin:0 .25rem .15rem 0;padding:0 .35rem;
border-radius:.6rem;background:#fff1e5;color:#953800;font-size:12px}.muted{color:#57606a}
svg{max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:#1f2328}
"""


# the page may load nothing at all: no script, font, image or frame from anywhere
CSP = ("<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
       "img-src data:\">")


class Markup(str):
    """Text already escaped (built here from escaped parts)."""


def _td(value: Any, numeric: bool, nowrap: bool) -> str:
    text = value if isinstance(value, Markup) else escape(str(value))
    cls = " ".join(c for c, on in (("num", numeric), ("nw", nowrap)) if on)
    return f"<td class='{cls}'>{text}</td>" if cls else f"<td>{text}</td>"


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None, *,
           widths: list[int] | None = None, nowrap: set[int] | None = None) -> str:
    """A table. With ``widths`` (percent per column) it takes the page's width and never more: its
    cells break anywhere, ``nowrap`` columns (short ids) excepted."""
    numeric, nowrap = numeric or set(), nowrap or set()
    wide = widths is not None
    head = "".join(f"<th class='nw'>{escape(h)}</th>" if i in nowrap else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(_td(v, i in numeric, i in nowrap) for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    if not wide:
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    cols = "".join(f"<col style='width:{w}%'>" for w in widths or [])
    return f"<table class='wide'><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart(title: str, points: list[tuple[str, float]], *, unit: str = "") -> str:
    """A bar chart as inline SVG (no script, no external resource)."""
    if not points:
        return f"<p class='muted'>{escape(title)}: no data.</p>"
    width, height, pad = 640, 220, 40
    top = max(v for _, v in points) or 1
    step = (width - 2 * pad) / len(points)
    bars = []
    for i, (label, value) in enumerate(points):
        h = (height - 2 * pad) * value / top
        x = pad + i * step + step * 0.1
        y = height - pad - h
        bars.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{step * 0.8:.1f}' height='{h:.1f}' fill='#0969da'>"
                    f"<title>{escape(label)}: {value:g}{escape(unit)}</title></rect>"
                    f"<text x='{x + step * 0.4:.1f}' y='{y - 3:.1f}' text-anchor='middle'>{value:g}</text>"
                    f"<text x='{x + step * 0.4:.1f}' y='{height - pad + 14}' text-anchor='middle'>"
                    f"{escape(label[-8:])}</text>")
    return (f"<figure><figcaption>{escape(title)}</figcaption><svg role='img' aria-label='{escape(title)}' "
            f"width='{width}' height='{height}' viewBox='0 0 {width} {height}'>"
            f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#57606a'/>"
            + "".join(bars) + "</svg></figure>")


def _when(value: Any) -> Markup:
    """A time in a narrow column: the date, and the time of day under it."""
    text = _moment(value)
    return Markup(escape(text).replace(" ", "<br>", 1))


def _parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _moment(value: Any) -> str:
    """A time as ``YYYY-MM-DD HH:MM`` (UTC); text that is not a time as it is; nothing as empty."""
    if not value:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    text = str(value)
    return text[:16].replace("T", " ") if len(text) >= 16 and text[10:11] == "T" else text


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _flags(flags: list[str]) -> Markup:
    return Markup("".join(f"<span class='flag'>{escape(f)}</span>" for f in flags))


def _ended(row: dict[str, str]) -> Markup:
    text = str(_when(row["ended_at"]))
    if row["ended_as_of"]:
        text += f"<br><span class='muted'>judged as of {escape(_moment(row['ended_as_of']))}</span>"
    return Markup(text)


REFUSAL_KINDS = {"request.refused": "request refused", "approval.refused": "approval refused",
                 "command.refused": "command refused"}


def _sample_first(figures: Any) -> list[str]:
    """Refusals, then every grant with who approved it, then exceptions: what an auditor samples first."""
    parts = [f"<h2>Refusals: {sum(figures.refusal_counts.values())}</h2>"]
    if figures.refusal_counts:
        parts.append("<p>" + "; ".join(f"{REFUSAL_KINDS.get(k, k)}: {n}"
                                       for k, n in sorted(figures.refusal_counts.items())) + ". Self-approval, "
                     "approving without being an approver and commands the asker may not use are refused and "
                     "recorded.</p>")
        parts.append(_table(["when (UTC)", "who", "what", "request", "profile", "rule or reason"],
                            [[_moment(r["ts"]), r["actor"], REFUSAL_KINDS.get(r["type"], r["type"]), r["request_id"],
                              r["profile"], r["what"]] for r in figures.refusals],
                            widths=[14, 20, 14, 9, 13, 30], nowrap={3}))
    else:
        parts.append("<p class='muted'>No refusals in this period.</p>")
    parts.append(f"<h2>Grants active in the period: {figures.grants}</h2>")
    flagged = figures.flagged
    summary = [f"{len(flagged.get(k, []))} {label}" for k, label in (
        ("auto-approved", "auto-approved"), ("no justification", "without a justification"),
        ("exception", "exceptions"), ("held past its expiry", "held past their expiry"),
        ("longer than the policy maximum", "longer than the policy maximum"))]
    parts.append("<p>" + ", ".join(summary) + ". Times are when each step was recorded (UTC); when a sweep "
                 "judged an end as of another instant (<code>sweep --as-of</code>), that instant is shown too "
                 "(grants.csv: ended_as_of).</p>")
    for key in ("held past its expiry", "longer than the policy maximum"):
        if flagged.get(key):
            parts.append(f"<p class='bad'>Grants {escape(key)}: {escape(', '.join(flagged[key]))}</p>")
    if not flagged.get("held past its expiry") and not flagged.get("longer than the policy maximum"):
        parts.append("<p class='ok'>No grant was held past its expiry or granted for longer than its policy "
                     "allowed.</p>")
    if figures.grant_lines:
        parts.append(_table(
            ["request", "user", "profile", "approved by", "justification", "started", "expires", "ended",
             "end", "flags"],
            [[g.row["request_id"], g.row["user"], g.row["profile"],
              g.row["approved_by"].replace(";", ", ")
              or (f"auto-approved ({g.row['auto_approved']})" if g.row["auto_approved"] else ""),
              g.row["justification"], _when(g.row["started_at"]), _when(g.row["expires_at"]), _ended(g.row),
              g.row["end_reason"], _flags(g.flags)] for g in figures.grant_lines],
            widths=[6, 12, 9, 13, 15, 9, 9, 10, 7, 10], nowrap={0}))
    parts.append(f"<h2>Exceptions: {len(figures.exceptions)}</h2>")
    if figures.exceptions:
        parts.append(_table(["request", "requester", "profile", "duration", "reason", "state", "submitted",
                             "approvers"],
                            [[e["request_id"], e["requester"], e["profile"], e["duration"], e["justification"],
                              e["state"], _when(e["submitted_at"]), e["approvers"].replace(";", ", ")]
                             for e in figures.exceptions], widths=[6, 14, 10, 7, 28, 7, 10, 18], nowrap={0}))
    return parts


def render_report(figures: Any, *, generated_at: str, sla_hours: float = 24.0, chain_ok: bool | None = None) -> str:
    p = figures.period
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>{CSP}"
             "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Access evidence "
             f"{p.start} to {p.end}</title><style>{CSS}</style></head><body>",
             f"<h1>Access evidence, {p.start} to {p.end}</h1>",
             f"<p class='muted'>Generated {escape(generated_at)} by accessbot. Every figure below is computed from "
             "the CSV files and audit.jsonl in this pack (the CSV rows themselves are derived from the audit "
             "events; verify_pack.py derives them again); manifest.json holds their SHA-256.</p>"]
    if chain_ok is not None:
        parts.append("<p class='ok'>The audit chain verified when this pack was made.</p>" if chain_ok
                     else "<p class='bad'>The audit chain did NOT verify when this pack was made.</p>")
    parts += _sample_first(figures)
    parts.append("<h2>Policy versions</h2>")
    parts.append(_table(["version", "sha256"], [[v, s] for v, s in figures.policy_versions]))
    parts.append(f"<h2>Requests: {figures.requests}</h2>")
    states = sorted({s for counts in figures.by_profile.values() for s in counts})
    rows = [[profile, *[counts.get(s, 0) for s in states], sum(counts.values())]
            for profile, counts in sorted(figures.by_profile.items())]
    parts.append(_table(["profile", *states, "total"], rows, set(range(1, len(states) + 2))))
    parts.append(bar_chart("Requests per week", sorted(figures.per_week.items())))
    parts.append("<h2>Time to approve</h2>")
    if figures.approve_seconds:
        secs = figures.approve_seconds
        parts.append(f"<p>{len(secs)} approvals; median {_hours(median(secs))}, longest {_hours(max(secs))}.</p>")
        buckets = [("<15m", 900), ("<1h", 3600), ("<4h", 14400), ("<24h", 86400), (">=24h", float("inf"))]
        counts, low = [], 0.0
        for label, high in buckets:
            counts.append((label, float(sum(1 for s in secs if low <= s < high))))
            low = high
        parts.append(bar_chart("Approvals by time since the request", counts))
    else:
        parts.append("<p class='muted'>No approvals in this period.</p>")
    parts.append(f"<h2>Terminations: {len(figures.terminations)}</h2>")
    if figures.terminations:
        rows = []
        for t in figures.terminations:  # as `report terminations`: from the first sweep that saw them inactive
            hours = t.get("hours_to_revoke") or ""
            within = ("pending" if t.get("within_sla") == "pending" else "n/a") if not hours else \
                ("yes" if float(hours) <= sla_hours else "NO")
            removed = ", ".join(x for x in (t.get("grants", "").replace(";", ", "),
                                            t.get("memberships", "").replace(";", ", ")) if x) or "none"
            rows.append([t["user"], t["detected_at"], removed, t.get("revoked_at") or "", hours, within])
        parts.append(_table(["user", "detected", "grants and memberships", "removed", "hours",
                             f"within {sla_hours:g} h SLA"], rows))
    removals = getattr(getattr(figures, "removals", None), "rows", [])  # removals.csv (SPEC §6)
    parts.append(f"<h2>Removals by the identity provider: {len(removals)}</h2>")
    if removals:
        parts.append("<p class='muted'>Grants revoked and standing memberships removed because of a leaver, a "
                     "mover or drift, with the hours from detection to removal.</p>")
        parts.append(_table(["user", "provider", "group", "reason", "request", "detected", "removed", "hours",
                             f"within {sla_hours:g} h SLA"],
                            [[r["user"], r["provider"], r["group"], r["reason"], r["request_id"], r["detected_at"],
                              r["removed_at"], r["hours"],
                              "" if not r["hours"] else ("yes" if float(r["hours"]) <= sla_hours else "NO")]
                             for r in removals]))
    parts.append(f"<h2>Drift: {sum(1 for d in figures.drift if d['type'] == 'drift.detected')} found</h2>")
    if figures.drift:
        parts.append("<p class='muted'>A member of a managed group with no grant behind them, or a grant holder "
                     "who is not a member; each with its resolution, who chose it, the request behind it and the "
                     "hours from detection to resolution.</p>")
        parts.append(_table(["id", "provider", "group", "user", "found", "resolution", "by", "request", "resolved",
                             "hours"],
                            [[r["id"], r["provider"], r["group"], r["user"] + (" (not a member)" if r["kind"] ==
                              "missing" else ""), r["first_seen"], r["resolution"] or "still open at the end of "
                              "the period", r["resolved_by"], r["request_id"], r["resolved_at"],
                              r["hours_to_resolution"]] for r in figures.drift_findings()]))
    from cards.report_reviews import reviews_section  # imports this module's helpers

    parts += reviews_section(figures.reviews, figures.report_end)
    parts.append("</body></html>")
    return "\n".join(parts)
