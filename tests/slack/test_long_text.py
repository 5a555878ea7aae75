"""Long plain text on Slack: split after escaping (``&<>`` grow up to fivefold) into sections within Slack's
3,000-character limit, at line ends where it can, never inside an entity or what shows as one character; every
character shown, and what does not fit in a message's 50 blocks counted at its end, never dropped unsaid."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from cards import slack as blocks
from handlers.outbox import deliver_pending
from handlers.ports import Notice
from tests.slack.blockcheck import check_message
from tests.slack.conftest import UID, SlackHarness

ALICE, MARK = "alice@example.com", "mark.mgr@example.com"
HALF_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")
MORE = re.compile(r"^… \((\d+) more characters not shown\)$")


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def sections(message: dict[str, Any]) -> list[str]:
    """The texts of a message's section blocks, in order, each checked: within the limit, no half entity, no
    raw ``<`` or ``>`` (which Slack would read as a mention or a link)."""
    texts = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]
    for text in texts:
        assert utf16(text) <= blocks.MAX_SECTION_TEXT, len(text)
        assert not HALF_ENTITY.search(text) and "<" not in text and ">" not in text, text[-20:]
    return texts


def fallback_ok(message: dict[str, Any]) -> None:
    text = message["text"]
    assert 0 < len(text) <= blocks.MAX_FALLBACK and not HALF_ENTITY.search(text), text[-20:]


# -- through the real entry points ---------------------------------------------------------------
async def test_a_status_heavy_in_escapes_is_shown_whole_to_an_approver(slack: SlackHarness) -> None:
    """An approver's ``/access status`` of a request whose justification is nearly all ``&<>`` (2,000 characters,
    8,600 escaped, no space to cut at in most of it): the reply through ``response_url`` shows every character."""
    h = slack
    justification = "fix INC-4411 " + "&<>" * 662
    await h.command(ALICE, f"request prod-db-read for 2h because {justification}")
    assert (await h.request(1)).state == "pending"
    await h.command(MARK, "status REQ-1")
    answer = h.last_response()
    check_message(answer)
    fallback_ok(answer)
    texts = sections(answer)
    shown = unescape("".join(texts))
    assert f"  justification: {justification}\n" in shown, shown[:200]
    assert "  events:\n" in shown and "request.submitted by alice@example.com" in shown
    assert sum(1 for t in texts if "&amp;&lt;" in t) >= 3  # the justification takes several sections
    assert answer["blocks"][-1]["type"] == "actions"  # mark still decides: the buttons stay last


async def test_a_long_notice_is_shown_whole_or_says_what_it_leaves_out(slack: SlackHarness) -> None:
    """A notice (plain text) delivered through the outbox to the Slack stand-in, which refuses a section over
    3,000 characters as Slack does: one needing several sections arrives whole; one past what 50 blocks hold
    says how many characters it leaves out."""
    h = slack
    line = "R&D <ops> & <sre> team: " + "&<>" * 40
    whole = "\n".join(f"{i}. {line}" for i in range(60))  # ~10,000 characters, ~27,000 escaped
    huge = "&<>" * 20_000 + "\n" + "tail & end"  # 60,011 characters, 260,000+ escaped: past 50 sections
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(MARK, "info", whole, None), Notice(MARK, "failure", huge, None)],
                                 h.clock.now())
    await deliver_pending(h.app.deps)
    got = h.api.dm(UID[MARK])
    assert len(got) == 2, [m.text[:40] for m in got]
    first, second = ({"text": m.text, "blocks": m.blocks} for m in got)
    for message in (first, second):
        check_message(message)
        fallback_ok(message)
    texts = sections(first)
    assert len(texts) >= 9 and unescape("".join(texts)) == whole
    assert all(t.endswith("\n") for t in texts[:-1])  # each line fits: every cut is at a line end
    texts = sections(second)
    assert len(second["blocks"]) == blocks.MAX_MESSAGE_BLOCKS and len(texts) == blocks.MAX_MESSAGE_BLOCKS - 1
    shown = unescape("".join(texts))
    assert huge.startswith(shown)
    [more] = [e["text"] for e in second["blocks"][-1]["elements"]]
    m = MORE.match(more)
    assert m and int(m.group(1)) == len(huge) - len(shown), more


# -- the splitter ----------------------------------------------------------------------------------
GRAPHEMES = ["a", "b", "Z", "é", " ", "\n", "&", "<", ">", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "e\u0301", "中"]
RUNS = [["x"] * 30, ["&", "<", ">"] * 5, list("&amp;"), ["\n", "\n"], [" ", " "]]


def _text(rng: random.Random) -> list[str]:
    """Up to ~900 of what shows as one character each (so that a cut between any two is a whole cut)."""
    out: list[str] = []
    for _ in range(rng.randrange(0, 900)):
        out += rng.choice(RUNS) if rng.random() < 0.1 else [rng.choice(GRAPHEMES)]
    return out


def test_split_escaped_keeps_every_character_within_the_limit_and_whole_characters() -> None:
    """Random texts of ``&<>``, emoji (surrogate pairs, skin tones, joiner sequences, flags, variation selectors),
    combining marks, spaces and line ends, at several limits: the pieces join back into the escaped text, each within
    the limit (UTF-16 units), each cut between two whole characters of the original (never inside an entity);
    a piece not ending in a line end or a space has neither."""
    rng = random.Random(20261123)
    for _ in range(400):
        atoms = _text(rng)
        escaped_atoms = [blocks.escape(a) for a in atoms]
        text = "".join(escaped_atoms)
        bounds, at = {0}, 0
        for a in escaped_atoms:
            at += len(a)
            bounds.add(at)
        limit = rng.choice((16, 23, 40, 101, 3000))
        pieces = blocks.split_escaped(text, limit)
        assert "".join(pieces) == text
        assert all(p for p in pieces[:-1]) and all(utf16(p) <= limit for p in pieces), limit
        at = 0
        for piece in pieces[:-1]:
            at += len(piece)
            assert at in bounds, (limit, text[at - 8: at + 8])
            if not piece.endswith(("\n", " ")):
                assert "\n" not in piece and " " not in piece, (limit, piece)


def test_split_escaped_cuts_at_line_ends_when_the_lines_fit() -> None:
    rng = random.Random(7)
    for _ in range(200):
        limit = rng.choice((30, 90, 3000))
        lines = ["".join(rng.choice(("&", "<", ">", "a", " ", "😀")) for _ in range(rng.randrange(0, limit // 15)))
                 for _ in range(rng.randrange(1, 400))]
        text = blocks.escape("\n".join(lines))
        pieces = blocks.split_escaped(text, limit)
        assert "".join(pieces) == text and all(p.endswith("\n") for p in pieces[:-1]), limit


def test_compliance_sections_never_cut_through_an_entity() -> None:
    from cards import compliance_slack

    text = "x" * 2998 + "&amp;&lt;"
    cut = compliance_slack._section(text)["text"]["text"]
    assert cut == "x" * 2998 + "…"


def test_a_cut_with_no_whole_character_before_it_is_still_never_inside_an_entity() -> None:
    """A run of joiners (each side of a zero-width joiner is one character) or a letter under thousands of
    combining marks leaves no place before the limit that is between two whole characters: the cut is made where
    it must be, but never inside ``&amp;`` (which Slack would show as ``&a`` and ``mp;``), in the sections and in
    the notification text."""
    for n in range(2990, 3006):
        for run in ("\u200d" * n, "x\u200d" * (n // 2), "a" + "\u0301" * n):
            text = run + "&<>" * 4 + " tail"
            message = blocks.text_message(text)
            texts = sections(message)
            assert unescape("".join(texts)) == text
            for piece in blocks.split_escaped(blocks.escape(text)):
                assert not HALF_ENTITY.search(piece) and not re.match(r"(mp|p|t)?;", piece), (n, piece[-8:])
            assert not HALF_ENTITY.search(message["text"]), (n, message["text"][-8:])



def test_a_piece_too_small_for_an_entity_is_refused_rather_than_looped_on() -> None:
    for limit in (0, 1, 4, 7):
        with pytest.raises(ValueError, match="room for 8"):
            blocks.split_escaped("\U0001F44D&amp;x", limit)
    assert "".join(blocks.split_escaped("\U0001F44D&amp;x" * 5, 8)) == "\U0001F44D&amp;x" * 5


async def test_who_has_says_how_many_members_without_a_grant_it_left_out(slack: SlackHarness) -> None:
    """``/access who has`` of a group with hundreds of members no grant explains, their names heavy in ``&``: the
    line lists as many as fit in one section after escaping and says how many more there are."""
    h = slack
    names = [f"r&d.{i:03}@example.com" for i in range(300)]
    text = h.files.directory.read_text()
    assert "  sg-staging-admin: []\n" in text
    h.files.directory.write_text(text.replace("  sg-staging-admin: []\n",
                                              f"  sg-staging-admin: [{', '.join(names)}]\n"))
    await h.command("sam.sec@example.com", "who has staging-admin")
    answer = h.last_response()
    check_message(answer)
    line = [t for t in sections(answer) if t.startswith("Members without a grant (drift): ")]
    assert len(line) == 1, sections(answer)
    more = re.search(r", … and (\d+) more$", line[0])
    assert more is not None, line[0][-60:]
    shown = unescape(line[0]).removeprefix("Members without a grant (drift): ").split(", ")[:-1]
    assert shown == names[:len(shown)] and len(shown) + int(more.group(1)) == len(names), (len(shown), more)
    assert utf16(line[0]) > blocks.MAX_SECTION_TEXT - 40  # as many as fit
