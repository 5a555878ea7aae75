"""An evidence period ending on the calendar's last day is refused clearly, never a server error.

The period's end is the first instant of the day after it; after 9999-12-31 there is none (``date`` overflows).
``Period.parse`` is shared by the dashboard's ``/dashboard/evidence/pack``, the chat word ``evidence`` and
``accessbot evidence export``: each must answer with its own refusal, not a 500 or a traceback.
"""

from __future__ import annotations

from tests.support import cli


async def test_an_evidence_period_to_the_last_day_of_the_calendar_is_a_clear_400(web_harness) -> None:
    """The dashboard answers 400 with the evidence page naming the problem, and records no export."""
    h = web_harness
    cookie = await h.sign_in("sam.sec@example.com")
    page = await h.get("/dashboard/evidence/pack?from=2026-01-01&to=9999-12-31", cookie=cookie)
    assert page.status == 400, f"HTTP {page.status}: {page.text[:60]!r}"
    assert page.headers.get("Cache-Control") == "no-store"
    assert "last day of the calendar" in page.text
    assert await h.events("evidence.exported") == []


async def test_the_chat_word_evidence_refuses_the_same_period(web_harness) -> None:
    """``evidence 2026-01-01 9999-12-31`` in chat is a refusal that names the problem."""
    reply = await web_harness.say("sam.sec@example.com", "evidence 2026-01-01 9999-12-31")
    assert not reply.ok and "last day of the calendar" in reply.text
    assert await web_harness.events("evidence.exported") == []


def test_the_command_line_refuses_the_same_period_without_a_traceback(tmp_path) -> None:
    """``accessbot evidence export --to 9999-12-31`` exits with a one-line error, before touching a database."""
    result = cli("evidence", "export", "--from", "2026-01-01", "--to", "9999-12-31", "--out",
                 str(tmp_path / "pack.zip"), db=f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "last day of the calendar" in result.stderr, result.stderr
    assert not (tmp_path / "pack.zip").exists()
