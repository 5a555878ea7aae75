"""An unsigned evidence pack changed WITHOUT touching its audit chain segment.

The pack's chain segment (audit.jsonl, with audit.prev_hash / audit.head_hash) is what an auditor
can tie to the outside world: the anchor file, the previous and next period's packs ("consecutive
packs chain", docs/retention.md), the ``evidence.exported`` event's head hash. Every change below
leaves that segment byte for byte as exported (same prev_hash, same head_hash), changes only what a
forger with the zip in hand can change, and recomputes the manifest digests (no signing key is set,
so there is nothing else to recompute). SPEC §6: ``verify_pack.py`` exits 0 only "when the chain
segment, the manifest hashes and every row agree"; every row of the four request files is
"derived from, or checked against, the audit events".

Each pack is checked with the verifier it ships (its own verify_pack.py, run with -I) and with
``accessbot evidence verify``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import store.repository
from bot.evidence_commands import write_pack
from handlers.evidence import Period
from tests.evidence.test_verifier_tampered import VERIFY, _record, _zip
from tests.support import MutableClock, cli, harness

Files = dict[str, bytes]


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Files:
    pack = asyncio.run(_record(tmp_path_factory.mktemp("genuine")))
    with zipfile.ZipFile(pack) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _redigest(files: Files, change=None) -> Files:  # type: ignore[no-untyped-def]
    """The manifest's SHA-256 of every member as the members are now (nothing else recomputed)."""
    m = json.loads(files["manifest.json"])
    for name in list(m["files"]):
        if name in files:
            m["files"][name] = hashlib.sha256(files[name]).hexdigest()
    if change is not None:
        change(m)
    return {**files, "manifest.json": (json.dumps(m, indent=2, sort_keys=True) + "\n").encode()}


def _edit_csv(files: Files, name: str, fn) -> Files:  # type: ignore[no-untyped-def]
    rows = list(csv.reader(io.StringIO(files[name].decode())))
    fn(rows)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return {**files, name: out.getvalue().encode()}


def _verdicts(files: Files, tmp_path: Path, genuine: Files) -> list[tuple[str, int, str]]:
    """(which verifier, exit code, output) of the shipped verify_pack.py and ``accessbot evidence verify``."""
    pack = tmp_path / "forged.zip"
    pack.write_bytes(_zip(list(files.items())))
    script = tmp_path / "verify_pack.py"
    script.write_bytes(genuine["verify_pack.py"])  # the verifier as shipped in the genuine pack
    shipped = subprocess.run([sys.executable, "-I", str(script), str(pack)], capture_output=True, text=True,
                             timeout=120)
    ours = cli("evidence", "verify", str(pack))
    return [("verify_pack.py", shipped.returncode, shipped.stdout + shipped.stderr),
            ("accessbot evidence verify", ours.returncode, ours.stdout + ours.stderr)]


def _same_segment(files: Files, genuine: Files) -> None:
    """The forgery left the chain segment and its ends exactly as exported."""
    assert files["audit.jsonl"] == genuine["audit.jsonl"]
    a, b = json.loads(files["manifest.json"])["audit"], json.loads(genuine["manifest.json"])["audit"]
    assert (a["prev_hash"], a["head_hash"], a["first_seq"], a["last_seq"]) == (
        b["prev_hash"], b["head_hash"], b["first_seq"], b["last_seq"])


def _assert_refused(files: Files, tmp_path: Path, genuine: Files) -> None:
    _same_segment(files, genuine)
    for who, code, out in _verdicts(files, tmp_path, genuine):
        assert code == 1 and "FAIL" in out, f"{who} accepted a forged pack (exit {code}):\n{out}"


def test_the_genuine_pack_verifies(genuine: Files, tmp_path: Path) -> None:
    for who, code, out in _verdicts(dict(genuine), tmp_path, genuine):
        assert code == 0, f"{who}: {out}"


# -- 1. the manifest's "rows" block switches the row derivation off -----------------------------------

def test_csv_row_edited_and_rows_block_dropped_is_refused(genuine: Files, tmp_path: Path) -> None:
    """A justification and an approver rewritten in the CSV files; the manifest loses its "rows" block
    (the marker verify_pack.py reads to decide whether rows are derived at all)."""
    def justify(rows: list[list[str]]) -> None:
        for row in rows[1:]:
            if row[0] == "REQ-3":
                row[5] = "CAB-1234 approved change"

    def approver(rows: list[list[str]]) -> None:
        for row in rows[1:]:
            if row[0] == "REQ-3":
                row[2] = "ciso@example.com"

    forged = _edit_csv(genuine, "requests.csv", justify)
    forged = _edit_csv(forged, "approvals.csv", approver)
    assert forged["requests.csv"] != genuine["requests.csv"]
    assert forged["approvals.csv"] != genuine["approvals.csv"]
    forged = _redigest(forged, lambda m: m.pop("rows"))
    _assert_refused(forged, tmp_path, genuine)


# -- 2. a derived file that is simply left out ---------------------------------------------------------

def test_approvals_csv_left_out_is_refused(genuine: Files, tmp_path: Path) -> None:
    """approvals.csv (one of the four files every pack must derive from the chain, SPEC §6) removed
    from the zip and from the manifest; the manifest's own "rows" block still lists it."""
    forged = {k: v for k, v in genuine.items() if k != "approvals.csv"}

    def drop(m: dict[str, Any]) -> None:
        m["files"].pop("approvals.csv")
        m["counts"].pop("approvals.csv", None)
        assert "approvals.csv" in m["rows"]["files"]

    forged = _redigest(forged, drop)
    _assert_refused(forged, tmp_path, genuine)


# -- 3. audit_earlier.jsonl: each event checked against its own hash, tied by the earlier packs -------

async def _record_two(folder: Path) -> tuple[Path, Path]:
    """The packs of the three days before today (REQ-1 submitted and approved) and of today."""
    now = datetime.now(UTC).replace(microsecond=0)
    clock = MutableClock(now - timedelta(days=3))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store.repository, "_wall_clock", clock.now)
        async with harness(f"sqlite:///{folder}/accessbot.db", folder, clock=clock) as h:
            await h.say("carol@example.com", "exception prod-db-read for 5d because INC-9 migration")
            await h.say("sam.sec@example.com", "approve REQ-1")
            await h.say("dana.dba@example.com", "approve REQ-1 fine")
            clock.at = now
            await h.say("bob@example.com", "request staging-admin for 1h because deploy the fix")
            await h.say("mark.mgr@example.com", "approve REQ-2 ok")
            earlier, today = folder / "earlier.zip", folder / "today.zip"
            day = now.date()
            await write_pack(h.app.store, Period.parse(str(day - timedelta(days=3)), str(day - timedelta(days=1))),
                             earlier, sla_hours=24)
            await write_pack(h.app.store, Period.parse(str(day), str(day)), today, sla_hours=24)
    return earlier, today


def _run(*packs: Path) -> tuple[int, str]:
    shipped = subprocess.run([sys.executable, "-I", str(VERIFY), *map(str, packs)], capture_output=True, text=True,
                             timeout=120)
    ours = cli("evidence", "verify", str(packs[0]), *[x for p in packs[1:] for x in ("--earlier", str(p))])
    assert (shipped.returncode, shipped.stdout.splitlines()[:1]) == (ours.returncode, ours.stdout.splitlines()[:1])
    return shipped.returncode, shipped.stdout


def test_forged_earlier_approvals_are_refused_against_the_earlier_pack(tmp_path: Path) -> None:
    """REQ-1 (an exception decided before the period, its grant held in the period): its approvals in
    audit_earlier.jsonl are given another approver, each event re-hashed on its own (prev_hash kept),
    and grants.csv follows. audit.jsonl and its ends are untouched. On its own an unsigned pack cannot tie
    those events to the chain, and says so; with the earlier period's pack the forgery is refused."""
    earlier, today = asyncio.run(_record_two(tmp_path))
    with zipfile.ZipFile(today) as zf:
        genuine = {n: zf.read(n) for n in zf.namelist()}
    code, out = _run(today, earlier)
    assert code == 0 and "all of them are in the earlier packs given" in out, out
    events = [json.loads(x) for x in genuine["audit_earlier.jsonl"].decode().split("\n") if x]
    changed = 0
    for e in events:
        if e["type"] == "approval.granted" and e["request_id"] == "REQ-1":
            e["actor"] = "ciso@example.com"
            body = {k: v for k, v in e.items() if k != "hash"}
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            e["hash"] = hashlib.sha256((e["prev_hash"] + canonical).encode()).hexdigest()
            changed += 1
    assert changed == 2
    forged_earlier = b"".join(json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
                              + b"\n" for e in events)

    def approved_by(rows: list[list[str]]) -> None:
        col = rows[0].index("approved_by")
        for row in rows[1:]:
            if row[0] == "REQ-1":
                row[col] = "ciso@example.com"

    forged = _redigest(_edit_csv({**genuine, "audit_earlier.jsonl": forged_earlier}, "grants.csv", approved_by))
    _same_segment(forged, genuine)
    pack = tmp_path / "forged.zip"
    pack.write_bytes(_zip(list(forged.items())))
    code, out = _run(pack)
    assert code == 0 and f"{len(events)} of them not tied to the chain" in out, out  # alone: said, not hidden
    code, out = _run(pack, earlier)
    assert code == 1 and "differs from that event in" in out, out


# -- 4. policy/: the chain records each request's policy_sha256, nobody compares ------------------------

def test_policy_file_swapped_is_refused(genuine: Files, tmp_path: Path) -> None:
    """The policy in force, byte for byte as loaded (SPEC §6), replaced by another text; the events of
    the chain name its SHA-256 (request.submitted data.policy_sha256, manifest policy_versions)."""
    names = [n for n in genuine if n.startswith("policy/")]
    assert names
    m = json.loads(genuine["manifest.json"])
    shas = {v["sha256"] for v in m["policy_versions"]}
    assert hashlib.sha256(genuine[names[0]]).hexdigest() in shas
    forged = {**genuine, names[0]: genuine[names[0]] + b"\n# every profile is auto-approved for anyone\n"}
    forged = _redigest(forged)
    _assert_refused(forged, tmp_path, genuine)


# -- 5. duplicate keys in an audit.jsonl line: the bytes say one thing, the hash covers another ---------

def test_audit_line_with_a_duplicate_key_is_refused(genuine: Files, tmp_path: Path) -> None:
    """audit.jsonl's approval line of REQ-3 gets a second "actor" key in front of the real one: a reader
    that takes the first (grep, a streaming parser, a log viewer) shows ciso@example.com approving;
    json.loads takes the last, so the hash still matches and the head hash is the genuine one."""
    lines = genuine["audit.jsonl"].split(b"\n")
    for i, line in enumerate(lines):
        if b'"type":"approval.granted"' in line and b'"request_id":"REQ-3"' in line:
            lines[i] = b'{"actor":"ciso@example.com",' + line[1:]
            break
    else:
        raise AssertionError("no approval of REQ-3 in the period")
    forged = _redigest({**genuine, "audit.jsonl": b"\n".join(lines)})
    # the chain's ends are the genuine ones; only the line's bytes differ
    a, b = json.loads(forged["manifest.json"])["audit"], json.loads(genuine["manifest.json"])["audit"]
    assert (a["prev_hash"], a["head_hash"]) == (b["prev_hash"], b["head_hash"])
    for who, code, out in _verdicts(forged, tmp_path, genuine):
        assert code == 1 and "FAIL" in out, f"{who} accepted a non-canonical audit line (exit {code}):\n{out}"
