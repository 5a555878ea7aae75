"""``report drift`` and the evidence pack's report.html give each finding its resolution, who chose it,
the request behind it and the hours to it, from the same derivation of the chain."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta

from bot.evidence_commands import _report, write_pack
from handlers.evidence import Period
from handlers.sweeps import sweep
from tests.support import harness

PAT, BOB, ALICE = "pat.lead@example.com", "bob@example.com", "alice@example.com"
SAM, SASHA, DANA = "sam.sec@example.com", "sasha.sec@example.com", "dana.dba@example.com"


async def test_report_drift_and_report_html_show_resolutions(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-prod-db-read", PAT)
        h.files.add_to_group("sg-prod-db-read", BOB)
        h.files.add_to_group("sg-staging-admin", ALICE)
        await sweep(h.app.deps)
        ids = {e["data"]["user"]: e["data"]["id"] for e in await h.events("drift.detected")}
        h.clock.advance(hours=2)
        assert (await h.say(SAM, f"drift accept {ids[PAT]} for 2d because CHG-3 migration")).ok
        assert (await h.say(SASHA, "approve REQ-1")).ok
        h.clock.advance(hours=1)
        assert (await h.say(DANA, "approve REQ-1")).ok
        assert (await h.say(SASHA, f"drift remove {ids[BOB]} because never approved")).ok
        # Alice stays open

        text, ok = await _report(h.app.service, "drift", None, "json")
        assert ok
        rows = {r["user"]: r for r in json.loads(text)}
        pick = ("id", "status", "resolution", "resolved_by", "request_id", "hours_to_resolution")
        assert {k: rows[PAT][k] for k in pick} == {"id": ids[PAT], "status": "resolved", "resolution": "exception",
                                                   "resolved_by": SAM, "request_id": "REQ-1",
                                                   "hours_to_resolution": "3.00"}
        assert {k: rows[BOB][k] for k in pick} == {"id": ids[BOB], "status": "resolved", "resolution": "removed",
                                                   "resolved_by": SASHA, "request_id": "",
                                                   "hours_to_resolution": "3.00"}
        assert (rows[ALICE]["status"], rows[ALICE]["resolution"]) == ("open", "")
        csv_text, _ = await _report(h.app.service, "drift", None, "csv")
        assert csv_text.splitlines()[0] == ("id,provider,group,user,kind,first_seen,status,resolution,resolved_by,"
                                            "request_id,resolved_at,hours_to_resolution")
        chat = await h.say(SAM, "report drift")
        assert "resolution=exception" in chat.text and "request_id=REQ-1" in chat.text

        out = tmp_path / "pack.zip"
        # events are recorded at the wall clock (the harness clock only judges): the period is around today
        today = datetime.now(UTC).date()
        period = Period.parse(str(today - timedelta(days=1)), str(today + timedelta(days=1)))
        await write_pack(h.app.store, period, out, sla_hours=24)
        with zipfile.ZipFile(out) as z:
            html = z.read("report.html").decode()
            exceptions = z.read("exceptions.csv").decode()
        # the accept is an exception like any other: its requester is the member, not who filed it
        assert "REQ-1,pat.lead@example.com,prod-db-read,exception" in exceptions, exceptions
        section = html[html.index("<h2>Drift"):]
        for needle in (ids[PAT], "exception", "REQ-1", SAM, "3.00", "removed", SASHA,
                       "still open at the end of the period"):
            assert needle in section, needle
