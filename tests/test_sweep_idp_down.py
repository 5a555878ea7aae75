"""`accessbot sweep` while the identity provider cannot be reached (SPEC §5: "exit 0 whenever it ran (a pause
or a failed provider call is printed, not an exit code), 1 only when it could not run"; no traceback)."""

from __future__ import annotations

from tests.support import chat, cli, copy_examples

DEAD_IDP = {"ACCESSBOT_OKTA_URL": "http://127.0.0.1:9", "ACCESSBOT_OKTA_TOKEN": "x", "ACCESSBOT_IDENTITY": "okta"}


def test_a_pending_request_and_an_unreachable_idp_do_not_crash_the_sweep(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    out = chat("bob@example.com", "request staging-admin for 1h", db=sqlite_url, files=files)
    assert "REQ-1 submitted" in out, out
    # the IdP is down during the unattended sweep (an Okta outage)
    r = cli("sweep", "--as-of", "2030-01-01T00:00:00Z", db=sqlite_url, files=files, env=DEAD_IDP)
    assert r.returncode == 0 and "Traceback" not in r.stderr, (r.returncode, r.stdout, r.stderr[-800:])
    assert "could not check" in r.stdout and "REQ-1, reminders" in r.stdout, r.stdout
