"""Change stored audit events behind the application's back, as the owner of the database could:
PostgreSQL's append-only trigger is disabled meanwhile, SQLite's guard triggers dropped and recreated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from store.db import backend, make_sync_engine

SQLITE_GUARDS = ("UPDATE", "DELETE")
SEQ_GUARD = ("CREATE TRIGGER audit_events_seq_from_one BEFORE INSERT ON audit_events WHEN NEW.seq < 1 BEGIN SELECT "
             "RAISE(ABORT, 'audit_events is append-only: seq starts at 1, an event below it is outside the chain'); "
             "END")  # migration 0021


def tamper(url: str, *statements: str | tuple[str, dict[str, Any]]) -> None:
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            pg = backend(url) == "postgresql"
            if pg:
                conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            else:
                for what in SQLITE_GUARDS:
                    conn.execute(text(f"DROP TRIGGER IF EXISTS audit_events_no_{what.lower()}"))
                conn.execute(text("DROP TRIGGER IF EXISTS audit_events_seq_from_one"))
            for s in statements:
                sql, params = s if isinstance(s, tuple) else (s, {})
                conn.execute(text(sql), params)
            if pg:
                conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
            else:
                for what in SQLITE_GUARDS:
                    conn.execute(text(
                        f"CREATE TRIGGER audit_events_no_{what.lower()} BEFORE {what} ON audit_events "
                        f"BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: {what} refused'); END"))
                conn.execute(text(SEQ_GUARD))
    finally:
        engine.dispose()
