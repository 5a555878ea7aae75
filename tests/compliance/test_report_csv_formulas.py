"""`accessbot report … --format csv` quotes a cell a spreadsheet would run as a formula, as the evidence pack's CSVs
do (verify_pack.py's `cell`: a text starting with =, +, -, @, a tab or a carriage return gets a leading `'`).
An address the identity source lists is not the bot's to choose: `=cmd@example.com` is a valid email. SQLite and
PostgreSQL."""

from __future__ import annotations

import csv
import io

from handlers.sweeps import sweep
from tests.support import cli, harness

ODD = "=1+cmd@example.com"


async def test_a_drift_report_never_hands_a_spreadsheet_a_formula(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.edit_directory(lambda d: d["users"].append({"email": ODD, "name": "Odd", "active": True}))
        h.files.add_to_group("sg-prod-db-read", ODD)
        await sweep(h.app.deps)
        files = h.files
    out = cli("report", "drift", "--format", "csv", db=database_url, files=files, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["user"] for r in rows] == ["'" + ODD], out
    assert all(not str(v).startswith(("=", "+", "@", "\t", "\r")) for r in rows for v in r.values()), out
