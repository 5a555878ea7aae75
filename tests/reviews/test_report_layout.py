"""The certification's text stays on its pages: the item table used to be 328 mm wide on a page with 273 mm
between its margins, so each item's number and the start of the member's name were drawn left of the page and
the outcome column right of it: no reader or printout showed them."""

from __future__ import annotations

import asyncio

from tests.reviews.pdf_layout import shown_text
from tests.reviews.test_report import _campaign
from tests.support import cli, copy_examples


def test_every_column_of_the_item_table_is_on_the_page(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    files.add_to_group("sg-prod-db-read", "bob@example.com")
    files.add_to_group("sg-prod-db-read", "carol@example.com")
    asyncio.run(_campaign(sqlite_url, files))
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 0, done.stderr
    shown = shown_text(out.read_bytes())
    texts = [s.text for s in shown]
    for header in ("#", "member", "outcome", "comment"):
        assert header in texts, header
    assert "left the team in May" in " ".join(texts)
    off = [s for s in shown if s.left < 0 or s.right > s.page_width]
    assert off == [], off[:5]
