"""The embedded directory: read afresh, malformed files named by line, memberships in the store."""

from __future__ import annotations

import pytest

from provisioning.directory import DirectoryError, DirectoryProvider, parse_directory
from store.db import upgrade
from store.overlay import StoreOverlay
from store.repository import SqlStore
from tests.support import copy_examples


@pytest.fixture
async def provider(database_url, tmp_path):
    files = copy_examples(tmp_path)
    upgrade(database_url)
    store = SqlStore(database_url)
    yield DirectoryProvider(files.directory, StoreOverlay(store)), files
    await store.close()


async def test_people_and_groups(provider):
    p, _ = provider
    alice = await p.get_user("Alice@Example.com")
    assert alice is not None and alice.manager == "mark.mgr@example.com" and "oncall" in alice.groups
    assert alice.department == "Engineering" and alice.active
    assert await p.get_user("nobody@example.com") is None
    assert (await p.find_by_slack_id("U0ALICE")).email == "alice@example.com"
    assert (await p.find_by_aad_object_id("7D1E2A40-0A1B-4C2D-9E3F-A1B2C3D4E5F6")).email == "alice@example.com"


async def test_membership_changes_are_idempotent_and_persisted(provider):
    p, _ = provider
    await p.add_member("sg-prod-db-read", "bob@example.com")
    await p.add_member("sg-prod-db-read", "bob@example.com")
    assert await p.list_members("sg-prod-db-read") == ["bob@example.com"]
    assert "sg-prod-db-read" in (await p.get_user("bob@example.com")).groups
    await p.remove_member("sg-prod-db-read", "bob@example.com")
    await p.remove_member("sg-prod-db-read", "bob@example.com")
    await p.remove_member("sg-prod-db-read", "never@example.com")
    assert await p.list_members("sg-prod-db-read") == []
    # removing a member listed in the file is kept on top of the file
    await p.remove_member("oncall", "alice@example.com")
    assert "oncall" not in (await p.get_user("alice@example.com")).groups


async def test_file_is_read_afresh(provider):
    p, files = provider
    files.set_active("bob@example.com", False)
    assert (await p.get_user("bob@example.com")).active is False


async def test_lookups_follow_the_file_they_are_indexed_from(provider):
    p, files = provider
    assert await p.find_by_slack_id("u0alice") is None  # Slack ids are compared exactly, object ids in any case
    text = files.directory.read_text().replace("U0ALICE", "U0ALICE2").replace("7d1e2a40", "0d1e2a40")
    files.directory.write_text(text + "\n")  # a new size: the next look-up parses it again
    assert await p.find_by_slack_id("U0ALICE") is None
    assert (await p.find_by_slack_id("U0ALICE2")).email == "alice@example.com"
    assert (await p.find_by_aad_object_id("0D1E2A40-0A1B-4C2D-9E3F-A1B2C3D4E5F6")).email == "alice@example.com"
    files.add_to_group("sg-staging-admin", "alice@example.com")
    assert "sg-staging-admin" in (await p.get_user("alice@example.com")).groups


@pytest.mark.parametrize(("text", "where"), [
    ("users: [\n", "line"),
    ("- just a list\n", "line 1"),
    ("users:\n  - email: ok@example.com\n  - email: nope\n", "line 3"),
    ("users:\n  - email: a@example.com\n    active: maybe\n", "line 2"),
    ("users: []\ngroups: [a, b]\n", "groups"),
    (b"\xff\xfe", "UTF-8"),
])
def test_malformed_files_name_the_line(text, where):
    raw = text if isinstance(text, bytes) else text.encode()
    with pytest.raises(DirectoryError, match=where):
        parse_directory(raw, "dir.yaml")
