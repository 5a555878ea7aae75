"""Charts drawn on the server as inline SVG: no script, no library, nothing fetched by the page.

Each function returns markup that is safe to place in a template: every label is escaped here.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def bars(title: str, points: Sequence[tuple[str, float]], *, unit: str = "", digits: int = 0) -> Markup:
    """Horizontal bars, one a row, scaled to the largest value; the figure is written beside each bar."""
    if not points:
        return Markup("<p class='muted'>{}</p>").format(f"{title}: nothing to show.")
    top = max((v for _, v in points), default=0) or 1
    row, label_w, bar_w = 22, 120, 320
    height = row * len(points) + 8
    parts = [f"<svg class='chart' role='img' viewBox='0 0 {label_w + bar_w + 90} {height}' "
             f"preserveAspectRatio='xMinYMin meet' aria-label='{escape(title)}'>"]
    for i, (label, value) in enumerate(points):
        y = 4 + i * row
        width = max(0.0, value / top * bar_w)
        shown = f"{value:.{digits}f}{unit}"
        parts.append(f"<text x='{label_w - 6}' y='{y + 15}' text-anchor='end'>{escape(label)}</text>"
                     f"<rect class='bar' x='{label_w}' y='{y + 3}' width='{width:.1f}' height='{row - 8}'/>"
                     f"<text x='{label_w + width + 6:.1f}' y='{y + 15}'>{escape(shown)}</text>")
    parts.append("</svg>")
    return Markup(f"<figure><figcaption>{escape(title)}</figcaption>{''.join(parts)}</figure>")


def meter(fraction: float | None, *, label: str = "") -> Markup:
    """A progress bar for a share between 0 and 1 (empty when unknown)."""
    share = 0.0 if fraction is None else max(0.0, min(1.0, fraction))
    text = "n/a" if fraction is None else f"{share * 100:.0f}%"
    return Markup(
        f"<svg class='meter' role='img' viewBox='0 0 200 14' aria-label='{escape(label or text)}'>"
        f"<rect class='track' x='0' y='2' width='200' height='10' rx='3'/>"
        f"<rect class='fill' x='0' y='2' width='{share * 200:.1f}' height='10' rx='3'/></svg>"
        f"<span class='meter-text'>{escape(text)}</span>")


def percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.0f}%"


def hours(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} h" if value >= 1 else f"{value * 60:.0f} min"
