"""A chain-step refusal says how to ask for an exception (SPEC §3.1: "the reply says how to ask for an
exception when the profile allows one"): Pat has no manager, and prod-db-read allows exceptions."""

from __future__ import annotations

from tests.support import chat, copy_examples


def test_chain_refusal_says_how_to_ask_for_an_exception(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    out = chat("pat.lead@example.com", "request prod-db-read for 1h because INC-1 replica lag", db=sqlite_url,
               files=files)
    assert "Refused (step 1: manager)" in out, out
    assert "exception prod-db-read" in out, out
