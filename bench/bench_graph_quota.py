"""Expiring grants revoked through the Entra provider against Graph's write quota.

N active grants at an Entra group, all past their expiry, are revoked by the expiry sweep
(``handlers.sweeps.expire_due``, then ``run_due_ops`` again whenever removals are due, as the
scheduler's sweeps would) through the real ``EntraProvider`` against the Graph stand-in enforcing
a sliding write quota (``--quota`` writes per ``--window`` seconds; 429 + ``Retry-After`` beyond
it). Graph documents 3,000 writes per 150 s per app and tenant; ``--quota 300 --window 15`` keeps
the same rate with a tenth of the window so that a run takes about a minute.

Figures, for the run with ``$batch`` and the same run with batching hidden from ``run_due_ops``:

* writes/s over the write phase (first to last accepted write) as a fraction of quota/window;
* the same phase against the best a sliding window allows, ``floor((N-1)/quota) * window``
  (the first ``quota`` writes go at once, each later block when the block before it leaves the
  window): for N > quota this is the figure the ≥ 95 % target is about;
* throttled answers, sweep passes, and lost removals (must be zero).

    python bench/bench_graph_quota.py [--grants 5000] [--quota 3000] [--window 150]
    python bench/bench_graph_quota.py --grants 1000 --quota 300 --window 15      # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.bootstrap import build_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from handlers.grants import run_due_ops  # noqa: E402
from handlers.records import ACTIVE, RequestRecord  # noqa: E402
from handlers.sweeps import SweepReport, expire_due  # noqa: E402
from tests.standins.graph import GraphStandIn  # noqa: E402
from tests.standins.tls import make_tls  # noqa: E402

PROFILE = """
  - id: entra-bench
    title: Bench group at Entra
    owner: pat.lead@example.com
    risk: low
    provider: entra
    group: {group}
    eligible:
      - department: Engineering
    duration: {{default: 1h, max: 1d}}
    approval: [owner]
"""


class QuotaGraph(GraphStandIn):
    """The Graph stand-in, timing every accepted membership write and finding users by UPN in O(1)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.accepted: list[float] = []
        self.upn_index: dict[str, str] = {}

    def add_user(self, mail: str, **kw: Any) -> str:
        uid = super().add_user(mail, **kw)
        self.upn_index[mail.lower()] = uid
        return uid

    def _by_id_or_upn(self, key: str) -> str | None:
        return key if key in self.users else self.upn_index.get(key.lower())

    def _write(self, action: Any) -> Any:
        status, data, headers = super()._write(action)
        if status != 429:
            self.accepted.append(time.monotonic())
        return status, data, headers


class WithoutBatch:
    """The same Entra provider with its ``apply_batch`` hidden, so each removal is one request."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name = inner.name

    async def add_member(self, group: str, email: str) -> None:
        await self._inner.add_member(group, email)

    async def remove_member(self, group: str, email: str) -> None:
        await self._inner.remove_member(group, email)

    async def list_members(self, group: str) -> list[str]:
        return list(await self._inner.list_members(group))


@dataclass
class Result:
    mode: str
    grants: int
    quota: int
    window: float
    sweep_seconds: float
    write_phase: float
    writes: int
    throttled: int
    passes: int
    lost: int
    left_in_group: int

    def lines(self) -> list[str]:
        rate = self.writes / self.write_phase if self.write_phase > 0 else float("inf")
        quota_rate = self.quota / self.window
        best = math.floor((self.grants - 1) / self.quota) * self.window
        out = [f"{self.mode}: {self.grants} grants revoked in {self.sweep_seconds:.1f} s "
               f"({self.passes} sweep pass{'es' if self.passes != 1 else ''}), {self.throttled} answers 429",
               f"  writes accepted {self.writes}, write phase {self.write_phase:.1f} s = {rate:.1f} writes/s "
               f"= {100 * rate / quota_rate:.0f} % of the quota rate ({quota_rate:.1f}/s)"]
        if best > 0:
            out.append(f"  best possible under a sliding window: {best:.0f} s -> {100 * best / self.write_phase:.1f} %"
                       " of the quota-limited optimum")
        out.append(f"  lost: {self.lost} removals not done, {self.left_in_group} still members")
        return out


async def run(mode: str, grants: int, quota: int, window: float, workdir: Path) -> Result:
    (workdir / "tls").mkdir()
    tls = make_tls(workdir / "tls")
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = tls.ca_file
    graph = QuotaGraph(tls, page_size=999)
    graph.start()
    try:
        return await _run(mode, grants, quota, window, workdir, graph)
    finally:
        graph.stop()


async def _run(mode: str, grants: int, quota: int, window: float, workdir: Path, graph: QuotaGraph) -> Result:
    gid = graph.add_group("sg-bench")
    people = [f"user{i:05d}@example.com" for i in range(grants)]
    for email in people:
        graph.members[gid].append(graph.add_user(email))
    policy = workdir / f"policy-{mode}.yaml"
    shutil.copy(ROOT / "examples/policy.yaml", policy)
    policy.write_text(policy.read_text() + PROFILE.format(group=gid))
    db = workdir / f"{mode}.db"
    settings = Settings(database_url=f"sqlite:///{db}", policy=str(policy),
                        directory=str(ROOT / "examples/directory.yaml"), identity="directory",
                        entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                        entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)
    async with build_app(settings) as app:
        deps = app.deps
        if mode == "unbatched":
            deps.providers["entra"] = WithoutBatch(deps.providers["entra"])  # type: ignore[assignment]
        now = datetime.now(UTC)
        async with deps.store.write() as repo:  # grants that started 61 minutes ago for one hour
            for email in people:
                await repo.add_request(RequestRecord(
                    requester=email, profile="entra-bench", kind="standard", duration=timedelta(hours=1),
                    justification=None, ticket=None, state=ACTIVE, submitted_at=now - timedelta(minutes=62),
                    policy_version=deps.policy.version, policy_sha256=deps.policy.sha256, provider="entra",
                    group=gid, approved_at=now - timedelta(minutes=62), started_at=now - timedelta(minutes=61),
                    expires_at=now - timedelta(minutes=1)))
        graph.set_write_quota(quota, window)
        graph.accepted.clear()
        started = time.monotonic()
        report = SweepReport(as_of=deps.now(), dry_run=False)
        await expire_due(deps, report)  # ends every grant, then runs the removals
        passes = 1
        while True:  # what later sweeps do: run the removals that are due again
            async with deps.store.read() as repo:
                waiting = await repo.due_ops(datetime.now(UTC) + timedelta(days=1), limit=grants * 2)
            if not waiting:
                break
            wake = min(op.next_attempt_at or datetime.now(UTC) for op in waiting)
            delay = (wake - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(0.0, delay))
            await run_due_ops(deps, limit=grants * 2)
            passes += 1
        elapsed = time.monotonic() - started
        async with deps.store.read() as repo:
            not_done = len(await repo.due_ops(datetime.now(UTC) + timedelta(days=3650), limit=grants * 2))
        assert len(report.expired) == grants, len(report.expired)
    accepted = graph.accepted
    return Result(mode=mode, grants=grants, quota=quota, window=window, sweep_seconds=elapsed,
                  write_phase=(accepted[-1] - accepted[0]) if len(accepted) > 1 else 0.0, writes=len(accepted),
                  throttled=graph.throttled_writes, passes=passes, lost=not_done,
                  left_in_group=len(graph.member_emails(gid)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=5000)
    parser.add_argument("--quota", type=int, default=3000, help="writes allowed per window")
    parser.add_argument("--window", type=float, default=150.0, help="seconds")
    parser.add_argument("--mode", choices=["both", "batched", "unbatched"], default="both")
    args = parser.parse_args()
    modes = ["batched", "unbatched"] if args.mode == "both" else [args.mode]
    print(f"{args.grants} expiring grants, Graph write quota {args.quota} per {args.window:g} s "
          f"({args.quota / args.window:.1f} writes/s)")
    failed = False
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
            result = asyncio.run(run(mode, args.grants, args.quota, args.window, Path(tmp)))
        print("\n".join(result.lines()), flush=True)
        failed |= result.lost > 0 or result.left_in_group > 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
