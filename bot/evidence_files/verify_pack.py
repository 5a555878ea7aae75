#!/usr/bin/env python3
"""Verify an accessbot evidence pack with nothing but the Python standard library.

    python3 verify_pack.py pack.zip        (or run it inside the unpacked pack's folder)

Checks: every file's SHA-256 against manifest.json, the CSV row counts, and the audit chain
segment in audit.jsonl: seq without gaps from audit.first_seq, each prev_hash the hash of the
event before (the first one audit.prev_hash), and each hash = sha256(prev_hash +
canonical_json(event without "hash")), canonical JSON being json.dumps(obj, sort_keys=True,
separators=(",", ":"), ensure_ascii=False) in UTF-8. Then every row of requests.csv,
approvals.csv, grants.csv and exceptions.csv is derived again from audit_earlier.jsonl and
audit.jsonl (the rules below) and compared: the first file and row that differ are named.
It says whether manifest.json is signed and how to check the signature with openssl.
Exit 0 when everything holds, 1 otherwise.
"""

import csv
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

SIGNATURE = "manifest.json.sig"
OK = "OK: every file matches the manifest, the audit chain segment verifies and every row follows from its events"


def load(target):
    path = Path(target)
    if path.is_dir():
        return {str(p.relative_to(path)).replace("\\", "/"): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist() if not name.endswith("/")}


def verify(files):
    problems = []
    try:
        manifest = json.loads(files["manifest.json"])
    except (KeyError, ValueError) as exc:
        return [f"manifest.json missing or unreadable: {exc}"]
    for name, digest in sorted(manifest.get("files", {}).items()):
        if name not in files:
            problems.append(f"{name}: listed in the manifest but missing")
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            problems.append(f"{name}: SHA-256 does not match the manifest")
    for name in sorted(set(files) - set(manifest.get("files", {})) - {"manifest.json", SIGNATURE}):
        problems.append(f"{name}: not listed in the manifest")
    signature = manifest.get("signature")
    if signature is not None and SIGNATURE not in files:
        problems.append(f"{SIGNATURE}: manifest.json says the pack is signed, but the signature file is missing")
    if signature is None and SIGNATURE in files:
        problems.append(f"{SIGNATURE}: a signature file, but manifest.json does not say who signed it")
    for name, rows in sorted(manifest.get("counts", {}).items()):
        data = files.get(name, b"").decode("utf-8", "replace")
        if name.endswith(".csv"):
            found = sum(1 for _ in csv.reader(io.StringIO(data))) - 1
        else:
            found = len([x for x in data.split("\n") if x])
        if found != rows:
            problems.append(f"{name}: {found} rows, the manifest says {rows}")
    audit = manifest.get("audit", {})
    prev = audit.get("prev_hash")
    seq = audit.get("first_seq")
    last = None
    # lines end with "\n" alone: str.splitlines() would also split at U+2028 or U+0085 inside a string
    lines = files.get("audit.jsonl", b"").decode("utf-8", "replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    if lines and not (isinstance(prev, str) and isinstance(seq, int)):
        return [*problems, "manifest.json: audit.prev_hash or audit.first_seq missing"]
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except ValueError:
            problems.append(f"audit.jsonl line {number}: not JSON")
            break
        body = {k: v for k, v in event.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if event.get("seq") != seq:
            problems.append(f"audit.jsonl line {number}: seq {event.get('seq')}, expected {seq}")
            break
        if event.get("prev_hash") != prev:
            problems.append(f"audit.jsonl seq {seq}: prev_hash does not match the event before")
            break
        if hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest() != event.get("hash"):
            problems.append(f"audit.jsonl seq {seq}: hash does not match its content")
            break
        prev, last = event["hash"], seq
        seq += 1
    if not problems:
        if last != audit.get("last_seq"):
            problems.append(f"audit.jsonl ends at seq {last}, the manifest says {audit.get('last_seq')}")
        if prev != audit.get("head_hash"):
            problems.append("audit.jsonl head hash differs from the manifest's head_hash")
    if not problems:
        problems += verify_rows(files, manifest)
    return problems


# -- the CSV rows, derived from the audit events ---------------------------------------------------
# accessbot writes requests.csv, approvals.csv, grants.csv and exceptions.csv with these very rules
# (its exporter loads this file), from audit_earlier.jsonl (the events before the period of every
# request the pack concerns) followed by audit.jsonl. Times are the events' own `ts`, when they
# were recorded; `ended_as_of` is the instant a sweep judged an expiry as of (`data.as_of`), when
# that was another instant than the recording time.

REQUEST_COLUMNS = ["request_id", "requester", "profile", "kind", "duration", "justification", "ticket", "state",
                   "submitted_at", "policy_version", "policy_sha256"]
APPROVAL_COLUMNS = ["request_id", "step", "approver", "decision", "comment", "decided_at", "round",
                    "policy_version", "policy_sha256"]
GRANT_COLUMNS = ["request_id", "user", "profile", "provider", "group", "started_at", "expires_at", "ended_at",
                 "end_reason", "policy_version", "policy_sha256", "ended_as_of", "kind", "approved_by",
                 "auto_approved", "justification", "extensions"]
EXCEPTION_COLUMNS = [*REQUEST_COLUMNS, "approvers"]
ROW_FILES = {"requests.csv": REQUEST_COLUMNS, "approvals.csv": APPROVAL_COLUMNS, "grants.csv": GRANT_COLUMNS,
             "exceptions.csv": EXCEPTION_COLUMNS}
ENDED = {"grant.expired": "expired", "grant.released": "released", "grant.revoked": "revoked"}
# events that make a row even when the pack does not hold the request's submission
KEEPS_UNKNOWN = frozenset({"approval.granted", "approval.denied", "grant.provisioned", *ENDED})
# every event type the rules read
FOLDED = frozenset({"request.submitted", "request.extension_requested", "request.approved", "grant.extended",
                    "request.denied", "request.cancelled", "request.failed", "grant.provision_failed",
                    *KEEPS_UNKNOWN})


def cell(value):
    """A CSV cell: nothing is empty; a spreadsheet must not run a formula someone typed in a field."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def period_bounds(period):
    """(first instant, first instant after) of a manifest's period, as `ts` strings."""
    import datetime

    start = datetime.date.fromisoformat(period["from"])
    after = datetime.date.fromisoformat(period["to"]) + datetime.timedelta(days=1)
    return f"{start.isoformat()}T00:00:00.000Z", f"{after.isoformat()}T00:00:00.000Z"


def request_number(request_id):
    digits = str(request_id).rpartition("-")[2]
    return int(digits) if digits.isdigit() else 0


class Rows:
    """Folds audit events, in seq order, into the CSV rows of a period [start, end)."""

    def __init__(self, start, end):
        self.start, self.end = start, end
        self.requests = {}

    def _request(self, rid):
        r = self.requests.get(rid)
        if r is None:  # a request whose submission the pack does not hold: its fields stay empty
            r = self.requests[rid] = {"request_id": rid, "state": "", "round": 0, "approvers": [], "first": [],
                                      "auto": "", "extensions": 0}
        return r

    def feed(self, event):
        """Take one event; returns the approvals.csv row it makes, if any."""
        rid, kind = event.get("request_id"), event.get("type")
        if not rid or not kind:
            return None
        data = event.get("data") or {}
        ts = event.get("ts")
        if kind == "request.submitted":
            r = self._request(rid)
            r.update(requester=data.get("requester") or event.get("actor"), profile=event.get("profile"),
                     kind=data.get("kind"), duration=data.get("duration"), justification=data.get("justification"),
                     ticket=data.get("ticket"), state="pending", submitted_at=ts,
                     policy_version=data.get("policy_version"), policy_sha256=data.get("policy_sha256"))
            return None
        if rid not in self.requests and kind not in KEEPS_UNKNOWN:
            return None  # e.g. a refused `status REQ-n`: no request behind it
        r = self._request(rid)
        if kind in ("approval.granted", "approval.denied"):
            approved = kind == "approval.granted"
            if approved:
                r["approvers"].append(event.get("actor"))
                if r["round"] == 0:
                    r["first"].append(event.get("actor"))
            if not self.start <= ts < self.end:
                return None
            return {"request_id": rid, "step": cell(data.get("step")), "approver": cell(event.get("actor")),
                    "decision": "approved" if approved else "denied", "comment": cell(data.get("comment")),
                    "decided_at": cell(ts), "round": str(r["round"]), "policy_version": cell(r.get("policy_version")),
                    "policy_sha256": cell(r.get("policy_sha256"))}
        if kind == "request.extension_requested":
            r["round"] += 1
        elif kind == "request.approved":
            r["state"] = "approved"
            if data.get("auto"):
                r["auto"] = data.get("rule") or "auto_approve"
        elif kind == "grant.provisioned":
            r.update(state="active", started_at=ts, expires_at=data.get("expires_at"), provider=data.get("provider"),
                     group=data.get("group"))
        elif kind == "grant.extended":
            r["expires_at"] = data.get("expires_at")
            r["extensions"] += 1
        elif kind in ENDED:
            reason = ENDED[kind]
            if kind == "grant.revoked" and data.get("reason") == "terminated":
                reason = "terminated"
            r.update(state=ENDED[kind], ended_at=ts, ended_as_of=data.get("as_of"), end_reason=reason)
        elif kind == "request.denied":
            r["state"] = "denied"
        elif kind in ("request.cancelled", "request.failed") and not data.get("extension"):
            r["state"] = "cancelled" if kind == "request.cancelled" else "failed"
        elif kind == "grant.provision_failed":
            r["state"] = "failed"
        return None

    def _ordered(self):
        return sorted(self.requests.values(), key=lambda r: request_number(r["request_id"]))

    def request_rows(self, kind=None):
        for r in self._ordered():
            submitted = r.get("submitted_at")
            if submitted and self.start <= submitted < self.end and (kind is None or r.get("kind") == kind):
                row = {c: cell(r.get(c)) for c in REQUEST_COLUMNS}
                if kind is not None:
                    row["approvers"] = cell(";".join(r["approvers"]))
                yield row

    def grant_rows(self):
        for r in self._ordered():
            started, ended = r.get("started_at"), r.get("ended_at")
            if not started or started >= self.end or (ended and ended < self.start):
                continue
            row = {c: cell(r.get(c)) for c in GRANT_COLUMNS}
            row.update(user=cell(r.get("requester")), approved_by=cell(";".join(dict.fromkeys(r["first"]))),
                       auto_approved=cell(r["auto"]), extensions=str(r["extensions"]))
            yield row


def read_events(files, name, problems):
    """The events of a .jsonl member (lines end with "\n" alone), None when one is not JSON."""
    lines = files.get(name, b"").decode("utf-8", "replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    events = []
    for number, line in enumerate(lines, start=1):
        try:
            events.append(json.loads(line))
        except ValueError:
            problems.append(f"{name} line {number}: not JSON")
            return None
    return events


def self_hash_ok(event):
    body = {k: v for k, v in event.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((str(event.get("prev_hash")) + canonical).encode("utf-8")).hexdigest() == event.get("hash")


def verify_rows(files, manifest):
    """Problems: the first row of each CSV file that the audit events do not give."""
    problems = []
    if "rows" not in manifest:
        return problems  # a pack made before the rows were derived from the events
    audit = manifest.get("audit", {})
    earlier = read_events(files, "audit_earlier.jsonl", problems)
    events = read_events(files, "audit.jsonl", problems)
    if earlier is None or events is None:
        return problems
    last = 0
    for number, event in enumerate(earlier, start=1):
        seq = event.get("seq")
        if not isinstance(seq, int) or seq <= last or seq >= (audit.get("first_seq") or seq + 1):
            return [f"audit_earlier.jsonl line {number}: seq {seq} is out of order or not before the period"]
        if not self_hash_ok(event):
            return [f"audit_earlier.jsonl seq {seq}: hash does not match its content"]
        if seq + 1 == audit.get("first_seq") and event.get("hash") != audit.get("prev_hash"):
            return [f"audit_earlier.jsonl seq {seq}: hash differs from the manifest's audit.prev_hash"]
        last = seq
    start, end = period_bounds(manifest["period"])
    rows = Rows(start, end)
    for event in earlier:
        rows.feed(event)
    approvals = [row for row in (rows.feed(event) for event in events) if row is not None]
    derived = {"requests.csv": list(rows.request_rows()), "approvals.csv": approvals,
               "grants.csv": list(rows.grant_rows()), "exceptions.csv": list(rows.request_rows("exception"))}
    for name, columns in ROW_FILES.items():
        if name not in files:
            continue
        found = list(csv.reader(io.StringIO(files[name].decode("utf-8", "replace"))))
        if not found or found[0] != columns:
            problems.append(f"{name}: the header is not {','.join(columns)}")
            continue
        problem = first_difference(name, columns, found[1:], derived[name])
        if problem:
            problems.append(problem)
    return problems


def first_difference(name, columns, found, derived):
    found = [dict(zip(columns, row)) for row in found]  # noqa: B905 (Python 3.8 has no strict)
    got_ids = {row.get("request_id") for row in found}
    want_ids = {row["request_id"] for row in derived}
    for number, (got, want) in enumerate(zip(found, derived), start=1):  # noqa: B905
        rid = got.get("request_id")
        if rid != want["request_id"]:
            if want["request_id"] not in got_ids:
                return f"{name} row {number}: missing {want['request_id']}, which the audit events hold"
            if rid not in want_ids:
                return f"{name} row {number} ({rid}): not in the audit events"
            return f"{name} row {number} ({rid}): the audit events give {want['request_id']} here"
        for column in columns:
            if got.get(column, "") != want[column]:
                return (f"{name} row {number} ({rid}): {column} is {got.get(column)!r}, "
                        f"the audit events give {want[column]!r}")
    if len(found) > len(derived):
        return f"{name} row {len(derived) + 1} ({found[len(derived)].get('request_id')}): not in the audit events"
    if len(derived) > len(found):
        return f"{name} row {len(found) + 1}: missing {derived[len(found)]['request_id']}, which the audit events hold"
    return None

def signature_note(files):
    """What an auditor needs to know about the signature, which the standard library cannot check."""
    signature = json.loads(files["manifest.json"]).get("signature")
    if signature is None:
        return ["signature: none (this pack is not signed)"]
    cert = signature.get("certificate", "signing-cert.pem")
    return [
        f"signature: present ({SIGNATURE}, {signature.get('algorithm')}, signed by {signature.get('subject')}, "
        f"certificate sha256 {signature.get('certificate_sha256')}).",
        "  Python's standard library cannot check RSA or ECDSA signatures; in the unpacked pack run:",
        f"    openssl x509 -in {cert} -pubkey -noout -out signing-key.pub",
        f"    openssl dgst -sha256 -verify signing-key.pub -signature {SIGNATURE} manifest.json",
        "  (it prints 'Verified OK'), or `accessbot evidence verify PACK.zip --cert YOUR-COPY-OF-THE-CERT.pem`;",
        f"  and compare `openssl x509 -in {cert} -noout -fingerprint -sha256` with the fingerprint your",
        "  organisation published: a pack re-signed with another key carries another certificate.",
    ]


def main(argv):
    target = argv[1] if len(argv) > 1 else "."
    files = load(target)
    problems = verify(files)
    for p in problems:
        print("FAIL", p)
    if problems:
        return 1
    print(OK)
    print("\n".join(signature_note(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
