"""The certification shows non-Latin names and comments as recorded. It was set in Helvetica, which has only
Western European letters: a Cyrillic, Czech, Hungarian, Greek, Arabic or Chinese name or comment came out as
black boxes and its characters were not in the PDF at all, so an auditor could not read what was decided for
whom. Its text is now set in embedded TrueType fonts; a character that no font here draws is still written into
the text layer, printed as a box with its code point, and named in a warning."""

from __future__ import annotations

import asyncio
import io

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from bot.bootstrap import build_app
from bot.settings import Settings
from cards.pdf_fonts import load
from handlers.context import FixedClock
from tests.reviews.pdf_layout import shown_text
from tests.reviews.test_report import make_signing_pair, x509_load
from tests.support import T0, cli, copy_examples

NAMES = {"bob@example.com": "Жанна Řehoř-Őry", "carol@example.com": "Ελένη Παπαδοπούλου"}
COMMENTS = {"bob@example.com": "уволилась в мае; přístup převzal Jiří Šťastný, ő nem dolgozik itt",
            "carol@example.com": "王小明 接手 — مريم غادرت الفريق"}
CJK = "王小明接手"


async def _decided(url: str, files) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(database_url=url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=FixedClock(T0)) as app:
        sam = await app.service.identify("sam.sec@example.com")
        assert (await app.service.handle_text(sam, "review start quarterly-privileged")).ok
        async with app.store.read() as repo:
            items = {i.user: i for i in await repo.items(1)}
        mark = await app.service.identify("mark.mgr@example.com")
        for user, comment in COMMENTS.items():
            reply = await app.service.handle_text(mark, f"remove RV-1 {items[user].number} because {comment}")
            assert reply.ok, reply.text


def test_names_and_comments_in_other_scripts_are_in_the_signed_certification(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)

    def rename(data: dict) -> None:
        for u in data["users"]:
            u["name"] = NAMES.get(u["email"], u["name"])

    files.edit_directory(rename)
    for user in NAMES:
        files.add_to_group("sg-prod-db-read", user)
    asyncio.run(_decided(sqlite_url, files))
    key, cert, der = make_signing_pair(tmp_path)
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files,
               env={"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    data = out.read_bytes()
    shown = shown_text(data)
    text = "".join(s.text for s in shown)
    for recorded in [*NAMES.values(), *COMMENTS.values()]:
        for word in recorded.split():
            assert word in text, word  # each word whole, in logical order (a table cell may break between words)
    assert [s for s in shown if s.left < 0 or s.right > s.page_width] == []
    fonts = load()
    fonts.markup(CJK)
    if fonts.missing:  # no CJK font on this machine: each character is printed with its code point and named
        assert "王小明[U+738BU+5C0FU+660E]" in "".join(text.split())  # the label may wrap between code points
        assert "warning: no font draws" in done.stderr and "U+738B 王" in done.stderr, done.stderr
        assert "No font available here draws" in text
    else:
        assert "U+738B" not in text and "warning" not in done.stderr

    (signature,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
    status = validate_pdf_signature(signature, ValidationContext(trust_roots=[x509_load(der)]))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()


def test_a_named_font_that_is_not_there_is_refused_and_nothing_is_written(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    files.add_to_group("sg-prod-db-read", "bob@example.com")
    asyncio.run(_decided_one(sqlite_url, files))
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files,
               env={"ACCESSBOT_PDF_FONT": str(tmp_path / "nope.ttf")})
    assert done.returncode == 1 and done.stderr.strip() == (
        f"accessbot: cannot set the report's text: ACCESSBOT_PDF_FONT: {tmp_path / 'nope.ttf'} is not a font file")
    assert not out.exists()


async def _decided_one(url: str, files) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(database_url=url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=FixedClock(T0)) as app:
        sam = await app.service.identify("sam.sec@example.com")
        assert (await app.service.handle_text(sam, "review start quarterly-privileged")).ok
