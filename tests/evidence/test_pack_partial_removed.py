"""A pack written whole but not put in place (the rename onto ``--out`` failed: a folder appeared there, the disk
refused) leaves no ``.partial`` copy beside it: the pack names people and their access."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.bootstrap import build_app
from bot.evidence_commands import _file
from bot.pack_check import verifier_module
from bot.settings import Settings
from cards.report_html import render_report
from handlers.audit import format_ts
from handlers.evidence import Period, build_pack
from store.evidence_queries import SqlEvidenceSource
from tests.support import copy_examples

GENERATED = datetime(2026, 11, 12, tzinfo=UTC)


async def test_a_pack_that_cannot_be_put_in_place_leaves_no_partial_copy(sqlite_url: str, tmp_path: Path) -> None:
    files = copy_examples(tmp_path)
    settings = Settings(database_url=sqlite_url, policy=str(files.policy), directory=str(files.directory))
    out = tmp_path / "pack.zip"
    out.mkdir()
    (out / "something").write_text("a folder that appeared where the pack goes")
    async with build_app(settings) as app:
        bob = await app.service.identify("bob@example.com")
        assert (await app.service.handle_text(bob, "request analytics-read for 4h")).ok

        def report(figures) -> str:  # type: ignore[no-untyped-def]
            return render_report(figures, generated_at=format_ts(GENERATED), sla_hours=24, chain_ok=figures.chain_ok)

        today = datetime.now(UTC).date().isoformat()
        with pytest.raises(OSError):
            await build_pack(SqlEvidenceSource(app.store), Period.parse(today, today), out, generated_at=GENERATED,
                             verifying=_file("VERIFYING.md"), verifier_script=_file("verify_pack.py"),
                             report=report, rules=verifier_module())
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []  # noqa: ASYNC240
