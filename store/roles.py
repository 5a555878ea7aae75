"""Two database roles on PostgreSQL: the owner migrates, the serving role only appends to the audit log.

The role that owns a table can always change it: disable its triggers, update or truncate it,
drop it. So the role the application serves with must not own ``audit_events``. ``accessbot db
upgrade --owner-url URL`` (or ``ACCESSBOT_DATABASE_OWNER_URL``) runs the migrations as the owner
and then grants the serving role (the user of ``ACCESSBOT_DATABASE_URL``) what it needs and no
more: SELECT and INSERT on ``audit_events``; SELECT, INSERT, UPDATE and DELETE on the other
tables; SELECT on ``alembic_version``; the sequences behind the ids. It has no CREATE on the
schema, no TRUNCATE, and is not the owner of anything, so it cannot ALTER or disable a trigger.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, make_url

# every module that puts tables on the metadata, imported for that alone: the grants must name them all
# whichever command runs them (``db upgrade`` imports little else)
from store import dashboard as _dashboard  # noqa: F401
from store import deliveries as _deliveries  # noqa: F401
from store import review_schema as _review_schema  # noqa: F401
from store import schema as t

APPEND_ONLY = frozenset({"audit_events"})
READ_ONLY = frozenset({"alembic_version"})


class DatabaseSetupError(Exception):
    """A database the application cannot be set up on safely; the message says what to do."""


def serving_user(url: str | URL) -> str:
    u = make_url(url) if isinstance(url, str) else url
    if not u.username:
        raise DatabaseSetupError("ACCESSBOT_DATABASE_URL names no user: with an owner URL, the serving role "
                                 "must be named in the database URL (postgresql://USER@host/db)")
    return u.username


def check_roles(url: str | URL, owner_url: str | URL) -> None:
    u = make_url(url) if isinstance(url, str) else url
    o = make_url(owner_url) if isinstance(owner_url, str) else owner_url
    if u.get_backend_name() != "postgresql" or o.get_backend_name() != "postgresql":
        raise DatabaseSetupError("an owner URL is for PostgreSQL: both URLs must be postgresql://")
    if (u.host, u.port, u.database) != (o.host, o.port, o.database):
        raise DatabaseSetupError("the owner URL must name the same server and database as the database URL")
    if serving_user(u) == o.username:
        raise DatabaseSetupError(f"the owner URL must log in as another role than the serving role "
                                 f"{u.username!r}: the role that owns audit_events can rewrite it")


def preflight(conn: Connection, app_role: str) -> None:
    """Refuse a serving role that does not exist, is a superuser, or owns the application's tables."""
    q = conn.dialect.identifier_preparer.quote
    me = conn.execute(text("SELECT current_user")).scalar()
    schema = conn.execute(text("SELECT current_schema()")).scalar()
    row = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": app_role}).first()
    if row is None:
        raise DatabaseSetupError(f"there is no database role {app_role!r}: create it first "
                                 f"(CREATE ROLE {q(app_role)} LOGIN PASSWORD '…')")
    if row[0]:
        raise DatabaseSetupError(f"the serving role {app_role!r} is a superuser and could still rewrite "
                                 "audit_events: serve with an ordinary role")
    tables = [tb.name for tb in t.metadata.sorted_tables] + ["alembic_version"]
    owned = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s AND tableowner = :r "
                              "AND tablename = ANY(:names)"), {"s": schema, "r": app_role, "names": tables}).all()
    # the guards' functions (append-only, seq from 1, ...): their owner could replace a body and switch a guard off
    owned += conn.execute(text("SELECT proname FROM pg_proc WHERE proname LIKE 'accessbot\\_%' "
                               "AND pg_get_userbyid(proowner) = :r"), {"r": app_role}).all()
    if owned:
        names = ", ".join(sorted(r[0] for r in owned))
        raise DatabaseSetupError(
            f"tables are owned by the serving role {app_role!r} ({names}), so it could rewrite the audit log. "
            f"As a superuser, give them to the owner role once: REASSIGN OWNED BY {q(app_role)} TO {q(me)}; "
            "then run this again")


def grant_serving_role(conn: Connection, app_role: str) -> list[str]:
    """Make ``app_role`` an append-only user of the audit log (run as the owner). Returns what was done."""
    preflight(conn, app_role)
    q = conn.dialect.identifier_preparer.quote
    schema = conn.execute(text("SELECT current_schema()")).scalar()
    tables = [tb.name for tb in t.metadata.sorted_tables] + ["alembic_version"]
    conn.execute(text(f"REVOKE CREATE ON SCHEMA {q(schema)} FROM {q(app_role)}"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA {q(schema)} TO {q(app_role)}"))
    done = []
    for name in tables:
        conn.execute(text(f"REVOKE ALL ON TABLE {q(name)} FROM {q(app_role)}"))
        if name in APPEND_ONLY:
            privileges = "SELECT, INSERT"
        elif name in READ_ONLY:
            privileges = "SELECT"
        else:
            privileges = "SELECT, INSERT, UPDATE, DELETE"
        conn.execute(text(f"GRANT {privileges} ON TABLE {q(name)} TO {q(app_role)}"))
        done.append(f"{name}: {privileges}")
    conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {q(schema)} TO {q(app_role)}"))
    return done
