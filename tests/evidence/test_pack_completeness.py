"""verify_pack.py against an UNSIGNED pack whose chain segment (audit.jsonl, prev_hash,
head_hash, first_seq, last_seq) stays exactly as exported, everything else what a forger can write."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

import store.repository
from bot.evidence_commands import write_pack
from handlers.evidence import Period
from handlers.sweeps import sweep
from tests.evidence.test_pack_forgeries import _edit_csv, _record_two, _redigest, _run, _same_segment
from tests.evidence.test_verifier_tampered import VERIFY, _zip
from tests.support import MutableClock, harness

Files = dict[str, bytes]


def _read(pack: Path) -> Files:
    with zipfile.ZipFile(pack) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(files: Files, path: Path) -> Path:
    path.write_bytes(_zip(list(files.items())))
    return path


def _count(files: Files, name: str) -> int:
    data = files[name].decode()
    if name.endswith(".csv"):
        return len(list(csv.reader(io.StringIO(data)))) - 1
    return len([x for x in data.split("\n") if x])


def _recount(files: Files) -> Files:
    def change(m: dict[str, Any]) -> None:
        for name in list(m["counts"]):
            if name in files:
                m["counts"][name] = _count(files, name)
    return _redigest(files, change)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return asyncio.run(_record_two(tmp_path_factory.mktemp("two")))


def test_a_grant_held_in_the_period_vanishes_even_with_the_earlier_pack_given(two, tmp_path: Path) -> None:
    """REQ-1 (an exception granted before the period, held through it) is a row of grants.csv. The forger
    empties audit_earlier.jsonl and deletes REQ-1's grants.csv row. audit.jsonl untouched. The earlier pack
    (genuine) is given, so the verifier has every event it needs to see the grant; it must not say OK."""
    earlier, today = two
    genuine = _read(today)
    code, out = _run(today, earlier)
    assert code == 0, out
    assert any(r[0] == "REQ-1" for r in csv.reader(io.StringIO(genuine["grants.csv"].decode())))
    forged = {**genuine, "audit_earlier.jsonl": b""}
    forged = _edit_csv(forged, "grants.csv", lambda rows: rows.__setitem__(slice(None), [r for r in rows
                                                                                        if r[0] != "REQ-1"]))
    forged = _recount(forged)
    _same_segment(forged, genuine)
    pack = _write(forged, tmp_path / "forged.zip")
    code, out = _run(pack, earlier)
    assert code == 1 and "FAIL" in out, f"a grant held in the period was hidden, exit {code}:\n{out}"


def test_a_subset_of_the_earlier_events_is_all_tied(two, tmp_path: Path) -> None:
    """Only REQ-1's grant.provisioned is dropped from audit_earlier.jsonl (every event left is genuine and in
    the earlier pack); REQ-1 leaves grants.csv. The verifier says every earlier event is tied to the chain."""
    earlier, today = two
    genuine = _read(today)
    lines = [x for x in genuine["audit_earlier.jsonl"].split(b"\n") if x]
    kept = [x for x in lines if json.loads(x)["type"] != "grant.provisioned"]
    assert len(kept) < len(lines)
    forged = {**genuine, "audit_earlier.jsonl": b"".join(x + b"\n" for x in kept)}
    forged = _edit_csv(forged, "grants.csv", lambda rows: rows.__setitem__(slice(None), [r for r in rows
                                                                                        if r[0] != "REQ-1"]))
    forged = _recount(forged)
    _same_segment(forged, genuine)
    pack = _write(forged, tmp_path / "forged.zip")
    code, out = _run(pack, earlier)
    assert code == 1 and "FAIL" in out, f"a dropped earlier event went unnoticed, exit {code}:\n{out}"


def _empty_pack_with_first_seq(genuine: Files) -> Files:
    """A pack of no event, whose manifest gives audit.first_seq but no last_seq: verify() accepts it."""
    files = dict(genuine)
    files["audit.jsonl"] = b""
    files["audit_earlier.jsonl"] = b""
    for name in ("requests.csv", "approvals.csv", "grants.csv", "exceptions.csv"):
        files[name] = files[name].splitlines(keepends=True)[0]

    def change(m: dict[str, Any]) -> None:
        m["audit"]["first_seq"] = 1
        m["audit"]["last_seq"] = None
        m["audit"]["head_hash"] = m["audit"]["prev_hash"]
        for name in list(m["counts"]):
            m["counts"][name] = _count(files, name)
    return _redigest(files, change)


def test_a_hostile_earlier_pack_fails_cleanly_not_with_a_traceback(two, tmp_path: Path) -> None:
    earlier, today = two
    hostile = _write(_empty_pack_with_first_seq(_read(earlier)), tmp_path / "hostile.zip")
    alone = subprocess.run([sys.executable, "-I", str(VERIFY), str(hostile)], capture_output=True, text=True,
                           timeout=120)
    assert alone.returncode == 0, alone.stdout + alone.stderr  # on its own it verifies
    done = subprocess.run([sys.executable, "-I", str(VERIFY), str(today), str(hostile)], capture_output=True,
                          text=True, timeout=120)
    # a pack whose segment is no segment ties nothing: said, never a traceback
    assert "Traceback" not in done.stderr and done.returncode == 0 and "not tied to the chain" in done.stdout, (
        f"exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    named = [line for line in done.stdout.splitlines() if "ties nothing" in line]
    assert len(named) == 1 and "hostile.zip" in named[0], done.stdout  # which pack did not link, said


# -- removals.csv and report.html: what an auditor reads, checked by nothing but the manifest -----------

async def _mover_pack(folder: Path) -> Path:
    clock = MutableClock()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store.repository, "_wall_clock", clock.now)
        async with harness(f"sqlite:///{folder}/accessbot.db", folder, clock=clock) as h:
            assert (await h.say("bob@example.com", "request analytics-read for 1d")).ok
            h.clock.advance(hours=1)

            def move(data: dict) -> None:
                for u in data["users"]:
                    if u["email"] == "bob@example.com":
                        u["department"] = "Sales"
            h.files.edit_directory(move)
            report = await sweep(h.app.deps, drift=False)
            assert report.revoked == ["REQ-1"], report.lines()
            day = h.clock.now().date()
            out = folder / "pack.zip"
            await write_pack(h.app.store, Period.parse(str(day.replace(day=1)), "2027-12-31"), out, sla_hours=24)
    return out


@pytest.fixture(scope="module")
def mover(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return asyncio.run(_mover_pack(tmp_path_factory.mktemp("mover")))


def test_removals_csv_rewritten_is_refused(mover: Path, tmp_path: Path) -> None:
    """Bob's ineligible removal (a grant.revoked in audit.jsonl) rewritten: another user, reason 'review'."""
    genuine = _read(mover)
    code, out = _run(mover)
    assert code == 0, out
    rows = list(csv.reader(io.StringIO(genuine["removals.csv"].decode())))
    assert len(rows) == 2 and "bob@example.com" in rows[1], rows

    def rewrite(rows: list[list[str]]) -> None:
        head = rows[0]
        rows[1][head.index("user")] = "alice@example.com"
        rows[1][head.index("reason")] = "review"

    forged = _redigest(_edit_csv(genuine, "removals.csv", rewrite))
    _same_segment(forged, genuine)
    code, out = _run(_write(forged, tmp_path / "forged.zip"))
    assert code == 1 and "FAIL" in out, f"removals.csv rewritten, exit {code}:\n{out}"


def test_removals_csv_row_deleted_is_refused(mover: Path, tmp_path: Path) -> None:
    genuine = _read(mover)
    forged = _recount(_edit_csv(genuine, "removals.csv", lambda rows: rows.__delitem__(slice(1, None))))
    _same_segment(forged, genuine)
    code, out = _run(_write(forged, tmp_path / "forged.zip"))
    assert code == 1 and "FAIL" in out, f"removals.csv emptied, exit {code}:\n{out}"


def test_the_report_reads_every_event_removals_csv_is_derived_from() -> None:
    from bot.pack_check import verifier_module
    from handlers.evidence_figures import INTERESTING, REMOVAL_TYPES

    assert verifier_module().REMOVAL_TYPES == REMOVAL_TYPES and REMOVAL_TYPES <= INTERESTING
