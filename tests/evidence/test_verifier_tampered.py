"""verify_pack.py, run by an auditor on a pack tampered with or broken in any way, gives a verdict:
one ``FAIL`` line naming the file (and the line, row or event) and exit 1, never a Python traceback.

A genuine pack is made once through the service (events before and inside the period, so that
audit_earlier.jsonl holds some), then changed the ways a forger or a damaged copy would change it.
"Sealed" changes also rewrite what a forger can recompute without the signing key (each event's
hash and prev_hash, the manifest's digests, counts and audit head), so the verifier gets past the
hashes to the rules that derive the rows, where a field of an unexpected type could stop it."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import store.repository
from bot.evidence_commands import write_pack
from handlers.evidence import Period
from tests.support import MutableClock, harness

VERIFY = Path(__file__).resolve().parents[2] / "bot" / "evidence_files" / "verify_pack.py"
Files = dict[str, bytes]


async def _record(folder: Path) -> Path:
    """REQ-1 (an exception approved three days before the period, its grant still held), REQ-2
    (auto-approved) and REQ-3 (approved by the manager) in the period."""
    now = datetime.now(UTC).replace(microsecond=0)
    clock = MutableClock(now - timedelta(days=3))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store.repository, "_wall_clock", clock.now)
        async with harness(f"sqlite:///{folder}/accessbot.db", folder, clock=clock) as h:
            await h.say("carol@example.com", "exception prod-db-read for 5d because INC-9 migration")
            await h.say("sam.sec@example.com", "approve REQ-1")
            await h.say("dana.dba@example.com", "approve REQ-1 fine")
            clock.at = now
            await h.say("bob@example.com", "request analytics-read for 1d")
            await h.say("bob@example.com", "request staging-admin for 1h because deploy the fix")
            await h.say("mark.mgr@example.com", "approve REQ-3 ok")
            out = folder / "pack.zip"
            await write_pack(h.app.store, Period.parse(str(now.date()), str(now.date())), out, sla_hours=24)
    return out


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Files:
    pack = asyncio.run(_record(tmp_path_factory.mktemp("genuine")))
    with zipfile.ZipFile(pack) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _verify(pack: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", str(VERIFY), str(pack)], capture_output=True, text=True,
                          timeout=120)


def _zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return out.getvalue()


def _events(data: bytes) -> list[Any]:
    return [json.loads(line) for line in data.decode().split("\n") if line]


def _jsonl(events: list[Any]) -> bytes:
    return b"".join(json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
                    for e in events)


def _hash(prev: str, event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest()


def seal(files: Files, *, manifest: Callable[[dict[str, Any]], Any] | None = None) -> Files:
    """What a forger without the signing key can recompute: each event's hash (in audit_earlier.jsonl
    each on its own; in audit.jsonl with its prev_hash, chained from audit.prev_hash), the manifest's
    audit head, digests and counts. ``manifest``: a last change to the manifest."""
    m = json.loads(files["manifest.json"])
    earlier = _events(files["audit_earlier.jsonl"])
    for event in earlier:
        if isinstance(event, dict):
            event["hash"] = _hash(str(event.get("prev_hash")), event)
            if event.get("seq") == m["audit"]["first_seq"] - 1:
                m["audit"]["prev_hash"] = event["hash"]
    prev = m["audit"]["prev_hash"]
    events = _events(files["audit.jsonl"])
    for event in events:
        if isinstance(event, dict):
            event["prev_hash"] = prev
            event["hash"] = prev = _hash(prev, event)
    m["audit"].update(head_hash=prev, last_seq=events[-1]["seq"])
    files = {**files, "audit.jsonl": _jsonl(events), "audit_earlier.jsonl": _jsonl(earlier),
             "manifest.json": json.dumps(m).encode()}
    return _digests(files, manifest)


def _digests(files: Files, manifest: Callable[[dict[str, Any]], Any] | None) -> Files:
    """The manifest's SHA-256 of every member and line count of each .jsonl as the members are now."""
    m = json.loads(files["manifest.json"])
    for name in m["files"]:
        if name in files:
            m["files"][name] = hashlib.sha256(files[name]).hexdigest()
    for name in m["counts"]:
        if name in files and name.endswith(".jsonl"):
            m["counts"][name] = len([x for x in files[name].split(b"\n") if x])
    if manifest is not None:
        manifest(m)
    return {**files, "manifest.json": json.dumps(m, indent=2, sort_keys=True).encode()}


def _with_digests(files: Files, name: str, data: bytes) -> Files:
    """``name`` changed and its SHA-256 written into the manifest (the chain left as it is)."""
    return _digests({**files, name: data}, None)


def _edit_events(name: str, change: Callable[[list[Any]], None]) -> Callable[[Files], Files]:
    """Change the events of ``name``, then seal the pack again."""
    def tamper(files: Files) -> Files:
        events = _events(files[name])
        change(events)
        return seal({**files, name: _jsonl(events)})
    return tamper


def _first(kind: str, rid: str | None = None) -> Callable[[list[Any]], dict[str, Any]]:
    def find(events: list[Any]) -> dict[str, Any]:
        return next(e for e in events if e["type"] == kind and (rid is None or e["request_id"] == rid))
    return find


def _set(name: str, kind: str, field: str, value: Any, rid: str | None = None) -> Callable[[Files], Files]:
    """One event of ``name`` (the first of type ``kind``) given ``field`` = ``value``, sealed."""
    def change(events: list[Any]) -> None:
        _first(kind, rid)(events)[field] = value
    return _edit_events(name, change)


def _set_data(name: str, kind: str, value: Any) -> Callable[[Files], Files]:
    return _set(name, kind, "data", value)


def _back_in_time(events: list[Any]) -> None:
    """The REQ-3's approval.requested (no row is made from it) dated a millisecond before the event ahead of it."""
    event = _first("approval.requested", "REQ-3")(events)
    before = datetime.fromisoformat(events[events.index(event) - 1]["ts"].replace("Z", "+00:00"))
    event["ts"] = (before - timedelta(milliseconds=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _after_the_period(files: Files) -> Files:
    """An event (of a type no row is made from) appended after the last, dated the day after the period."""
    def change(events: list[Any]) -> None:
        end = json.loads(files["manifest.json"])["period"]["to"]
        day_after = (datetime.fromisoformat(end) + timedelta(days=1)).date().isoformat()
        events.append({**_first("approval.requested", "REQ-3")(events), "seq": events[-1]["seq"] + 1,
                       "ts": f"{day_after}T00:00:00.000Z"})
    return _edit_events("audit.jsonl", change)(files)


def _rename(old: str, new: str) -> Callable[[Files], Files]:
    """Every event of request ``old`` given the request id ``new`` (sealed)."""
    def change(events: list[Any]) -> None:
        for e in events:
            if e.get("request_id") == old:
                e["request_id"] = new
    return _edit_events("audit.jsonl", change)


def _replace_line(name: str, number: int, line: bytes) -> Callable[[Files], Files]:
    """Line ``number`` of ``name`` replaced, its SHA-256 written into the manifest."""
    def tamper(files: Files) -> Files:
        lines = files[name].split(b"\n")
        lines[number - 1] = line
        changed = {**files, name: b"\n".join(lines)}
        return _digests(changed, None)
    return tamper


def _manifest(change: Callable[[dict[str, Any]], Any]) -> Callable[[Files], Files]:
    def tamper(files: Files) -> Files:
        m = json.loads(files["manifest.json"])
        changed = change(m)  # a new manifest, or None when ``m`` was changed in place
        return {**files, "manifest.json": json.dumps(m if changed is None else changed).encode()}
    return tamper


def _no_events(files: Files) -> Files:
    """audit.jsonl empty (a period without events, as far as the manifest says) and audit.first_seq text."""
    files = _digests({**files, "audit.jsonl": b""}, None)
    m = json.loads(files["manifest.json"])
    m["audit"].update(first_seq="9", last_seq=None, head_hash=m["audit"]["prev_hash"])
    return {**files, "manifest.json": json.dumps(m).encode()}


def _csv(name: str, change: Callable[[list[list[str]]], None]) -> Callable[[Files], Files]:
    def tamper(files: Files) -> Files:
        rows = list(csv.reader(io.StringIO(files[name].decode())))
        change(rows)
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        changed = _digests({**files, name: out.getvalue().encode()}, None)
        m = json.loads(changed["manifest.json"])
        m["counts"][name] = len(rows) - 1
        return {**changed, "manifest.json": json.dumps(m).encode()}
    return tamper


def _corrupt_member(name: str) -> Callable[[bytes], bytes]:
    """A stored (uncompressed) member with one byte of its content changed: its CRC-32 is wrong."""
    def tamper(pack: bytes) -> bytes:
        with zipfile.ZipFile(io.BytesIO(pack)) as zf:
            info = zf.getinfo(name)
        at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 2
        return pack[:at] + bytes([pack[at] ^ 0xFF]) + pack[at + 1:]
    return tamper


def _unknown_method(name: str) -> Callable[[bytes], bytes]:
    """The central directory says ``name`` is compressed with method 99, which no reader knows."""
    def tamper(pack: bytes) -> bytes:
        at = pack.index(b"PK\x01\x02")
        while True:
            name_len = struct.unpack("<H", pack[at + 28:at + 30])[0]
            if pack[at + 46:at + 46 + name_len] == name.encode():
                return pack[:at + 10] + struct.pack("<H", 99) + pack[at + 12:]
            at = pack.index(b"PK\x01\x02", at + 4)
    return tamper


def _twice(name: str, first: bytes | None = None) -> Callable[[Files], list[tuple[str, bytes]]]:
    """``name`` twice in the zip: a forged copy first, the genuine one last (the one Python reads)."""
    def members(files: Files) -> list[tuple[str, bytes]]:
        forged = first if first is not None else files[name].replace(b"deploy the fix", b"approved change")
        return [(name, forged), *files.items()]
    return members


# (id, how the pack is changed, what the FAIL line says); a change takes and gives the members
# (a dict), or the members as a list (the zip written from it), or ("bytes", a function of the
# genuine zip's bytes, or the bytes themselves).
CASES: list[tuple[str, Any, str]] = [
    # -- the file itself ---------------------------------------------------------------------------
    ("not-a-zip", ("bytes", b"this is not a zip file\n"), "FAIL cannot read"),
    ("empty-file", ("bytes", b""), "FAIL cannot read"),
    ("no-such-file", None, "FAIL cannot read"),
    ("truncated-zip", ("bytes", lambda pack: pack[: len(pack) // 2]), "FAIL cannot read"),
    ("bad-crc", ("stored", _corrupt_member("requests.csv")), "requests.csv"),
    ("unknown-compression", ("bytes", _unknown_method("grants.csv")), "grants.csv"),
    ("member-twice", _twice("requests.csv"), "tampered.zip: requests.csv is twice in the zip"),
    ("manifest-twice", _twice("manifest.json", b"{}"), "tampered.zip: manifest.json is twice in the zip"),
    ("path-traversal", lambda f: [*f.items(), ("../../evil.sh", b"rm -rf ~\n")],
     "FAIL ../../evil.sh: not listed in the manifest"),
    ("absolute-path", lambda f: [*f.items(), ("/etc/cron.d/x", b"x\n")], "FAIL /etc/cron.d/x: not listed"),
    ("zeros-4mb", lambda f: [*f.items(), ("padding.bin", bytes(4 << 20))], "FAIL padding.bin: not listed"),
    # -- files missing, extra, unreadable ----------------------------------------------------------
    ("no-manifest", lambda f: {k: v for k, v in f.items() if k != "manifest.json"}, "FAIL manifest.json missing"),
    ("missing-file", lambda f: {k: v for k, v in f.items() if k != "grants.csv"},
     "FAIL grants.csv: listed in the manifest but missing"),
    ("extra-file", lambda f: {**f, "notes.txt": b"all fine\n"}, "FAIL notes.txt: not listed in the manifest"),
    ("empty-member", lambda f: {**f, "audit.jsonl": b""}, "FAIL audit.jsonl: SHA-256 does not match"),
    ("manifest-not-json", lambda f: {**f, "manifest.json": f["manifest.json"][:50]}, "FAIL manifest.json"),
    ("manifest-bad-utf8", lambda f: {**f, "manifest.json": b'{"files": "\xff\xfe"}'}, "FAIL manifest.json"),
    ("manifest-deep", lambda f: {**f, "manifest.json": b"[" * 100_000}, "FAIL manifest.json"),
    # -- the manifest: fields of the wrong type ----------------------------------------------------
    ("manifest-list", _manifest(lambda m: [m]), "FAIL manifest.json: not a JSON object"),
    ("manifest-null", lambda f: {**f, "manifest.json": b"null"}, "FAIL manifest.json: not a JSON object"),
    ("files-list", _manifest(lambda m: m.update(files=list(m["files"]))), "FAIL manifest.json: files"),
    ("files-null", _manifest(lambda m: m.update(files=None)), "FAIL manifest.json: files"),
    ("digest-number", _manifest(lambda m: m["files"].update({"grants.csv": 5})),
     "FAIL grants.csv: SHA-256 does not match"),
    ("counts-null", _manifest(lambda m: m.update(counts=None)), "FAIL manifest.json: counts"),
    ("counts-list", _manifest(lambda m: m.update(counts=[1, 2])), "FAIL manifest.json: counts"),
    ("count-text", _manifest(lambda m: m["counts"].update({"grants.csv": "3"})), "FAIL grants.csv: 3 rows"),
    ("audit-text", _manifest(lambda m: m.update(audit="verified")), "FAIL manifest.json: audit"),
    ("first-seq-text", _manifest(lambda m: m["audit"].update(first_seq="9")),
     "FAIL manifest.json: audit.first_seq is not a number"),
    ("first-seq-text-no-events", _no_events, "FAIL manifest.json: audit.first_seq is not a number"),
    ("first-seq-negative", lambda f: seal(f, manifest=lambda m: m["audit"].update(first_seq=-1)),
     "FAIL audit.jsonl line 1: seq 9, expected -1"),
    ("first-seq-huge", _manifest(lambda m: m["audit"].update(first_seq=10**40)), "FAIL audit.jsonl line 1: seq"),
    ("period-missing", lambda f: seal(f, manifest=lambda m: m.pop("period")), "FAIL manifest.json: period"),
    ("period-not-a-date", lambda f: seal(f, manifest=lambda m: m["period"].update({"to": "2026-13-45"})),
     "FAIL manifest.json: period"),
    ("period-end-of-time", lambda f: seal(f, manifest=lambda m: m["period"].update({"to": "9999-12-31"})),
     "FAIL manifest.json: period"),
    ("period-number", lambda f: seal(f, manifest=lambda m: m["period"].update({"from": 20261110})),
     "FAIL manifest.json: period"),
    ("period-arabic-digits", lambda f: seal(f, manifest=lambda m: m["period"].update({"from": "٢٠٢٦-١١-١٠"})),
     "FAIL manifest.json: period"),
    ("signature-text", lambda f: {**seal(f, manifest=lambda m: m.update(signature="trust me")),
                                  "manifest.json.sig": b"x"}, "FAIL manifest.json: signature"),
    # -- audit.jsonl as it is (its hash in the manifest) -------------------------------------------
    ("line-not-json", _replace_line("audit.jsonl", 2, b'{"seq": 10, "type": "request.sub'),
     "FAIL audit.jsonl line 2: not JSON"),
    ("line-a-list", _replace_line("audit.jsonl", 2, b"[1, 2]"), "FAIL audit.jsonl line 2: not a JSON object"),
    ("line-null", _replace_line("audit.jsonl", 1, b"null"), "FAIL audit.jsonl line 1: not a JSON object"),
    ("line-a-number", _replace_line("audit.jsonl", 3, b"10"), "FAIL audit.jsonl line 3: not a JSON object"),
    ("line-deep", _replace_line("audit.jsonl", 2, b"[" * 100_000), "FAIL audit.jsonl line 2: not JSON"),
    ("line-huge-number", _replace_line("audit.jsonl", 2, b'{"seq": ' + b"9" * 5000 + b"}"),
     "FAIL audit.jsonl line 2"),
    ("line-bad-utf8", _replace_line("audit.jsonl", 2, b'{"seq": 10, "actor": "\xff\xfe"}'),
     "FAIL audit.jsonl seq 10: prev_hash does not match"),
    ("line-bom", _replace_line("audit.jsonl", 1, b"\xef\xbb\xbf{}"), "FAIL audit.jsonl line 1: not JSON"),
    ("earlier-line-a-list", _replace_line("audit_earlier.jsonl", 2, b"[]"),
     "FAIL audit_earlier.jsonl line 2: not a JSON object"),
    ("earlier-line-deep", _replace_line("audit_earlier.jsonl", 2, b"{" * 50_000),
     "FAIL audit_earlier.jsonl line 2: not JSON"),
    ("seq-negative", _replace_line("audit.jsonl", 1, b'{"seq": -1}'), "FAIL audit.jsonl line 1: seq -1"),
    # -- audit events re-hashed (sealed): fields of the wrong type reach the rules -----------------
    ("request-id-superscript", _rename("REQ-2", "REQ-³"), "REQ-³"),
    ("request-id-arabic-indic", _rename("REQ-2", "REQ-٣"), "REQ-٣"),
    ("request-id-huge-number", _rename("REQ-2", "REQ-" + "9" * 5000), "REQ-9999"),
    ("request-id-number", _set("audit.jsonl", "request.submitted", "request_id", 2),
     "FAIL audit.jsonl line 1 (seq 9): request_id is not text"),
    ("request-id-list", _set("audit.jsonl", "request.submitted", "request_id", ["REQ-2"]),
     "FAIL audit.jsonl line 1 (seq 9): request_id is not text"),
    ("request-id-object", _set("audit.jsonl", "approval.granted", "request_id", {"id": "REQ-3"}),
     "request_id is not text"),
    ("type-list", _set("audit.jsonl", "request.submitted", "type", ["request.submitted"]),
     "FAIL audit.jsonl line 1 (seq 9): type is not text"),
    ("type-null", _set("audit.jsonl", "request.submitted", "type", None), "FAIL audit.jsonl line 1 (seq 9): type"),
    ("data-list", _set_data("audit.jsonl", "request.submitted", ["analytics-read"]),
     "FAIL audit.jsonl line 1 (seq 9): data is not a JSON object"),
    ("data-text", _set_data("audit.jsonl", "request.submitted", "1d"), "data is not a JSON object"),
    ("data-nested", _edit_events("audit.jsonl", lambda ev: _first("request.submitted", "REQ-3")(ev)["data"].update(
        justification={"text": ["deploy", {"the": "fix"}]})), "FAIL requests.csv row 2 (REQ-3): justification"),
    ("ts-back", _edit_events("audit.jsonl", _back_in_time), "is earlier than the event before"),
    ("ts-after-the-period", _after_the_period, "is outside the pack's period"),
    ("ts-null", _set("audit.jsonl", "approval.granted", "ts", None), "ts is not a time"),
    ("ts-number", _set("audit.jsonl", "request.submitted", "ts", 1764547200), "ts is not a time"),
    ("ts-not-a-time", _set("audit.jsonl", "request.submitted", "ts", "yesterday"), "ts is not a time"),
    ("ts-bad-month", _set("audit.jsonl", "request.submitted", "ts", "2026-13-01T09:00:00.000Z"),
     "ts is not a time"),
    ("ts-arabic-digits", _set("audit.jsonl", "request.submitted", "ts", "٢٠٢٦-١١-١٠T09:00:00.000Z"),
     "ts is not a time"),
    ("actor-null", _set("audit.jsonl", "approval.granted", "actor", None), "actor is not text"),
    ("actor-list", _set("audit.jsonl", "approval.granted", "actor", ["mark.mgr@example.com"]),
     "actor is not text"),
    ("earlier-event-request-id-object", _set("audit_earlier.jsonl", "request.submitted", "request_id", {}),
     "FAIL audit_earlier.jsonl line 1 (seq 2): request_id is not text"),
    ("earlier-event-data-list", _set_data("audit_earlier.jsonl", "approval.granted", [1]),
     "FAIL audit_earlier.jsonl line 3 (seq 4): data is not a JSON object"),
    ("earlier-seq-negative", _set("audit_earlier.jsonl", "request.submitted", "seq", -5),
     "FAIL audit_earlier.jsonl line 1: seq -5"),
    # -- the CSV files (their hash and count in the manifest) --------------------------------------
    ("csv-bom", lambda f: _with_digests(f, "requests.csv", b"\xef\xbb\xbf" + f["requests.csv"]),
     "FAIL requests.csv: the header is not"),
    ("csv-missing-column", _csv("requests.csv", lambda rows: rows[1].pop()),
     "FAIL requests.csv row 1 (REQ-2): 10 cells, the header has 11"),
    ("csv-extra-column", _csv("grants.csv", lambda rows: rows[2].append("approved by the CISO")),
     "FAIL grants.csv row 2 (REQ-2): 18 cells, the header has 17"),
    ("csv-header-only", _csv("requests.csv", lambda rows: rows.__delitem__(slice(1, None))),
     "FAIL requests.csv row 1: missing REQ-2"),
    ("csv-empty", lambda f: _with_digests(f, "approvals.csv", b""), "FAIL approvals.csv"),
    ("csv-huge-cell", _csv("requests.csv", lambda rows: rows[1].__setitem__(5, "x" * 200_000)),
     "FAIL requests.csv"),
    ("csv-unclosed-quote", lambda f: _with_digests(f, "requests.csv", f["requests.csv"] + b'"REQ-9,open'),
     "FAIL requests.csv"),
    ("csv-bad-utf8", lambda f: _with_digests(f, "requests.csv", f["requests.csv"].replace(b"deploy", b"\xffeploy")),
     "FAIL requests.csv row 2 (REQ-3): justification"),
    ("csv-nul", lambda f: _with_digests(f, "requests.csv", f["requests.csv"].replace(b"deploy", b"\x00eploy")),
     "FAIL requests.csv"),
]


def _write(genuine: Files, change: Any, out: Path) -> Path:
    if change is None:
        return out.with_name("missing.zip")
    if isinstance(change, tuple) and change[0] == "bytes":
        made = change[1]
        pack = made(_zip(list(genuine.items()))) if callable(made) else made
    elif isinstance(change, tuple) and change[0] == "stored":
        pack = change[1](_zip(list(genuine.items()), zipfile.ZIP_STORED))
    else:
        members = change(dict(genuine))
        pack = _zip(list(members.items()) if isinstance(members, dict) else members)
    out.write_bytes(pack)
    return out


def test_the_genuine_pack_verifies(genuine: Files, tmp_path: Path) -> None:
    assert "audit_earlier.jsonl" in genuine and _events(genuine["audit_earlier.jsonl"])
    r = _verify(_write(genuine, lambda f: f, tmp_path / "pack.zip"))
    assert r.returncode == 0 and r.stdout.startswith("OK:"), r.stdout + r.stderr
    resealed = _verify(_write(genuine, seal, tmp_path / "resealed.zip"))
    assert resealed.returncode == 0, resealed.stdout + resealed.stderr  # sealing alone changes nothing


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_tampered_pack_gets_a_verdict(genuine: Files, tmp_path: Path, change: Any, expected: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        pack = _write(genuine, change, tmp_path / "tampered.zip")
    r = _verify(pack)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert r.returncode == 1, out
    assert r.stderr == "", out
    assert expected in r.stdout, out
    assert "OK" not in r.stdout.split("\n")[0], out


def test_request_numbers_are_ascii_digits_in_every_copy_of_the_rule() -> None:
    """The rules' request_number and its copies in the exporter's state and check agree: ASCII
    digits 0-9 after the last "-" (at most 19, a 64-bit id), 0 for anything else, never an error."""
    from bot.pack_check import verifier_module
    from handlers.evidence_check import _number as checked
    from handlers.evidence_state import _number as spilled

    expected = {"REQ-12": 12, "REQ-007": 7, "REQ-³": 0, "REQ-٣": 0, "REQ-1٣": 0, "REQ-²³": 0, "REQ-": 0, "REQ-x": 0,
                "REQ-+1": 0, "REQ--1": 1, "REQ- 1": 0, "REQ-" + "9" * 19: 10**19 - 1, "REQ-" + "9" * 20: 0,
                "REQ-" + "9" * 5000: 0, "12": 12}
    for rid, n in expected.items():
        assert (verifier_module().request_number(rid), checked(rid), spilled(rid)) == (n, n, n), rid


def test_fields_of_any_type_anywhere_get_a_verdict(genuine: Files, tmp_path: Path) -> None:
    """Seeded random values (of every JSON type, non-ASCII digits, huge numbers) in random fields of
    the manifest and of events (sealed again, or not), and random bytes of the zip changed: the
    verifier answers 0 or 1 every time and raises nothing."""
    import contextlib
    import importlib.util
    import random

    spec = importlib.util.spec_from_file_location("verify_pack_fuzzed", VERIFY)
    assert spec is not None and spec.loader is not None
    verifier = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(verifier)
    rng = random.Random(20261201)
    values = [None, 0, -1, 10**30, 1.5, "", "x", "REQ-³", "REQ-٣", [], [1], {}, {"a": {"b": []}}, True,
              "2026-13-01T00:00:00.000Z", "9999-12-31"]
    pack = tmp_path / "fuzzed.zip"
    genuine_zip = _zip(list(genuine.items()))

    def answer() -> int:
        with contextlib.redirect_stdout(io.StringIO()):
            return int(verifier.main(["verify_pack.py", str(pack)]))

    for _ in range(150):
        broken = bytearray(genuine_zip)
        for _ in range(rng.randint(1, 4)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        pack.write_bytes(bytes(broken))
        assert answer() in (0, 1)
    for _ in range(400):
        files = dict(genuine)
        which = rng.choice(["audit.jsonl", "audit_earlier.jsonl", "manifest.json"])
        if which == "manifest.json":
            m = json.loads(files[which])
            target, key = m, rng.choice(["audit", "period", "counts", "files", "signature", "rows"])
            if isinstance(m.get(key), dict) and m[key] and rng.random() < 0.7:
                target, key = m[key], rng.choice(list(m[key]))
            target[key] = rng.choice(values)
            files[which] = json.dumps(m).encode()
        else:
            events = _events(files[which])
            event = rng.choice(events)
            if rng.random() < 0.4:
                field = rng.choice(["step", "comment", "expires_at", "as_of", "auto", "rule", "requester", "reason",
                                    "extension", "provider", "group", "kind"])
                event["data"][field] = rng.choice(values)
            else:
                field = rng.choice(["seq", "ts", "type", "actor", "request_id", "profile", "data", "hash"])
                event[field] = rng.choice(values)
            files[which] = _jsonl(events)
            if rng.random() < 0.8:
                files = seal(files)
        pack.write_bytes(_zip(list(files.items())))
        assert answer() in (0, 1)


def _signed_by_nobody(signature: dict[str, Any], cert: bytes = b"not a certificate\n") -> Callable[[Files], Files]:
    """A signature block, a certificate and a signature file the hashes agree with, none of them real."""
    def tamper(files: Files) -> Files:
        files = {**files, "signing-cert.pem": cert, "manifest.json.sig": b"\x00" * 64}

        def signed(m: dict[str, Any]) -> None:
            m["files"]["signing-cert.pem"] = hashlib.sha256(cert).hexdigest()
            m["signature"] = signature
        return _digests(files, signed)
    return tamper


SIGNATURE = {"algorithm": "rsa-pkcs1v15-sha256", "subject": "CN=nobody", "certificate": "signing-cert.pem",
             "file": "manifest.json.sig", "certificate_sha256": "0" * 64}
SIGNED_CASES: list[tuple[str, Any, str]] = [
    ("certificate-not-pem", _signed_by_nobody(SIGNATURE), "FAIL cannot read the certificate"),
    ("signature-file-a-list", _signed_by_nobody({**SIGNATURE, "file": ["manifest.json.sig"]}),
     "FAIL the signature or its certificate is missing"),
    ("certificate-an-object", _signed_by_nobody({**SIGNATURE, "certificate": {"pem": "x"}}),
     "FAIL the signature or its certificate is missing"),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES + SIGNED_CASES],
                         ids=[c[0] for c in CASES + SIGNED_CASES])
def test_accessbot_evidence_verify_gives_the_same_verdict(genuine: Files, tmp_path: Path, change: Any,
                                                          expected: str) -> None:
    """``accessbot evidence verify`` (the verifier's checks, then the signature) on the same packs:
    not OK, the same FAIL line, no exception."""
    import warnings

    from bot.pack_check import check_pack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pack = _write(genuine, change, tmp_path / "tampered.zip")
    ok, lines = check_pack(pack, None)
    assert not ok and expected in "\n".join(lines), lines
