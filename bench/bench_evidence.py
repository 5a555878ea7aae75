"""Evidence export of a period with many audit events: seconds and peak memory against a csv floor.

The floor reads the same events from the same database and writes them with the csv module, in
the same run; each side runs in its own child process so that peak memory (ru_maxrss) is its own.
Targets: export time at most 2x the floor, peak memory under 200 MB.

    python bench/bench_evidence.py [--events 1000000] [--db /tmp/evidence-bench.db]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def seed(db: Path, n: int) -> None:
    from handlers.audit import GENESIS, canonical_json, event_hash, format_ts
    from store.db import upgrade

    db.unlink(missing_ok=True)
    upgrade(f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    prev = GENESIS
    batch = []
    for i in range(1, n + 1):
        body = {"seq": i, "ts": format_ts(t0 + timedelta(milliseconds=i * 50)), "type": "approval.granted",
                "actor": "dana.dba@example.com", "request_id": f"REQ-{i // 4 + 1}", "profile": "prod-db-read",
                "data": {"step": 2, "comment": "ok"}, "prev_hash": prev}
        prev = event_hash(prev, body)
        batch.append((i, body["ts"], body["type"], body["actor"], body["request_id"], body["profile"],
                      canonical_json(body["data"]), body["prev_hash"], prev))
        if len(batch) == 20000:
            conn.executemany("INSERT INTO audit_events VALUES (?,?,?,?,?,?,?,?,?)", batch)
            batch.clear()
    conn.executemany("INSERT INTO audit_events VALUES (?,?,?,?,?,?,?,?,?)", batch)
    conn.commit()
    conn.close()


def floor(db: Path, out: Path) -> None:
    conn = sqlite3.connect(db)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        for row in conn.execute("SELECT seq, ts, type, actor, request_id, profile, data, prev_hash, hash "
                                "FROM audit_events ORDER BY seq"):
            writer.writerow(row)
    conn.close()


def export(db: Path, out: Path) -> None:
    from bot.evidence_commands import write_pack
    from handlers.evidence import Period
    from store.repository import SqlStore

    async def run() -> None:
        store = SqlStore(f"sqlite:///{db}")
        summary = await write_pack(store, Period.parse("2026-11-01", "2026-11-30"), out, sla_hours=24)
        await store.close()
        assert summary.audit["verified"], summary.audit

    asyncio.run(run())


def child(kind: str, db: str, out: str) -> None:
    started = time.perf_counter()
    (floor if kind == "floor" else export)(Path(db), Path(out))
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{elapsed:.3f} {usage.ru_maxrss / 1024:.1f} {usage.ru_utime + usage.ru_stime:.3f}")


def measure(kind: str, db: Path, out: Path) -> tuple[float, float, float]:
    """(seconds, peak MB, CPU seconds of all its threads) of one child process."""
    r = subprocess.run([sys.executable, __file__, "--child", kind, "--db", str(db), "--out", str(out)],
                       capture_output=True, text=True, check=True, cwd=ROOT)
    seconds, mb, cpu = r.stdout.splitlines()[0].split()  # the child's own line (peak_rss_line follows it)
    return float(seconds), float(mb), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", default="/tmp/accessbot-evidence-bench.db")
    parser.add_argument("--child")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.out)
        return
    db = Path(args.db)
    started = time.perf_counter()
    seed(db, args.events)
    print(f"seeded {args.events:,} chained audit events in {time.perf_counter() - started:.1f} s")
    load = os.getloadavg()[0]
    base_s, base_mb, base_cpu = measure("floor", db, db.with_suffix(".csv"))
    pack_s, pack_mb, pack_cpu = measure("export", db, db.with_suffix(".zip"))
    print(f"csv floor:       {base_s:8.1f} s  peak {base_mb:6.1f} MB  cpu {base_cpu:6.1f} s")
    print(f"evidence export: {pack_s:8.1f} s  peak {pack_mb:6.1f} MB  cpu {pack_cpu:6.1f} s  "
          f"({pack_s / base_s:.2f}x the floor, {pack_cpu / base_cpu:.2f}x its CPU time; target <= 2x, < 200 MB)")
    print(f"load average (1 min): {load:.2f} before, {os.getloadavg()[0]:.2f} after (the machine's other work "
          "stretches both sides' seconds; CPU time is less sensitive to it)")
    for suffix in (".csv", ".zip"):
        os.unlink(db.with_suffix(suffix))


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
