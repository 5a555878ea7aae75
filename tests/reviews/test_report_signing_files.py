"""``accessbot review report`` with a key and a certificate that cannot make a valid signature: refused in one
line, nothing written. A key with another key's certificate used to sign anyway: exit 0, "signed by", and a PDF
whose signature no validator accepts."""

from __future__ import annotations

import asyncio

from tests.reviews.test_report import _campaign, make_signing_pair
from tests.support import cli, copy_examples


def test_a_key_with_another_keys_certificate_is_refused_and_nothing_is_written(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    files.add_to_group("sg-prod-db-read", "bob@example.com")
    asyncio.run(_campaign(sqlite_url, files))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    key_a, cert_a, _ = make_signing_pair(tmp_path / "a")
    _, cert_b, _ = make_signing_pair(tmp_path / "b")
    cases = {
        "another key's certificate": ((key_a, cert_b), "does not match the key"),
        "the files swapped": ((cert_a, key_a), "not an unencrypted PEM private key"),
        "a folder as the key": ((tmp_path / "a", cert_a), "not a regular file"),
    }
    for what, ((key, cert), said) in cases.items():
        out = tmp_path / "out" / "rv-1.pdf"
        done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files,
                   env={"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)})
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, (what, done.stdout, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("accessbot: cannot sign: ") and said in lines[0], (what, lines)
        assert "Traceback" not in done.stderr and not out.exists(), what
        assert not list(tmp_path.rglob("*.partial")), what
