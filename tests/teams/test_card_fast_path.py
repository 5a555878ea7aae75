"""Cards written as dicts (the hot path) are byte for byte the cards the validated ``adaptive_cards`` models
serialise to, for every card type, and valid against the official Adaptive Cards 1.5 schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from cards import adaptive, compliance_adaptive, reviews_adaptive
from cards.adaptive_elements import validating
from handlers.compliance.views import DriftView, PauseView
from handlers.views import FormRequest, ProfileView, Reply, RequestView, StepView
from tests.teams.cardcheck import check_card
from tests.teams.test_card_text import NASTY, PAYLOADS, review_view, view


def profile(i: int, *, eligible: bool = True) -> ProfileView:
    return ProfileView(id=f"p-{i}", title=f"Profile {i} {PAYLOADS[i % len(PAYLOADS)]}", risk="high",
                       eligible=eligible, reason=None if eligible else "ineligible: department", default_duration="1h",
                       max_duration="8h", justification_required=i % 2 == 0, ticket_required=i % 3 == 0,
                       exception_allowed=True)


STEPS = (
    StepView(index=1, label="manager", approvers=("mark.mgr@example.com",), approved_by=("mark.mgr@example.com",),
             need=1, status="done"),
    StepView(index=2, label="2 of security", approvers=tuple(f"sec{i}@example.com" for i in range(12)),
             approved_by=("sec1@example.com",), need=2, status="open"),
    StepView(index=3, label="any_of dba", approvers=("dana.dba@example.com",), approved_by=(), need=1,
             status="waiting"),
)
ACTIVE = view("plain words", state="active", expires_at="2026-11-23T10:00:00Z", time_left="1h 59m",
              extension="2h", steps=STEPS, waiting_on=("sec2@example.com",))
HELD = view(steps=(StepView(index=1, label="manager", approvers=("mark.mgr@example.com",), approved_by=(), need=1,
                            status="open", held_for=("pat.lead@example.com",)),), waiting_on=("mark.mgr@example.com",))
ENDED = view(state="expired", end_reason="expired", kind="exception", steps=STEPS[:1], waiting_on=())
FORM = FormRequest(profile="p-2", duration="2h", justification=NASTY, ticket=None, missing=("ticket",),
                   errors={"duration": "duration>max", "justification": PAYLOADS[0]},
                   profiles=tuple(profile(i, eligible=i != 1) for i in range(4)))
HELP = Reply(text="Commands:\n  help  this list\n  approve REQ-n [<comment>]  approve the step *waiting* on you\n"
             "Free phrasing works [when](x) it is clear.", kind="help")

CARDS: dict[str, Callable[[], dict[str, Any] | None]] = {
    "approval, can decide": lambda: adaptive.approval_card(view(), viewer="mark.mgr@example.com",
                                                           refresh_user_ids=["29:a", "29:b", "29:a", ""]),
    "approval, asks a reason": lambda: adaptive.approval_card(view(), viewer="mark.mgr@example.com",
                                                              note=PAYLOADS[2], ask_reason=True, comment=NASTY),
    "approval, extension": lambda: adaptive.approval_card(ACTIVE, viewer="sec2@example.com", note="Approved.",
                                                          refresh_user_ids=[f"29:{i}" for i in range(70)]),
    "approval, not for this viewer": lambda: adaptive.approval_card(ACTIVE, viewer="someone@example.com"),
    "approval, re-route held": lambda: adaptive.approval_card(HELD, viewer="pat.lead@example.com"),
    "approval, decided": lambda: adaptive.approval_card(ENDED, viewer="mark.mgr@example.com"),
    "approval, no viewer": lambda: adaptive.approval_card(view()),
    "outcome": lambda: adaptive.outcome_card(ENDED),
    "outcome, still open": lambda: adaptive.outcome_card(ACTIVE),
    "status": lambda: adaptive.status_card(view(), note=NASTY),
    "status, no note": lambda: adaptive.status_card(ACTIVE),
    "expiring": lambda: adaptive.expiring_card(ACTIVE, note=PAYLOADS[3]),
    "expiring, no note": lambda: adaptive.expiring_card(view(expires_at=None)),
    "requests": lambda: adaptive.requests_card("Pending " + PAYLOADS[1], [view(), ACTIVE, ENDED], extra=[NASTY]),
    "requests, many": lambda: adaptive.requests_card("History", [ACTIVE] * 30),
    "requests, none": lambda: adaptive.requests_card("Mine", []),
    "profiles": lambda: adaptive.profiles_card([profile(i, eligible=i % 2 == 0) for i in range(30)]),
    "form": lambda: adaptive.form_card(FORM),
    "form, exception": lambda: adaptive.form_card(FormRequest(profile=None, duration=None, justification=None,
                                                              ticket=None, missing=(), exception=True,
                                                              profiles=(profile(1, eligible=False),))),
    "text": lambda: adaptive.text_card(NASTY),
    "text, titled": lambda: adaptive.text_card("Refused.", title=PAYLOADS[0], attention=True),
    "help": lambda: adaptive.help_card(HELP),
    "reply, requester": lambda: adaptive.reply_card(Reply(text="ok", kind="request", request=view()),
                                                    viewer="Alice@example.com"),
    "reply, requests": lambda: adaptive.reply_card(Reply(text="x", kind="requests", requests=(ACTIVE,),
                                                         data={"without_grant": ["eve@example.com"]})),
    "review, 1 item": lambda: reviews_adaptive.review_card(review_view(1), refresh_user_ids=["29:1"], note=NASTY),
    "review, last card of 200": lambda: reviews_adaptive.review_card(review_view(200), page=9, comment=NASTY,
                                                                     ask_reason=True, note="Say why.", attention=True),
    "review, closed": lambda: reviews_adaptive.review_card(review_view(20, state="signoff")),
    "drift, member": lambda: compliance_adaptive.drift_card(DriftView(
        id="D-3", provider="entra", group=PAYLOADS[0], user="pat@example.com", member=True,
        first_seen="2026-11-23T08:00:00Z")),
    "drift, escalated holder": lambda: compliance_adaptive.drift_card(DriftView(
        id="D-4", provider="okta", group="g", user=NASTY, member=False, first_seen="2026-11-23T08:00:00Z",
        request_id="REQ-9", escalated=True)),
    "pause": lambda: compliance_adaptive.pause_card(PauseView(reason="terminated", count=30, limit=25,
                                                              sample=tuple(PAYLOADS[:3]))),
}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_the_fast_card_is_the_validated_card_byte_for_byte(name: str) -> None:
    fast = CARDS[name]()
    with validating():
        validated = CARDS[name]()
    assert json.dumps(fast, ensure_ascii=False) == json.dumps(validated, ensure_ascii=False)
    assert fast is not None
    check_card(fast)


def test_the_fast_path_builds_no_model_and_shares_no_dict_between_elements() -> None:
    card = CARDS["approval, can decide"]()
    assert card is not None
    assert all(isinstance(block, dict) for block in card["body"])
    approve, deny = card["actions"]
    assert approve["data"] == deny["data"] == {"request_id": 7, "round": 0, "step": 1}
    assert approve["data"] is not deny["data"]
    assert approve["mode"] == "primary" and approve["style"] == "positive"


def test_views_of_every_shape_render_identically() -> None:
    """Every state and step status, so that no optional field is left out of the comparison."""
    for state in ("pending", "approved", "active", "denied", "failed", "revoked", "cancelled", "expired",
                  "released", "odd"):
        for v in (view(state=state), view("x", state=state, steps=STEPS, facts=(), ticket=None, justification=None)):
            builds: list[Callable[[RequestView], dict[str, Any]]] = [
                lambda x: adaptive.approval_card(x, viewer="sec2@example.com", refresh_user_ids=["29:x"]),
                adaptive.status_card, adaptive.outcome_card]
            for build in builds:
                fast = build(v)
                with validating():
                    assert json.dumps(build(v)) == json.dumps(fast)


def test_escape_returns_plain_text_as_it_is_and_everything_else_as_line_by_line_escaping_does() -> None:
    import random

    rng = random.Random(13)
    alphabet = [*"ab 1.)\t#+-=\\`*_[]<>&~{}\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029é9", "12.", "  ", "REQ-7"]
    samples = [*PAYLOADS, NASTY, "", "alice@example.com", "1) x", "12345678901. y", "  indented", "\tx", "x\n",
               *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(5000))]
    for text in samples:
        assert adaptive.escape(text) == adaptive.escape_lines(text), repr(text)
    for text in samples:  # again: the short ones now come from the texts kept, which stay bounded
        assert adaptive.escape(text) == adaptive.escape_lines(text), repr(text)
        assert len(adaptive._ESCAPED) <= adaptive._ESCAPED_MAX
    long = "# a *long* text\n" * 40
    assert adaptive.escape(long) == adaptive.escape_lines(long) and long not in adaptive._ESCAPED
    assert adaptive.escape("alice@example.com") == "alice@example.com"


def test_a_step_whose_re_route_is_held_says_so_on_the_card() -> None:
    """Whoever sees the request (the security team) sees the step staying with the manager it asked, and that passing
    it on is held; that manager, who may still decide it, gets the buttons."""
    card = adaptive.approval_card(HELD, viewer="sam.sec@example.com")
    assert "mark.mgr@example.com; passing it to pat.lead@example.com is held by the safety brake" in json.dumps(card)
    assert "actions" not in card
    assert [a["verb"] for a in adaptive.approval_card(HELD, viewer="mark.mgr@example.com")["actions"]] == [
        "approve", "deny"]


def test_a_str_subclass_escaped_is_not_given_back_for_plain_text_equal_to_it() -> None:
    """A str enum member escaped first was kept as the answer for its text: escaping the plain text then gave
    the member back, which an f-string writes as ``State.PENDING``, not ``pending``."""
    import enum

    class State(str, enum.Enum):  # noqa: UP042 (the mixin: an f-string writes its name)
        PENDING = "pending (a state)"
        STARRED = "*starred* (a state)"

    class Loud(str):
        pass

    for member in State:
        assert adaptive.escape(member) == adaptive.escape_lines(member)
        plain = str(member.value)
        again = adaptive.escape(plain)
        assert type(again) is str and again == adaptive.escape_lines(plain), repr(again)
        assert f"{again}" == adaptive.escape_lines(plain)
    assert adaptive.escape(Loud("x_y")) == "x\\_y" and type(adaptive.escape("x_y (a state)")) is str
    assert all(type(k) is str and type(v) is str for k, v in adaptive._ESCAPED.items())
