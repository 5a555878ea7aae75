"""A step that needs several people (``n_of`` / ``all_of``) is decided by those it asked when it opened
(``approvals.decide`` pins it to ``requests.asked``). What ``status`` and the cards show of it is the same: someone
who joined its pool since (a security member back from leave) is neither shown as one of its approvers nor offered
its buttons, and their decision is refused. Through the real command line."""

from __future__ import annotations

from tests.support import chat, copy_examples

BOB, MARK, DANA = "bob@example.com", "mark.mgr@example.com", "dana.dba@example.com"
SAM, SASHA, CAROL = "sam.sec@example.com", "sasha.sec@example.com", "carol@example.com"


def test_a_pinned_step_shows_only_the_people_it_asked(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text().replace(
        f"security: [{SAM}, {SASHA}]", f"security: [{SAM}, {SASHA}, {CAROL}]"))
    files.set_active(CAROL, False)  # away when the step opens: not asked
    assert "REQ-1 submitted" in chat(BOB, "request prod-db-read for 1h because INC-1 slow", db=sqlite_url,
                                     files=files)
    assert "Approved REQ-1" in chat(MARK, "approve REQ-1", db=sqlite_url, files=files)
    assert "Approved REQ-1" in chat(DANA, "approve REQ-1", db=sqlite_url, files=files)
    files.set_active(CAROL, True)  # back while the step waits on the two it asked
    status = chat(CAROL, "status REQ-1", db=sqlite_url, files=files)
    step = next(line for line in status.splitlines() if line.strip().startswith("3."))
    assert "[open] need 2" in step and SAM in step and SASHA in step and CAROL not in step, status
    refused = chat(CAROL, "approve REQ-1", db=sqlite_url, files=files)
    assert "not an approver of REQ-1 at step 3" in refused, refused
    assert "Approved REQ-1" in chat(SAM, "approve REQ-1", db=sqlite_url, files=files)
    assert "Approved REQ-1" in chat(SASHA, "approve REQ-1", db=sqlite_url, files=files)


def test_a_step_asked_before_the_request_kept_whom_it_asked_is_shown_from_its_events(tmp_path, sqlite_url):
    """A request written before requests kept ``asked`` (migration 0019: the columns are NULL) has its step judged
    from its ``approval.requested`` event by a decision; its view shows the same people, not whoever joined the
    pool since, whose click would be refused."""
    import sqlite3

    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text().replace(
        f"security: [{SAM}, {SASHA}]", f"security: [{SAM}, {SASHA}, {CAROL}]"))
    files.set_active(CAROL, False)
    assert "REQ-1 submitted" in chat(BOB, "request prod-db-read for 1h because INC-1 slow", db=sqlite_url,
                                     files=files)
    assert "Approved REQ-1" in chat(MARK, "approve REQ-1", db=sqlite_url, files=files)
    assert "Approved REQ-1" in chat(DANA, "approve REQ-1", db=sqlite_url, files=files)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:  # as a request of an earlier version
        db.execute("UPDATE requests SET asked_step = NULL, asked = NULL, asked_at = NULL")
    files.set_active(CAROL, True)
    status = chat(CAROL, "status REQ-1", db=sqlite_url, files=files)
    step = next(line for line in status.splitlines() if line.strip().startswith("3."))
    assert "[open] need 2" in step and SAM in step and SASHA in step and CAROL not in step, status
    assert "REQ-1" not in chat(CAROL, "mine", db=sqlite_url, files=files).split("Waiting on your decision")[-1]
    refused = chat(CAROL, "approve REQ-1", db=sqlite_url, files=files)
    assert "not an approver of REQ-1 at step 3" in refused, refused
