"""The directory file (SPEC §2.2) with duplicate keys.

The policy loader refuses a key given twice ("YAML keeps the last of two equal keys without a word",
handlers/policy_check.py:_duplicates). The directory file keeps the last one silently: an HR edit that
writes `active: false` for a leaver above a stale `active: true` line leaves them active, able to
request and keep access (SPEC §3.6 leavers), and a group given twice empties or replaces it.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import cli, copy_examples


def test_a_leaver_written_above_a_stale_active_line_is_not_taken_as_active(tmp_path: Path) -> None:
    files = copy_examples(tmp_path)
    text = files.directory.read_text()
    # the HR edit: `active: false` added under alice's email; the old `active: true` further down stays
    text = text.replace("  - email: alice@example.com\n", "  - email: alice@example.com\n    active: false\n", 1)
    files.directory.write_text(text)
    assert text.count("active: true") >= 1
    db = f"sqlite:///{tmp_path / 'ab.db'}"
    result = cli("chat", "--as", "alice@example.com",
                 input="request staging-admin for 2h because INC-1 outage\n", db=db, files=files)
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "REQ-1" not in out, (
        "a directory entry giving `active` twice (false, then true) was read silently as the last one: "
        f"alice, whom the edit terminated, filed a request (exit {result.returncode}):\n{out}")
