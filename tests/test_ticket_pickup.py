"""An optional ticket does not refuse a request whose reason merely contains a ticket-shaped word.

With `ticket: {required: false, pattern: ...}`, the grammar's ticket pick-up takes any `ABC-1` shaped word of
the reason ("UTF-8") as the ticket *given*, and the request is refused (`ticket`) although no ticket was
given and none is required (SPEC §2.1, §3.1).
"""

from __future__ import annotations

from tests.support import chat, copy_examples

OLD = "    duration: {default: 8h, max: 3d}\n    justification: optional\n"
NEW = OLD + "    ticket: {required: false, pattern: '^(INC|CHG)-[0-9]+$'}\n"


def test_an_optional_ticket_does_not_refuse_a_reason_mentioning_utf8(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    text = files.policy.read_text()
    assert OLD in text
    files.policy.write_text(text.replace(OLD, NEW))
    out = chat("bob@example.com", "request staging-admin for 1h because convert the logs to UTF-8", db=sqlite_url,
               files=files)
    assert "Refused" not in out and "REQ-1" in out, out
