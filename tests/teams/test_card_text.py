"""What people type never becomes Markdown in a Teams card: no link, emphasis, list or heading.

Adaptive Cards render ``TextBlock`` text and ``FactSet`` facts with a CommonMark subset; each card
is rendered here with a CommonMark parser (markdown-it, the parser the Adaptive Cards web renderer
is used with) and must show every user string literally, character for character.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from markdown_it import MarkdownIt

from cards import adaptive, reviews_adaptive
from handlers.reviews.views import ReviewBatchView, ReviewItemView
from handlers.views import FormRequest, ProfileView, Reply, RequestView, StepView
from tests.teams.cardcheck import check_card
from tests.teams.conftest import TeamsHarness, conversation_id

PAYLOADS = (
    "[Approve now](https://evil.example/phish)",
    "**URGENT** _sanctioned by the CISO_",
    "- one\n- two\n1. first\n2) second",
    "# Heading\nSetext\n===\n> quoted\n***\n---",
    "![logo](https://evil.example/p.png) <https://evil.example/auto> <b>bold</b>",
    "`code` ~~struck~~ AT&amp;T &lt;x&gt; back\\*slash\\",
    "{{DATE(2017-02-14T06:00:00Z, SHORT)}} a_b_c under_score [ref]\n\n[ref]: https://evil.example/ref",
)
NASTY = "\n\n".join(PAYLOADS)
# HTML a CommonMark renderer produces only when text was taken as Markdown
MARKUP = re.compile(r"<(a|img|em|li|ul|ol|h\d|code|pre|blockquote|hr|del|s|b)[\s>/]")
MD = MarkdownIt("commonmark")


def markdown_texts(card: dict[str, Any]) -> list[str]:
    """Every string an Adaptive Cards host renders as Markdown: TextBlock text, Fact title and value."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TextBlock":
                out.append(node["text"])
            if node.get("type") == "FactSet":
                for fact in node["facts"]:
                    out.extend((fact["title"], fact["value"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(card.get("body"))
    return out


def rendered(card: dict[str, Any]) -> tuple[str, str]:
    """(the HTML of every Markdown text, what a reader sees: tags dropped, entities decoded)."""
    markup = "\n".join(MD.render(t) for t in markdown_texts(card))
    visible = html.unescape(re.sub(r"<[^>]+>", "", markup))
    return markup, visible


def assert_literal(card: dict[str, Any], *payloads: str) -> None:
    check_card(card)
    markup, visible = rendered(card)
    strong = " ".join(re.findall(r"<strong>(.*?)</strong>", markup, flags=re.S))
    assert not MARKUP.search(markup), MARKUP.search(markup)
    assert "evil" not in strong and "URGENT" not in strong  # bold only where the card itself means it
    for payload in payloads:
        for line in payload.splitlines():
            if line:
                assert line in visible, (line, visible)


def view(text: str = NASTY, **kw: Any) -> RequestView:
    steps = (StepView(index=1, label="manager", approvers=("mark.mgr@example.com",), approved_by=(), need=1,
                      status="open"),)
    fields: dict[str, Any] = dict(
        id="REQ-7", number=7, requester="alice@example.com", requester_name=text, profile="prod-db-read",
        profile_title="Production database, read-only", risk="high", kind="standard", state="pending",
        duration="2h", justification=text, ticket="INC-4411 " + PAYLOADS[0], submitted_at="2026-11-23T08:00:00Z",
        provider="directory", group="sg-prod-db-read", policy_version="2026.11", steps=steps,
        waiting_on=("mark.mgr@example.com",), facts=(("department", PAYLOADS[1]),))
    fields.update(kw)
    return RequestView(**fields)


def review_view(count: int, *, state: str = "open") -> ReviewBatchView:
    """A reviewer's batch of ``count`` items, its free text the nastiest there is."""
    items = tuple(ReviewItemView(
        number=k, user=f"u{k}@example.com", name=PAYLOADS[k % len(PAYLOADS)], title=PAYLOADS[1],
        department=PAYLOADS[4], profile="prod-db-read", group="directory/sg-prod-db-read",
        held_via="standing" if k % 2 else f"REQ-{k} until 2026-12-01T00:00:00Z", since="2026-01-02",
        last_sign_in=None if k % 3 else "2026-11-20", recommendation="remove" if k % 2 else "keep",
        recommendation_reason=PAYLOADS[0] if k % 2 else "", decision=("keep", "remove", None)[k % 3],
        decided_by="mark.mgr@example.com" if k % 3 != 2 else None, gone=k == 2, inactive=k == 3, service=k == 4)
        for k in range(1, count + 1))
    return ReviewBatchView(review_id="RV-7", title=PAYLOADS[1], state=state,
                           due_at=datetime(2026, 12, 7, 8, 0, tzinfo=UTC), items=items, notes=(PAYLOADS[0],))


def test_user_text_in_every_card_is_shown_literally() -> None:
    v = view()
    assert_literal(adaptive.approval_card(v, viewer="mark.mgr@example.com", note=NASTY), *PAYLOADS)
    assert_literal(adaptive.approval_card(v, viewer="bob@example.com"), *PAYLOADS)
    assert_literal(adaptive.status_card(v, note=NASTY), *PAYLOADS)
    assert_literal(adaptive.outcome_card(view(state="revoked", end_reason=PAYLOADS[0])), *PAYLOADS)
    assert_literal(adaptive.expiring_card(view(state="active", expires_at="2026-11-23T10:00:00Z"), note=NASTY),
                   *PAYLOADS)
    assert_literal(adaptive.requests_card(PAYLOADS[0], [view(requester=PAYLOADS[1])], extra=[NASTY]), *PAYLOADS)
    profile = ProfileView(id="prod-db-read", title=PAYLOADS[0], risk="high", eligible=False, reason=PAYLOADS[1],
                          default_duration="1h", max_duration="8h", justification_required=True,
                          ticket_required=True, exception_allowed=True)
    assert_literal(adaptive.profiles_card([profile]), PAYLOADS[0], PAYLOADS[1])
    form = FormRequest(profile="prod-db-read", duration="2h", justification=NASTY, ticket="x", missing=("ticket",),
                       errors={"ticket": "JIRA-1 " + PAYLOADS[0] + " does not match"}, profiles=(profile,))
    assert_literal(adaptive.form_card(form), PAYLOADS[0])
    assert_literal(adaptive.text_card(NASTY, title=PAYLOADS[1]), *PAYLOADS)
    assert_literal(adaptive.help_card(Reply(text="Commands:\n  request <profile>  " + PAYLOADS[0] + " "
                                            + PAYLOADS[1], kind="help")), PAYLOADS[0], PAYLOADS[1])
    assert_literal(reviews_adaptive.review_card(review_view(7), note=NASTY), *PAYLOADS)


def test_the_cards_own_emphasis_survives() -> None:
    card = adaptive.requests_card("Pending", [view(justification="x", requester_name="Alice")])
    assert "<strong>REQ-7</strong>" in rendered(card)[0]


async def test_a_justification_and_a_deny_reason_reach_the_cards_literally(teams: TeamsHarness) -> None:
    h = teams
    alice, mark = "alice@example.com", "mark.mgr@example.com"
    link = "[Approve now](https://evil.example/phish)"
    status, _ = await h.say(alice, f"request staging-admin for 2h because {link} **now**")
    assert status == 200
    mark_card = h.connector.of("send", h.connector.of("create")[0].conversation)[-1].card
    assert_literal(mark_card, f"{link} **now**")
    card = await h.click(mark, "deny", {"request_id": 1, "comment": "no: see [the policy](https://evil.example/x)"})
    assert_literal(card, f"{link} **now**")
    updates = h.connector.of("update", conversation_id(alice))
    assert updates
    for update in updates:
        assert update.card is not None
        assert_literal(update.card, f"{link} **now**")


def test_a_review_card_of_twenty_items_full_of_markdown_stays_under_28_kb() -> None:
    worst = "*_[`<&" * 400  # every character escaped, then JSON-escaped: three bytes for one
    view = review_view(20)
    items = tuple(replace(i, user=worst + "@example.com", name=worst, title=worst, department=worst, profile=worst,
                          group=worst, held_via=worst, recommendation_reason=worst, decided_by=worst, since=worst,
                          last_sign_in=worst) for i in view.items)
    card = reviews_adaptive.review_card(replace(view, items=items, notes=(worst,), title=worst), note=worst,
                                        comment=worst, ask_reason=True, refresh_user_ids=["29:1mark"])
    check_card(card)  # the 1.5 schema and the 28 KB limit
    assert len([i for i in view.items if not i.gone]) == 19
    assert sum(1 for b in card["body"] if b.get("type") == "Input.ChoiceSet") == 19
