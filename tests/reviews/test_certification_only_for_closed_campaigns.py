"""`accessbot review report RV-n` on a campaign that has not closed. While it is open nothing is certified yet
(decisions can still change, undecided items have no outcome), and a removal list that waits for its sign-off may
yet be denied. SPEC §7: the report is "the campaign's certification: ... the removals and their outcome" —
there is no outcome before the close. So an open campaign gets an interim status, titled "Interim status — not a
certification" (the CLI's line says so too), so that operators can still see its progress; the certification's
title appears only for a closed campaign."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.reviews.test_report import _texts, make_signing_pair
from tests.support import cli, harness


async def test_no_signed_certification_of_a_campaign_that_is_still_open(sqlite_url, tmp_path):
    """RV-1 open with one removal decided: the signed PDF is an interim status (its title and the CLI's line say
    it is not a certification) and lists bob under "decided for removal so far (not removed)", not "Removals"."""
    async with harness(sqlite_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because no sign-in since January")).ok
        files = h.files  # RV-1 is open: 1 of 6 items decided, nothing removed, no sign-off asked

    key, cert, _ = make_signing_pair(tmp_path)
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files,
               env={"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)})
    text = _texts(out.read_bytes()) if out.exists() else b""
    assert done.returncode == 0, done.stdout + done.stderr
    assert "interim status (not a certification: open)" in done.stdout and "signed by" in done.stdout, done.stdout
    assert b"Access review certification" not in text, f"an open campaign got a signed certification: {done.stdout}"
    assert b"Interim status" in text and b"not a certification" in text
    assert b"Decided for removal so far" in text and b"no sign-in since January" in text
