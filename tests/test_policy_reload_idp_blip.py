"""A provider (IdP) blip while a saved policy's groups are resolved must not reject that version for good.

bot/policy_watch.py means a provider that cannot answer to be retried at the next check (its
``except Exception`` branch: "the provider could not answer: the next check tries again"). But
:func:`handlers.group_resolution.resolve_groups` turns a :class:`ProviderError` for a group the new
version names into a :class:`GroupResolutionError`, which the watch treats as a permanent rejection:
``_sha`` already holds the new bytes' hash, so the same file is never looked at again. One worker
whose look-up hit the blip keeps judging by the old version while another worker moved on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import build_app
from bot.policy_watch import STATE_KEY, PolicyWatch
from tests.standins.graph import GraphStandIn
from tests.support import save_changed
from tests.test_group_ids import HEAD, OPS, say, seed_people, settings

HEAD2 = HEAD.replace('version: "groups-1"', 'version: "groups-2"')


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    from tests.standins.tls import make_tls

    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    with GraphStandIn(tls) as server:
        yield server


async def test_a_provider_blip_during_a_reload_rejects_the_version_for_good(sqlite_url, tmp_path, graph) -> None:
    seed_people(graph)
    graph.add_group("sg-ops")
    graph.add_group("sg-ops2")
    config = settings(sqlite_url, tmp_path, graph, OPS.format(id="ops", group="sg-ops"))
    async with build_app(config) as app:
        watch = PolicyWatch(app, config.policy, wait=True)
        save_changed(Path(config.policy),
              HEAD2 + OPS.format(id="ops", group="sg-ops") + OPS.format(id="ops2", group="sg-ops2"))
        graph.fail_path("/v1.0/groups", status=503, retry_after=0.01)  # Graph is briefly unavailable
        assert await watch.check() is None
        assert app.state[STATE_KEY] is not None  # not used for now: fine
        graph.clear_path_faults()  # Graph answers again; the file has not changed
        for _ in range(3):
            await watch.check()
        assert app.deps.policy.version == "groups-2", (
            f"the saved version is never retried after the IdP recovered: {app.state[STATE_KEY]}")


async def test_two_workers_judge_by_different_versions_after_one_hit_an_idp_blip(sqlite_url, tmp_path, graph) -> None:
    """``serve --workers 2``: each worker has its own app and watch over one database."""
    seed_people(graph)
    graph.add_group("sg-ops")
    graph.add_group("sg-ops2")
    config = settings(sqlite_url, tmp_path, graph, OPS.format(id="ops", group="sg-ops"))
    async with build_app(config) as one, build_app(config, migrate=False) as two:
        watch_one, watch_two = PolicyWatch(one, config.policy, wait=True), PolicyWatch(two, config.policy, wait=True)
        save_changed(Path(config.policy),
              HEAD2 + OPS.format(id="ops", group="sg-ops") + OPS.format(id="ops2", group="sg-ops2"))
        graph.fail_path("/v1.0/groups", status=503, retry_after=0.01)
        await watch_two.check()  # worker 2's check falls into the blip
        graph.clear_path_faults()
        await watch_one.check()  # worker 1's check, a moment later, succeeds (and stores the group's id)
        assert one.deps.policy.version == "groups-2"
        for _ in range(3):  # every later check of worker 2
            await watch_two.check()
        r1 = await say(one, "alice@example.com", "request ops2 for 2h")
        r2 = await say(two, "bob@example.com", "request ops2 for 2h")
        assert r1.ok, r1.text
        assert two.deps.policy.version == "groups-2" and r2.ok, (
            f"worker 2 stays on {two.deps.policy.version} and answers {r2.text!r} while worker 1 granted ops2")
