"""report.html's access reviews section is computed from the review.* events alone: the last decision
counts, gone items leave the completion's denominator, defaults are not completion, an open campaign past
its due time is overdue, a denied sign-off and removals done after the close are shown."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cards.report_reviews import reviews_section
from handlers.evidence_reviews import ReviewFigures


def ev(kind: str, ts: str, data: dict, actor: str = "system") -> dict:
    return {"type": kind, "ts": f"2026-11-{ts}Z", "actor": actor, "data": data}


def figures() -> ReviewFigures:
    r = ReviewFigures()
    for e in [
        ev("review.started", "23T08:00:00", {"review_id": "RV-1", "review": "quarterly", "items": 4,
                                             "due_at": "2026-11-25T08:00:00Z",
                                             "departments": {"Eng": 3, "(no department)": 1}}),
        ev("review.decided", "23T20:00:00", {"review_id": "RV-1", "item": 1, "decision": "remove",
                                             "department": "Eng"}, "m@x"),
        ev("review.decided", "24T08:00:00", {"review_id": "RV-1", "item": 1, "decision": "keep",
                                             "department": "Eng"}, "m@x"),
        ev("review.item_gone", "24T09:00:00", {"review_id": "RV-1", "item": 2}),
        ev("review.escalated", "24T10:00:00", {"review_id": "RV-1", "reviewer": "m@x", "to": "p@x", "items": [3]}),
        ev("review.decided", "25T08:00:00", {"review_id": "RV-1", "item": 3, "decision": "remove",
                                             "department": "Eng"}),
        ev("review.decided", "25T08:00:00", {"review_id": "RV-1", "item": 4, "decision": "remove",
                                             "department": None}),
        ev("review.closed", "25T08:00:01", {"review_id": "RV-1", "kept": 1, "removed": 2, "defaulted": 2,
                                            "gone": 1, "failed": 1, "signoff": None}),
        ev("review.removal_completed", "25T09:00:00", {"review_id": "RV-1", "item": 3}),
        ev("review.started", "26T08:00:00", {"review_id": "RV-2", "review": "quarterly", "items": 1,
                                             "due_at": "2026-11-27T08:00:00Z", "departments": {"Eng": 1}}),
        ev("review.signoff_requested", "27T08:00:00", {"review_id": "RV-2", "removals": 1, "step": 1}),
        ev("review.signoff", "27T09:00:00", {"review_id": "RV-2", "decision": "denied", "step": 1}, "s@x"),
        ev("review.closed", "27T09:00:00", {"review_id": "RV-2", "kept": 0, "removed": 1, "defaulted": 1,
                                            "gone": 0, "failed": 0, "signoff": "denied"}),
        ev("review.started", "28T08:00:00", {"review_id": "RV-3", "review": "q2", "items": 2,
                                             "due_at": "2026-11-29T08:00:00Z", "departments": {"Eng": 2}}),
    ]:
        r.event(e)
    return r


def rows(html: str) -> dict[str, list[str]]:
    table = html[:html.index("</table>")]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells:
            out[cells[0]] = cells
    return out


def test_campaign_rows_follow_the_events() -> None:
    html = "\n".join(reviews_section(figures(), datetime(2026, 11, 30, tzinfo=UTC)))
    by_id = rows(html)
    # RV-1: item 1's last decision (keep) counts; item 2 gone; 3 and 4 defaulted; 1 of 3 live items by a person
    assert by_id["RV-1"][4:] == ["4", "1 (33%)", "1", "2", "2", "1", "1 / 0", "not required",
                                 "1 failed at close, 1 done later"]
    assert by_id["RV-2"][3].startswith("closed") and by_id["RV-2"][11] == "DENIED: nothing removed"
    assert by_id["RV-3"][3] == "OVERDUE: open past 2026-11-29 08:00"
    assert "Overdue campaigns: RV-3" in html and "RV-1" not in html.split("Overdue campaigns:")[1][:20]
    assert "Final decisions: 1 kept, 2 removed (removal rate 67%)" in html
    departments = html[html.index("Completion by department"):]
    assert re.search(r"<td>Eng</td><td class='num'>6</td><td class='num'>1</td><td>17%</td>", departments)
    assert "1 items, median 12.0 h" in html  # the first decision by a person on item 1, from the start


def test_no_campaign_says_so() -> None:
    assert "No access review campaign" in "".join(reviews_section(ReviewFigures(), datetime.now(UTC)))


def test_a_failed_signoff_shows_that_nothing_was_removed() -> None:
    """A campaign whose sign-off could no longer be completed closes with ``signoff: failed`` (SPEC §7):
    the report says so, not "not required"."""
    r = ReviewFigures()
    for e in [
        ev("review.started", "26T08:00:00", {"review_id": "RV-4", "review": "quarterly", "items": 1,
                                             "due_at": "2026-11-27T08:00:00Z", "departments": {"Eng": 1}}),
        ev("review.signoff_requested", "27T08:00:00", {"review_id": "RV-4", "removals": 1, "step": 1}),
        ev("review.closed", "28T08:00:00", {"review_id": "RV-4", "kept": 0, "removed": 1, "defaulted": 1,
                                            "gone": 0, "failed": 0, "signoff": "failed",
                                            "rule": "step 1: all_of security"}),
    ]:
        r.event(e)
    by_id = rows("\n".join(reviews_section(r, datetime(2026, 11, 30, tzinfo=UTC))))
    assert by_id["RV-4"][3].startswith("closed")
    assert by_id["RV-4"][11] == "FAILED (could not be completed): nothing removed"
