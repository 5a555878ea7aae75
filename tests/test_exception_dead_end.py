"""Pat has no manager: his standard chain for prod-db-read cannot be satisfied, and the refusal tells him
(SPEC §3.1) to ask for an exception; that exception is not refused as "not needed" (SPEC §3.3)."""

from __future__ import annotations

from tests.support import chat, copy_examples


def test_the_exception_the_chain_refusal_points_to_is_not_refused_as_not_needed(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    out = chat("pat.lead@example.com", "request prod-db-read for 1h because INC-1 replica lag", db=sqlite_url,
               files=files)
    assert "Refused (step 1: manager)" in out and "exception prod-db-read" in out, out
    out = chat("pat.lead@example.com", "exception prod-db-read for 1h because INC-1 replica lag", db=sqlite_url,
               files=files)
    assert "not needed" not in out, out
