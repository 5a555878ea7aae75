"""The embedded directory keeps its overlay (the memberships provisioning changed) in memory: a command
reads one version row, and the whole overlay again only when a change, by this process or another,
recorded a new version."""

from __future__ import annotations

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.context import one_lookup_per_person
from tests.support import RecordingNotifier, harness

ALICE, BOB, SAM = "alice@example.com", "bob@example.com", "sam.sec@example.com"
GROUP = "sg-prod-db-read"


async def _groups(app, email: str) -> frozenset[str]:  # type: ignore[no-untyped-def]
    with one_lookup_per_person():  # one command's look-ups
        person = await app.deps.directory.get_user(email)
    assert person is not None
    return person.groups


async def test_the_overlay_is_read_again_only_when_a_change_was_recorded(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        overlay = h.app.deps.providers["directory"].overlay_store
        await h.app.deps.providers["directory"].add_member(GROUP, BOB)  # a change by this process
        assert GROUP in await _groups(h.app, BOB)
        settled = overlay.reads
        for _ in range(5):  # nothing changed since: the version row only
            assert GROUP in await _groups(h.app, BOB)
        assert overlay.reads == settled

        settings = Settings(database_url=database_url, policy=str(h.files.policy),
                            directory=str(h.files.directory), env={})
        async with build_app(settings, clock=h.clock, notifier=RecordingNotifier()) as other:  # another process
            await other.deps.providers["directory"].remove_member(GROUP, BOB)
            await other.deps.providers["directory"].add_member(GROUP, ALICE)
        assert GROUP not in await _groups(h.app, BOB)
        assert GROUP in await _groups(h.app, ALICE)
        assert overlay.reads == settled + 1
        assert ALICE in await h.members(GROUP) and BOB not in await h.members(GROUP)


async def test_a_grant_and_its_revocation_from_another_process_show_in_the_next_command(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: on call
        assert r.ok and (await h.request(1)).state == "active", r.text
        assert GROUP in await _groups(h.app, ALICE)
        settings = Settings(database_url=database_url, policy=str(h.files.policy),
                            directory=str(h.files.directory), env={})
        async with build_app(settings, clock=h.clock, notifier=RecordingNotifier()) as other:
            sam = await other.service.identify(SAM)
            assert sam is not None
            assert (await other.service.handle_text(sam, "revoke REQ-1 because access review")).ok
        assert GROUP not in await _groups(h.app, ALICE)


async def test_a_database_no_change_versioned_is_read_whole_and_the_read_never_writes(database_url, tmp_path):
    """Before the first membership change there is no version: every command reads the overlay (empty),
    and the read path writes nothing, so a look-up made while the same command holds the write lock
    cannot wait on itself."""
    import asyncio

    async with harness(database_url, tmp_path) as h:
        directory = h.app.deps.providers["directory"]
        overlay = directory.overlay_store
        async with h.app.store.read() as repo:
            assert await repo.overlay_version() is None
        before = overlay.reads
        async with h.app.store.write():  # a command holding the write lock looks a person up
            assert GROUP not in await asyncio.wait_for(_groups(h.app, BOB), timeout=10)
        assert GROUP not in await _groups(h.app, BOB)
        assert overlay.reads == before + 2  # nothing kept without a version
        async with h.app.store.read() as repo:
            assert await repo.overlay_version() is None  # and nothing recorded by reading

        await directory.add_member(GROUP, BOB)  # the first change records the first version
        async with h.app.store.read() as repo:
            first = await repo.overlay_version()
        assert first is not None
        async with h.app.store.write():
            assert GROUP in await asyncio.wait_for(_groups(h.app, BOB), timeout=10)
        settled = overlay.reads
        assert GROUP in await _groups(h.app, BOB)
        assert overlay.reads == settled
        await directory.remove_member(GROUP, BOB)
        async with h.app.store.read() as repo:
            assert await repo.overlay_version() not in (None, first)
        assert GROUP not in await _groups(h.app, BOB)


async def test_a_membership_written_by_other_code_moves_the_version_too(database_url, tmp_path):
    """The database moves the version (migration 0009's trigger), not the code that writes: a replica
    still running the code from before, or an operator's SQL, cannot leave a process answering from the
    overlay it kept."""
    from sqlalchemy import text

    from store.db import make_sync_engine

    async with harness(database_url, tmp_path) as h:
        directory = h.app.deps.providers["directory"]
        await directory.add_member(GROUP, BOB)  # a version exists, and the overlay is kept under it
        assert GROUP not in await _groups(h.app, ALICE)
        settled = directory.overlay_store.reads
        assert GROUP not in await _groups(h.app, ALICE)
        assert directory.overlay_store.reads == settled  # from memory

        engine = make_sync_engine(database_url)
        try:
            for statement, alice_in in (
                    ("INSERT INTO directory_memberships (group_name, email, present, updated_at) "
                     "VALUES (:g, :e, :p, CURRENT_TIMESTAMP)", True),
                    ("UPDATE directory_memberships SET present = :p WHERE group_name = :g AND email = :e", False),
                    ("DELETE FROM directory_memberships WHERE group_name = :g AND email = :e", False)):
                with engine.begin() as conn:
                    conn.execute(text(statement), {"g": GROUP, "e": ALICE, "p": not statement.startswith("UPDATE")})
                assert (GROUP in await _groups(h.app, ALICE)) is alice_in, statement
                assert (ALICE in await h.members(GROUP)) is alice_in
            with engine.begin() as conn:  # every row at once
                conn.execute(text("DELETE FROM directory_memberships"))
            assert GROUP not in await _groups(h.app, BOB)
        finally:
            engine.dispose()


_TS = "'2026-12-01 10:00:00'"
# (statement, whose membership it changes, member afterwards), each taking the writer's conflict clause
CONFLICT_WRITERS = {
    "sqlite": {
        "update or ignore": ("UPDATE OR IGNORE directory_memberships SET present = 0 "
                             "WHERE group_name = :g AND email = :alice", ALICE, False),
        "insert or ignore": ("INSERT OR IGNORE INTO directory_memberships (group_name, email, present, updated_at) "
                             f"VALUES (:g, :bob, 1, {_TS})", BOB, True),
        "update or abort": ("UPDATE OR ABORT directory_memberships SET present = 0 "
                            "WHERE group_name = :g AND email = :alice", ALICE, False),
        "update or fail": ("UPDATE OR FAIL directory_memberships SET present = 0 "
                           "WHERE group_name = :g AND email = :alice", ALICE, False),
        "update or rollback": ("UPDATE OR ROLLBACK directory_memberships SET present = 0 "
                               "WHERE group_name = :g AND email = :alice", ALICE, False),
        "insert or abort": ("INSERT OR ABORT INTO directory_memberships (group_name, email, present, updated_at) "
                            f"VALUES (:g, :bob, 1, {_TS})", BOB, True),
        "upsert": ("INSERT INTO directory_memberships (group_name, email, present, updated_at) "
                   f"VALUES (:g, :alice, 0, {_TS}) "
                   "ON CONFLICT (group_name, email) DO UPDATE SET present = excluded.present", ALICE, False),
        "replace": ("REPLACE INTO directory_memberships (group_name, email, present, updated_at) "
                    f"VALUES (:g, :alice, 0, {_TS})", ALICE, False),
    },
    "postgresql": {
        "upsert": ("INSERT INTO directory_memberships (group_name, email, present, updated_at) "
                   f"VALUES (:g, :alice, false, {_TS}) "
                   "ON CONFLICT (group_name, email) DO UPDATE SET present = excluded.present", ALICE, False),
        "insert, do nothing on conflict": ("INSERT INTO directory_memberships (group_name, email, present, updated_at) "
                                           f"VALUES (:g, :bob, true, {_TS}) ON CONFLICT DO NOTHING", BOB, True),
        "truncate": ("TRUNCATE directory_memberships", ALICE, False),
    },
}


async def test_a_writer_with_a_conflict_clause_moves_the_version_and_is_not_refused(database_url, tmp_path):
    """SQLite gives a trigger's statements the conflict clause of the statement that fired it: under OR IGNORE
    the version row was left alone (the membership changed, the kept overlay did not), and under OR ABORT or an
    upsert the writer's statement failed on it. Every such writer is taken, and the next command sees it."""
    from sqlalchemy import text

    from store.db import backend, make_sync_engine

    engine = make_sync_engine(database_url)
    try:
        async with harness(database_url, tmp_path) as h:
            directory = h.app.deps.providers["directory"]
            for name, (statement, who, member) in CONFLICT_WRITERS[backend(database_url)].items():
                with engine.begin() as conn:
                    conn.execute(text("DELETE FROM directory_memberships"))
                await directory.add_member(GROUP, ALICE)  # a row for alice, and a version
                assert GROUP in await _groups(h.app, ALICE) and GROUP not in await _groups(h.app, BOB)
                kept = directory.overlay_store.reads
                assert GROUP in await _groups(h.app, ALICE) and directory.overlay_store.reads == kept  # kept
                with engine.begin() as conn:
                    conn.execute(text(statement), {"g": GROUP, "alice": ALICE, "bob": BOB})
                assert (GROUP in await _groups(h.app, who)) is member, name
    finally:
        engine.dispose()


async def test_the_version_trigger_writes_its_own_schema_whatever_the_writers_search_path(pg_url, tmp_path):
    """PostgreSQL: a writer whose search path finds another ``compliance_state`` first (a temporary table, another
    schema) still moves the version the processes read."""
    from sqlalchemy import text

    from store.db import make_sync_engine

    async with harness(pg_url, tmp_path) as h:
        directory = h.app.deps.providers["directory"]
        await directory.add_member(GROUP, ALICE)
        assert GROUP in await _groups(h.app, ALICE)
        engine = make_sync_engine(pg_url)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE SCHEMA decoy"))
                conn.execute(text("CREATE TABLE decoy.compliance_state (LIKE public.compliance_state INCLUDING ALL)"))
                conn.execute(text("CREATE TEMPORARY TABLE compliance_state "
                                  "(LIKE public.compliance_state INCLUDING ALL)"))
                conn.execute(text("SET LOCAL search_path = decoy, public"))
                conn.execute(text("UPDATE public.directory_memberships SET present = false "
                                  "WHERE group_name = :g AND email = :e"), {"g": GROUP, "e": ALICE})
        finally:
            engine.dispose()
        assert GROUP not in await _groups(h.app, ALICE)


async def test_the_search_path_given_to_the_trigger_is_its_tables_schema(pg_url, tmp_path):
    """0010 gives the function the schema of ``compliance_state``, not the migrating connection's
    ``current_schema()``: with a schema named after the migrating role (PostgreSQL's "secure schema usage
    pattern", first in the default search path) that was another, empty one, and every membership write failed
    in the trigger."""
    from sqlalchemy import text

    from store.db import make_sync_engine, upgrade

    upgrade(pg_url, "0009_overlay_version_trigger")  # a database migrated before 0010
    engine = make_sync_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA AUTHORIZATION CURRENT_USER"))
        upgrade(pg_url)
        with engine.connect() as conn:
            config = conn.execute(text("SELECT proconfig FROM pg_proc WHERE proname = 'accessbot_overlay_version'")
                                  ).scalar()
        assert config == ["search_path=public, pg_temp"], config
        async with harness(pg_url, tmp_path) as h:
            directory = h.app.deps.providers["directory"]
            await directory.add_member(GROUP, ALICE)
            assert ALICE in await h.members(GROUP) and GROUP in await _groups(h.app, ALICE)
    finally:
        engine.dispose()
