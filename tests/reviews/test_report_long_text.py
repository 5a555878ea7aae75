"""A certification whose text does not fit one page in one row: a reviewer's comment of the 2000 characters the
bot accepts, or a sign-off whose approvers each gave their reason. Such a row made reportlab give up (LayoutError)
and ``accessbot review report`` end in a traceback, so the campaign could never be certified; it now goes on over
the next page, every word of it there."""

from __future__ import annotations

import asyncio

from bot.bootstrap import build_app
from bot.settings import Settings
from cards.review_pdf import render_certification
from handlers.context import FixedClock
from handlers.reviews.report import CertificationView, ItemLine, ReviewerSection
from tests.reviews.pdf_layout import shown_text
from tests.support import T0, cli, copy_examples

COMMENT = ("mmmm " * 400).strip()[:2000]  # wide letters: the most lines 2000 characters make


async def _decided_at_length(url: str, files) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(database_url=url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=FixedClock(T0)) as app:
        sam = await app.service.identify("sam.sec@example.com")
        assert (await app.service.handle_text(sam, "review start quarterly-privileged")).ok
        async with app.store.read() as repo:
            bob = next(i for i in await repo.items(1) if i.user == "bob@example.com")
        mark = await app.service.identify("mark.mgr@example.com")
        reply = await app.service.handle_text(mark, f"remove RV-1 {bob.number} because {COMMENT}")
        assert reply.ok, reply.text


def test_a_comment_of_2000_characters_is_certified_whole(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    files.add_to_group("sg-prod-db-read", "bob@example.com")
    asyncio.run(_decided_at_length(sqlite_url, files))
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    shown = shown_text(out.read_bytes())
    words = " ".join(s.text for s in shown).split()
    assert words.count("mmmm") == 2 * 400, words.count("mmmm")  # in the reviewer's section and in the removals
    assert [s for s in shown if s.left < 0 or s.right > s.page_width] == []


def test_a_sign_off_line_longer_than_a_page_is_written_whole() -> None:
    reason = ("reason words " * 160).strip()[:2000]
    signoff = "approved: " + "; ".join(f"step {n}: approved by approver{n}@example.com at 2026-01-05T10:00:00Z "
                                       f"({reason})" for n in (1, 2, 3))
    line = ItemLine(number=1, user="bob@example.com", name="Bob", profile="prod-db-read", group="sg-prod-db-read",
                    held_via="standing", recommendation="", decision="remove", decided_by="mark.mgr@example.com",
                    decided_at="2026-01-02T10:00:00Z", comment="left", outcome="removed")
    view = CertificationView(
        review_id="RV-1", review="quarterly-privileged", title="Quarterly", state="closed", started_at="s",
        started_by="sam.sec@example.com", due_at="d", closed_at="c", policy_version="1", policy_sha256="p",
        snapshot_sha256="h", scope=(("prod-db-read", "directory", "sg-prod-db-read", 1),), chain_head="x",
        chain_events=9, chain_verified=True, generated_at="g",
        reviewers=(ReviewerSection("mark.mgr@example.com", (line,), 1, "a", "b"),), removals=(line,), items=1,
        decided=1, signoff=signoff)
    words = " ".join(s.text for s in shown_text(render_certification(view))).split()
    assert words.count("words") == 3 * reason.split().count("words")
