"""Numbers are ASCII digits (SPEC §4.1/§7: items are "numbers, lists and ranges"; anything not understood gets
a clear answer, never a guess that acts and never an internal error).

``str.isdigit()`` holds for '³' and '²', which ``int()`` refuses: ``keep RV-1 ³`` raised ValueError inside the
service (the console printed "Error: ValueError …", the Teams route answered 500). ``str.isdecimal()`` and a
regex's ``\\d`` hold for '٣' (Arabic-Indic three), which ``int()`` reads as 3: ``review undo RV-1 ٣`` or
``drift remove D-٣`` acted on item 3 or finding D-3. Each such word now gets the answer any other non-number
gets, through the service every channel calls, the ``accessbot chat`` console and the Teams route.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.reviews.test_decisions import started
from tests.slack.conftest import SlackHarness, slack, slack_api  # noqa: F401  (the Slack channel, signed payloads)
from tests.support import chat, copy_examples, harness
from tests.teams.conftest import TeamsHarness, connector, teams  # noqa: F401  (the Teams channel on 127.0.0.1)

SUPERSCRIPT = "³"  # isdigit() but not int()
ARABIC = "٣"  # isdecimal(): int() reads it as 3
ONE = (SUPERSCRIPT, "²", ARABIC, "3³")  # an item
RANGE = ("³-4", "3-٤")  # a range, where one is taken
PLAIN = "zz"  # a word that is no number, found nowhere in the help text

# (who, words with {n} where the number goes, the odd number): every chat word that takes an item number
ITEM_WORDS = [(who, words, n) for who, words, odd in [
    ("mark.mgr@example.com", "keep RV-1 {n}", ONE + RANGE),
    ("mark.mgr@example.com", "remove RV-1 {n} because left the team", ONE + RANGE),
    ("sam.sec@example.com", "approve RV-1 {n}", ONE),
    ("mark.mgr@example.com", "review undo RV-1 {n} because mistaken", ONE),
] for n in odd]


def _same_answer(odd: str, plain: str, token: str) -> bool:
    """``odd`` is ``plain`` with the odd word where ``plain`` names the plain one."""
    return odd == plain.replace(PLAIN, token)


@pytest.mark.parametrize(("who", "words", "digits"), ITEM_WORDS)
async def test_an_item_number_that_is_not_ascii_gets_the_answer_any_non_number_gets(sqlite_url, tmp_path, who,
                                                                                     words, digits):
    async with harness(sqlite_url, tmp_path) as h:
        await started(h)  # RV-1 open: mark.mgr reviews items 3 and 4
        before = await h.events()
        odd = await h.say(who, words.format(n=digits))
        plain = await h.say(who, words.format(n=PLAIN))
        assert not odd.ok, odd.text
        assert (odd.kind, odd.rule) == (plain.kind, plain.rule), (odd, plain)
        assert _same_answer(odd.text, plain.text, digits), (odd.text, plain.text)
        decided = [e for e in await h.events() if e["type"].startswith("review.")]
        assert decided == [e for e in before if e["type"].startswith("review.")]  # nothing decided or undone


async def test_a_drift_finding_number_that_is_not_ascii_is_no_finding(sqlite_url, tmp_path):
    """``D-٣`` matched ``\\d`` and was finding D-3."""
    digits = ARABIC
    async with harness(sqlite_url, tmp_path) as h:
        for words in ("drift remove D-{n} because left", "drift accept D-{n} for 7d because ok"):
            odd = await h.say("sam.sec@example.com", words.format(n=digits))
            plain = await h.say("sam.sec@example.com", words.format(n=PLAIN))
            assert (odd.ok, odd.kind, odd.rule) == (plain.ok, plain.kind, plain.rule), (words, odd, plain)
            assert _same_answer(odd.text, plain.text, digits), (odd.text, plain.text)


def test_the_console_says_what_is_wrong_not_a_python_error(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    out = chat("sam.sec@example.com", "keep RV-1 ³", "approve RV-1 ³", "review undo RV-1 ² because mistaken",
               db=sqlite_url, files=files)
    assert "Error" not in out and "ValueError" not in out and "invalid literal" not in out, out
    assert "'³' is not an item number or range" in out, out


# -- Teams: the same words, and card data a client can send --------------------------------------------------------


async def test_teams_answers_a_superscript_item_number(teams: TeamsHarness) -> None:  # noqa: F811
    for words in ("keep RV-1 ³", "approve RV-1 ³", "review undo RV-1 ² because mistaken"):
        status, body = await teams.say("mark.mgr@example.com", words)
        assert status == 200, (words, body)  # was 500


async def _click_text(teams: TeamsHarness, email: str, verb: str, data: dict[str, Any]) -> str:  # noqa: F811
    card = await teams.click(email, verb, data)  # asserts an HTTP 200 with a card
    return str(card["body"])


@pytest.mark.parametrize("page", [SUPERSCRIPT, " ³ ", "²"])
async def test_a_review_card_page_that_is_not_ascii_is_any_bad_page(teams: TeamsHarness, page: str) -> None:  # noqa: F811
    """``data.page`` "³" passed ``isdigit()`` and ``int()`` raised (500)."""
    bad = await _click_text(teams, "mark.mgr@example.com", "refresh", {"review_id": "RV-1", "page": page})
    plain = await _click_text(teams, "mark.mgr@example.com", "refresh", {"review_id": "RV-1", "page": PLAIN})
    assert bad == plain


@pytest.mark.parametrize("request_id", [SUPERSCRIPT, ARABIC, "REQ-³", "REQ-٣"])
async def test_an_approval_card_request_id_that_is_not_ascii_names_no_request(teams: TeamsHarness,  # noqa: F811
                                                                               request_id: str) -> None:
    status, body = await teams.say("bob@example.com", "request prod-db-read for 1h because INC-9 page")  # for mark
    assert status == 200, body
    for verb in ("approve", "refresh"):
        text = await _click_text(teams, "mark.mgr@example.com", verb, {"request_id": request_id})
        assert "This card does not name a request." in text, (verb, text)  # "³" was a 500, "٣" was REQ-3
    assert await teams.events("approval.granted") == []
    await teams.click("mark.mgr@example.com", "approve", {"request_id": "REQ-1"})  # there was one to approve
    assert len(await teams.events("approval.granted")) == 1


@pytest.mark.parametrize(("count", "reason"), [(SUPERSCRIPT, "terminated"), (ARABIC, "terminated"),
                                               ("3", f"terminated RV-{ARABIC}")])
async def test_a_resume_card_count_that_is_not_ascii_names_no_pause(teams: TeamsHarness, count: str,  # noqa: F811
                                                                    reason: str) -> None:
    text = await _click_text(teams, "sam.sec@example.com", "resume_removals", {"count": count, "reason": reason})
    assert "does not name a pause" in text, text


@pytest.mark.parametrize("finding", ["D-٣", "d-٣"])
async def test_a_drift_card_finding_that_is_not_ascii_names_no_finding(teams: TeamsHarness, finding: str) -> None:  # noqa: F811
    text = await _click_text(teams, "sam.sec@example.com", "drift_remove", {"finding_id": finding, "reason": "x"})
    assert "does not name a drift finding" in text, text


# -- Slack: a button's value ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [f"{ARABIC}:terminated", f"3:terminated RV-{ARABIC}"])
async def test_a_slack_resume_button_that_is_not_ascii_names_no_pause(slack: SlackHarness, value: str) -> None:  # noqa: F811
    await slack.click("sam.sec@example.com", "resume_removals", value)
    assert "does not name a pause" in slack.last_response()["text"], slack.last_response()
