"""accessbot report trends: members per profile per quarter from the campaigns' kept snapshots."""

from __future__ import annotations

import csv
import io
import json

from tests.reviews.test_start import REVIEW, staff
from tests.support import cli, copy_examples


def test_trends_per_profile_per_quarter(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    staff(files)
    for as_of in ("2026-04-01T08:00:00Z", "2026-07-01T08:00:00Z"):
        assert cli("review", "start", REVIEW, "--as-of", as_of, db=sqlite_url, files=files).returncode == 0
        files.add_to_group("sg-prod-db-read", "carol@example.com")  # privilege creep between quarters
    out = cli("report", "trends", "--format", "csv", db=sqlite_url, files=files, check=True).stdout
    rows = [(r["quarter"], r["profile"], r["members"], r["change"], r["review_id"])
            for r in csv.DictReader(io.StringIO(out))]
    assert rows == [("2026-Q2", "prod-db-read", "4", "", "RV-1"), ("2026-Q2", "prod-k8s-admin", "1", "", "RV-1"),
                    ("2026-Q3", "prod-db-read", "5", "+1", "RV-2"), ("2026-Q3", "prod-k8s-admin", "1", "+0", "RV-2")]
    as_json = json.loads(cli("report", "trends", "--format", "json", db=sqlite_url, files=files, check=True).stdout)
    assert as_json[2]["members"] == 5
    text = cli("report", "trends", db=sqlite_url, files=files, check=True).stdout
    assert "Members per profile per quarter" in text and "2026-Q3" in text
