#!/usr/bin/env python3
"""Verify an accessbot evidence pack with nothing but the Python standard library.

    python3 verify_pack.py pack.zip        (or run it inside the unpacked pack's folder)
    python3 verify_pack.py pack.zip earlier-pack.zip ...   (also ties audit_earlier.jsonl to the chain)

Checks: every file's SHA-256 against manifest.json, that no file every pack holds is missing, the
CSV row counts, each policy/ file against the versions the manifest lists, and the audit chain
segment in audit.jsonl: seq without gaps from audit.first_seq, each prev_hash the hash of the
event before (the first one audit.prev_hash), and each hash = sha256(prev_hash +
canonical_json(event without "hash")), canonical JSON being json.dumps(obj, sort_keys=True,
separators=(",", ":"), ensure_ascii=False) in UTF-8; each line is exactly canonical_json(event);
each ts a time as recorded (YYYY-MM-DDTHH:MM:SS.mmmZ, UTC), inside the period and never earlier
than the event before.
Then every row of requests.csv, approvals.csv, grants.csv and exceptions.csv is derived again
from audit_earlier.jsonl and audit.jsonl (the rules below) and compared: the first file and row
that differ are named. The events of audit_earlier.jsonl (before the period) are each checked
against their own hash; what ties them to the chain is the pack's signature, or the earlier
periods' packs, whose audit.jsonl holds them with the same hash.
It says whether manifest.json is signed and how to check the signature with openssl.
Exit 0 when everything holds, 1 otherwise: a file that is no zip, a member twice in the zip or a
field of the wrong type (text where a number belongs, a list where an object does, a time that is
not one) is a FAIL like any other, naming the file and the line, row or event.
"""

from __future__ import annotations  # the annotations below on Python 3.8

import csv
import datetime
import hashlib
import io
import json
import stat
import sys
import zipfile
from pathlib import Path

SIGNATURE = "manifest.json.sig"
# deflate shrinks no pack member this much (audit lines carry hashes, rows ids and times); a zip that would
# unpack to more than this many times its compressed size, past BOMB_FLOOR bytes, is a zip bomb, refused
# before anything is unpacked (the zip's sizes bound what zipfile unpacks)
BOMB_RATIO, BOMB_FLOOR = 200, 1 << 24
OK = "OK: every file matches the manifest, the audit chain segment verifies and every row follows from its events"


def load(target: str | Path) -> dict[str, bytes]:
    """The members of a pack (a zip, or the folder it was unpacked in) by name; ValueError (or
    OSError) when it cannot be read, or when a name is twice in the zip: which copy an unzip tool or
    a spreadsheet shows differs from one to the next, and the verifier would check only one."""
    path = Path(target)
    if path.is_dir():
        return {str(p.relative_to(path)).replace("\\", "/"): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    if not stat.S_ISREG(path.stat().st_mode):  # /dev/zero reads for ever, a pipe waits for a writer for ever
        raise ValueError("not a regular file: a device, a pipe or a socket is never read")
    try:
        with zipfile.ZipFile(path) as zf:
            bomb_problem(zf.infolist())
            files = {}
            for name in (name for name in zf.namelist() if not name.endswith("/")):
                if name in files:
                    raise ValueError(f"{name} is twice in the zip")
                try:
                    files[name] = zf.read(name)
                except Exception as exc:  # a bad CRC, an unknown compression, encryption, truncated data
                    raise ValueError(f"{name}: {exc}") from exc
            return files
    except (OSError, ValueError):
        raise
    except Exception as exc:  # zipfile's own (not a zip, a broken central directory)
        raise ValueError(str(exc) or type(exc).__name__) from exc


def bomb_problem(members: list[zipfile.ZipInfo]) -> None:
    """ValueError when a member, or the members together, would unpack to more than BOMB_RATIO times their
    compressed size (and more than BOMB_FLOOR bytes)."""
    for info in members:
        if info.file_size > max(BOMB_FLOOR, BOMB_RATIO * info.compress_size):
            raise ValueError(f"{info.filename} would unpack to {info.file_size} bytes from {info.compress_size}, "
                             f"more than {BOMB_RATIO} times: no pack member shrinks so much (a zip bomb?)")
    unpacked, packed = sum(i.file_size for i in members), sum(i.compress_size for i in members)
    if unpacked > max(BOMB_FLOOR, BOMB_RATIO * packed):
        raise ValueError(f"the members would unpack to {unpacked} bytes from {packed}, more than {BOMB_RATIO} "
                         "times: no pack shrinks so much (a zip bomb?)")


def verify(files):
    problems = []
    try:
        manifest = json.loads(files["manifest.json"])
    except (KeyError, ValueError, RecursionError) as exc:
        return [f"manifest.json missing or unreadable: {exc}"]
    problem = manifest_problem(manifest)
    if problem:
        return [f"manifest.json: {problem}"]
    if manifest.get("audit", {}).get("verified") is False:  # the maker saw the chain broken
        problems.append("manifest.json: audit.verified is false: when the pack was made, the audit chain did not "
                        "verify from its first event (an event outside the period was changed), so nothing vouches "
                        "for the events of audit_earlier.jsonl or the rows they make; run accessbot audit verify")
    for name, digest in sorted(manifest.get("files", {}).items()):
        if name not in files:
            problems.append(f"{name}: listed in the manifest but missing")
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            problems.append(f"{name}: SHA-256 does not match the manifest")
    for name in sorted(set(files) - set(manifest.get("files", {})) - {"manifest.json", SIGNATURE}):
        problems.append(f"{name}: not listed in the manifest")
    derived = manifest["rows"].get("files")
    derived = [str(n) for n in derived] if isinstance(derived, list) else []
    for name in sorted({*REQUIRED, *ROW_FILES, *derived} - set(files)):
        problems.append(f"{name}: missing (every pack holds it)")
    problems += policy_problems(files, manifest)
    signature = manifest.get("signature")
    if signature is not None and SIGNATURE not in files:
        problems.append(f"{SIGNATURE}: manifest.json says the pack is signed, but the signature file is missing")
    if signature is None and SIGNATURE in files:
        problems.append(f"{SIGNATURE}: a signature file, but manifest.json does not say who signed it")
    for name, rows in sorted(manifest.get("counts", {}).items()):
        data = files.get(name, b"").decode("utf-8", "replace")
        if name.endswith(".csv"):
            try:
                found = len(csv_rows(data)) - 1
            except csv.Error as exc:
                problems.append(f"{name}: not a CSV file ({exc})")
                continue
        else:
            found = len([x for x in data.split("\n") if x])
        if found != rows:
            problems.append(f"{name}: {found} rows, the manifest says {rows!r}")
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
    start, after = period_bounds(manifest["period"])
    period = f"{manifest['period']['from']} to {manifest['period']['to']}"
    last_ts = ""
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            problems.append(f"audit.jsonl line {number}: not JSON")
            break
        if not isinstance(event, dict):
            problems.append(f"audit.jsonl line {number}: not a JSON object")
            break
        body = {k: v for k, v in event.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if event.get("seq") != seq:
            problems.append(f"audit.jsonl line {number}: seq {event.get('seq')}, expected {seq}")
            break
        if event.get("prev_hash") != prev:
            problems.append(f"audit.jsonl seq {seq}: prev_hash does not match the event before")
            break
        if line != canonical_line(event):
            problems.append(f"audit.jsonl line {number}: not in canonical form (§3.5), so its bytes may say "
                            "other than what its hash covers (a key twice, spacing, escapes)")
            break
        if hashlib.sha256((prev + canonical).encode("utf-8")).hexdigest() != event.get("hash"):
            problems.append(f"audit.jsonl seq {seq}: hash does not match its content")
            break
        ts = event.get("ts")
        if is_time(ts):  # one that is not is named with the event's other fields, below
            if ts < last_ts:
                problems.append(f"audit.jsonl seq {seq}: ts {ts} is earlier than the event before ({last_ts}): "
                                "events are recorded in time order, so the period's events are not one segment "
                                "of the chain")
                break
            if not start <= ts < after:
                problems.append(f"audit.jsonl seq {seq}: ts {ts} is outside the pack's period ({period})")
                break
            last_ts = ts
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
REQUIRED = ("audit.jsonl", "audit_earlier.jsonl", "removals.csv")  # with ROW_FILES, in every pack
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
    start = datetime.date.fromisoformat(period["from"])
    after = datetime.date.fromisoformat(period["to"]) + datetime.timedelta(days=1)
    return f"{start.isoformat()}T00:00:00.000Z", f"{after.isoformat()}T00:00:00.000Z"


def request_number(request_id: object) -> int:
    """The digits after the last "-" (ASCII 0-9, at most 19: a 64-bit id), 0 without them."""
    digits = str(request_id).rpartition("-")[2]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 19 else 0


# -- what each field must be, so that the rules can read it ---------------------------------------

def manifest_problem(manifest: object) -> str | None:
    """Why manifest.json cannot be read (a field of the wrong type), or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    for field in ("files", "counts", "audit"):
        if not isinstance(manifest.get(field, {}), dict):
            return f"{field} is not a JSON object"
    if not isinstance(manifest.get("audit", {}).get("first_seq"), (int, type(None))):
        return "audit.first_seq is not a number"
    if not isinstance(manifest.get("audit", {}).get("verified", False), bool):
        return "audit.verified is not true or false"
    if not isinstance(manifest.get("signature", {}), (dict, type(None))):
        return "signature is not a JSON object"
    if not isinstance(manifest.get("rows"), dict):
        return "no rows block: nothing would check that the CSV rows follow from the audit events"
    if not isinstance(manifest.get("policy_versions", []), list) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in manifest.get("policy_versions", [])):
        return "policy_versions is not a list of {version, sha256}"
    period = manifest.get("period")
    if not (isinstance(period, dict) and is_date(period.get("from")) and is_date(period.get("to"))):
        return f"period is not two dates (YYYY-MM-DD): {period!r}"
    return None


def is_date(text: object) -> bool:
    """Whether `text` is a date as YYYY-MM-DD (ASCII digits), before the last one Python knows."""
    if not (isinstance(text, str) and len(text) == 10 and text.isascii() and all(
            c.isdigit() if t == "9" else c == t for c, t in zip(text, "9999-99-99"))):  # noqa: B905
        return False
    try:
        return datetime.date.fromisoformat(text) < datetime.date.max
    except ValueError:
        return False


def is_time(ts: object) -> bool:
    """Whether `ts` is an instant as accessbot records them: YYYY-MM-DDTHH:MM:SS.mmmZ (UTC, ASCII digits)."""
    if not (isinstance(ts, str) and len(ts) == 24 and ts.isascii() and all(
            c.isdigit() if t == "9" else c == t for c, t in zip(ts, "9999-99-99T99:99:99.999Z"))):  # noqa: B905
        return False
    try:
        datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def event_problem(event: object) -> str | None:
    """Why the rules cannot read an audit event (a field of the wrong type), or None."""
    if not isinstance(event, dict):
        return "not a JSON object"
    if not isinstance(event.get("type"), str):
        return "type is not text"
    if not isinstance(event.get("actor"), str):
        return "actor is not text"
    if not isinstance(event.get("request_id"), (str, type(None))):
        return "request_id is not text"
    if not isinstance(event.get("data"), (dict, type(None))):
        return "data is not a JSON object"
    if not is_time(event.get("ts")):
        return f"ts is not a time (YYYY-MM-DDTHH:MM:SS.mmmZ): {event.get('ts')!r}"
    return None


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


# -- removals.csv, derived from the audit events -------------------------------------------------------
# every removal not caused by a grant's own expiry, release or revoke, with the hours from detection to
# removal. accessbot writes removals.csv with this very class: the events before the period it reads
# (REMOVAL_CONTEXT) come from audit_earlier.jsonl, then every event of audit.jsonl of REMOVAL_TYPES.

REMOVAL_COLUMNS = ["user", "provider", "group", "reason", "request_id", "detected_at", "removed_at", "hours"]
REMOVAL_TYPES = frozenset({"user.terminated", "grant.revoked", "membership.removed", "drift.detected",
                           "request.submitted", "automation.paused", "automation.resumed"})
# events before a period that say whose grant a removal in it ends, and when it was found
REMOVAL_CONTEXT = frozenset({"request.submitted", "user.terminated", "drift.detected"})
GRANT_REASONS = ("terminated", "ineligible", "review")  # a grant revoked for one of these is a removal


def _at(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _removal_ts(moment):
    """UTC, ISO 8601 with milliseconds and Z, as accessbot records instants."""
    moment = moment.astimezone(datetime.timezone.utc)  # noqa: UP017 (datetime.UTC is Python 3.11+)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class RemovalRows:
    """Fed the audit events in order; ``rows`` are the removals seen so far."""

    def __init__(self, limit=100_000):
        self.rows = []
        self.limit = limit
        self._detected = {}  # user -> when the first sweep saw them inactive
        self._grant_user = {}  # REQ-n -> the leaver holding it
        self._drift = {}  # (provider, group, user) -> detected_at
        self._held_since = {}  # reason -> when the safety brake first held removals of it
        self._to_release = {}  # reason -> held removals a resume let through, not yet seen

    def event(self, event):
        data = event.get("data") or {}
        kind, ts = event["type"], event["ts"]
        if kind == "request.submitted" and event.get("request_id"):  # whose grant it will be (a drift accept is
            # filed by the security team for the member: ``requester``)
            self._grant_user[str(event["request_id"])] = str(data.get("requester") or event.get("actor") or "")
        elif kind == "automation.paused":
            self._held_since.setdefault(str(data.get("reason")), ts)
        elif kind == "automation.resumed":
            reason = str(data.get("reason"))
            if data.get("count"):  # a resume: the next ``count`` removals of that reason are the ones held
                self._to_release[reason] = int(data["count"])
            else:  # the pause ended by itself: what it held vanished
                self._held_since.pop(reason, None)
                self._to_release.pop(reason, None)
        elif kind == "user.terminated":
            user = str(data.get("user"))
            inactive = datetime.timedelta(hours=float(data.get("inactive_hours") or 0))
            self._detected[user] = _removal_ts(_at(ts) - inactive)
            for ref in data.get("grants") or []:
                self._grant_user[ref] = user
        elif kind == "drift.detected" and data.get("member", True):
            self._drift[(str(data.get("provider")), str(data.get("group")), str(data.get("user")))] = ts
        elif kind == "grant.revoked" and str(data.get("reason", "")).split(":")[0] in GRANT_REASONS:
            user = self._grant_user.get(event.get("request_id") or "", "")
            reason = str(data.get("reason")).split(":")[0]
            detected = self._detected.get(user, "") if reason == "terminated" else \
                self._held_since.get(reason, ts) if reason == "ineligible" else ""  # a mover: found by the sweep
            # that revokes it, or by the first one the brake held it at
            self._add(user, data, reason, event.get("request_id") or "", detected, ts)
            if reason in self._to_release:
                self._to_release[reason] -= 1
                if self._to_release[reason] <= 0:  # what the pause held has run
                    self._to_release.pop(reason)
                    self._held_since.pop(reason, None)
        elif kind == "membership.removed":
            user = str(data.get("user"))
            reason = str(data.get("reason"))
            detected = self._detected.get(user, "") if reason == "terminated" else self._drift.get(
                (str(data.get("provider")), str(data.get("group")), user), "") if reason == "drift" else ""
            self._add(user, data, reason, str(data.get("request_id") or ""), detected, ts)

    def _add(self, user, data, reason, request_id, detected, removed):
        if len(self.rows) >= self.limit:
            return
        hours = f"{(_at(removed) - _at(detected)).total_seconds() / 3600:.2f}" if detected else ""
        self.rows.append({"user": cell(user), "provider": cell(data.get("provider", "")),
                          "group": cell(data.get("group", "")), "reason": cell(reason),
                          "request_id": cell(request_id), "detected_at": detected, "removed_at": removed,
                          "hours": hours})


def read_events(files, name, problems):
    """The events of a .jsonl member (lines end with "\n" alone), None when one is not JSON or
    has a field the rules cannot read."""
    lines = files.get(name, b"").decode("utf-8", "replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    events = []
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            problems.append(f"{name} line {number}: not JSON")
            return None
        problem = event_problem(event)
        if not problem and line != canonical_line(event):
            problem = "not in canonical form (§3.5), so its bytes may say other than what its hash covers"
        if problem:
            where = f"line {number}" if not isinstance(event, dict) else f"line {number} (seq {event.get('seq')})"
            problems.append(f"{name} {where}: {problem}")
            return None
        events.append(event)
    return events


def csv_rows(text: str) -> list[list[str]]:
    """The rows of a CSV file; csv.Error when it is not one (e.g. a cell longer than csv allows)."""
    return list(csv.reader(io.StringIO(text)))


def canonical_line(event):
    """The one way an event is written (§3.5): sorted keys, no spaces, UTF-8 as is."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def policy_problems(files, manifest):
    """Each policy/ file is a version the manifest lists, byte for byte (its SHA-256), each listed version
    is there, and every request and grant row names one of them (checked in verify_rows)."""
    problems = []
    listed = {v["sha256"]: v for v in manifest.get("policy_versions", [])}
    held = set()
    for name in sorted(n for n in files if n.startswith("policy/")):
        digest = hashlib.sha256(files[name]).hexdigest()
        if digest not in listed:
            problems.append(f"{name}: its SHA-256 is not one of the manifest's policy_versions")
        elif not name.endswith(f"-{digest[:12]}.yaml"):
            problems.append(f"{name}: its name does not end with its SHA-256 ({digest[:12]})")
        held.add(digest)
    for sha in sorted(set(listed) - held):
        problems.append(f"policy/: version {listed[sha].get('version')} ({sha[:12]}) is listed but not in the pack")
    return problems


def self_hash_ok(event):
    body = {k: v for k, v in event.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((str(event.get("prev_hash")) + canonical).encode("utf-8")).hexdigest() == event.get("hash")


def verify_rows(files, manifest):
    """Problems: the first row of each CSV file that the audit events do not give."""
    problems = []
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
    listed = {v["sha256"] for v in manifest.get("policy_versions", [])}
    for name in ("requests.csv", "grants.csv"):
        for row in derived[name]:
            if row["policy_sha256"] and row["policy_sha256"] not in listed:
                problems.append(f"{name} {row['request_id']}: policy {row['policy_sha256'][:12]} is not in policy/")
                break
    removals = RemovalRows()
    try:
        for event in earlier:
            if event.get("type") in REMOVAL_CONTEXT:
                removals.event(event)
        for event in events:
            if event.get("type") in REMOVAL_TYPES:
                removals.event(event)
    except (ValueError, TypeError, OverflowError) as exc:  # a field the rules cannot read
        return [*problems, f"removals.csv: the audit events cannot be read for it ({exc})"]
    derived["removals.csv"] = removals.rows
    for name, columns in {**ROW_FILES, "removals.csv": REMOVAL_COLUMNS}.items():
        if name not in files:
            continue
        try:
            found = csv_rows(files[name].decode("utf-8", "replace"))
        except csv.Error as exc:
            problems.append(f"{name}: not a CSV file ({exc})")
            continue
        if not found or found[0] != columns:
            problems.append(f"{name}: the header is not {','.join(columns)}")
            continue
        problem = first_difference(name, columns, found[1:], derived[name])
        if problem:
            problems.append(problem)
    return problems


def first_difference(name, columns, found, derived):
    cells = [len(row) for row in found]
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
        if cells[number - 1] != len(columns):
            return f"{name} row {number} ({rid}): {cells[number - 1]} cells, the header has {len(columns)}"
        for column in columns:
            if got.get(column, "") != want[column]:
                return (f"{name} row {number} ({rid}): {column} is {got.get(column)!r}, "
                        f"the audit events give {want[column]!r}")
    if len(found) > len(derived):
        return f"{name} row {len(derived) + 1} ({found[len(derived)].get('request_id')}): not in the audit events"
    if len(derived) > len(found):
        return f"{name} row {len(found) + 1}: missing {derived[len(found)]['request_id']}, which the audit events hold"
    return None

def tie_earlier(files, earlier):
    """(problems, notes): audit_earlier.jsonl's events against the chain segments of the earlier packs
    given (name, files). Only the packs whose segments run unbroken back from this pack's
    audit.prev_hash tie anything: each segment verified, its head_hash the prev_hash of the next.
    Over the stretch of the chain they cover, audit_earlier.jsonl must also hold every event of each
    request the pack concerns (one with an event in the period, or holding a grant when it began):
    an event left out would change the rows derived from them."""
    problems, segments = [], []
    for name, other in earlier:
        found = verify(other)
        if found:
            problems.append(f"{name}: does not verify ({found[0]})")
            continue
        audit = json.loads(other["manifest.json"]).get("audit", {})
        if all(isinstance(audit.get(k), int) and not isinstance(audit.get(k), bool) for k in ("first_seq", "last_seq")):
            segments.append((name, audit, read_events(other, "audit.jsonl", []) or []))
    events = read_events(files, "audit_earlier.jsonl", []) or []
    if problems or not (events or earlier):
        return problems, []
    audit = json.loads(files["manifest.json"]).get("audit", {})
    first = audit.get("first_seq")  # None: no event in the period, nothing to run back from
    want_last, want_head = (first - 1 if isinstance(first, int) else None), audit.get("prev_hash")
    known, covered, used = {}, [], set()
    for name, other, lines in sorted(segments, key=lambda x: -x[1]["last_seq"]):
        if other["last_seq"] == want_last and other["head_hash"] == want_head:
            known.update({e["seq"]: (e["hash"], name) for e in lines})
            covered[:0] = lines
            used.add(name)
            want_last, want_head = other["first_seq"] - 1, other["prev_hash"]
    unlinked = [(name, other) for name, other, _ in segments if name not in used]
    unlinked += [(name, None) for name, _ in earlier if name not in used and all(name != n for n, _, _ in segments)]
    tied = 0
    for event in events:
        if event["seq"] in known:
            digest, name = known[event["seq"]]
            if digest != event.get("hash"):
                problems.append(f"audit_earlier.jsonl seq {event['seq']}: differs from that event in {name}")
                return problems, []
            tied += 1
    # the requests the pack concerns, as the exporter chose them, over the stretch the earlier packs cover
    period = read_events(files, "audit.jsonl", []) or []
    concerned = {e.get("request_id") for e in period + events if e.get("request_id")}
    holding = set()
    for e in covered:
        if e.get("type") == "grant.provisioned" and e.get("request_id"):
            holding.add(e["request_id"])
        elif e.get("type") in ENDED:
            holding.discard(e.get("request_id"))
    concerned |= holding
    have = {e["seq"] for e in events}
    for e in covered:
        if e.get("request_id") in concerned and e["seq"] not in have:
            problems.append(f"audit_earlier.jsonl lacks seq {e['seq']} ({e.get('request_id')} {e.get('type')}), "
                            f"which {known[e['seq']][1]} holds: the rows would be derived without it")
            return problems, []
    notes = [f"audit_earlier.jsonl: {len(events)} events from before the period, each checked against its own hash"]
    if covered:
        notes.append(f"  the earlier packs given run unbroken back to seq {covered[0]['seq']}: every event of the "
                     "requests concerned since then is in audit_earlier.jsonl")
    if tied == len(events):
        if events:
            notes.append("  all of them are in the earlier packs given")
    else:
        notes.append(f"  {len(events) - tied} of them not tied to the chain: the pack's signature vouches for them,"
                     " or give the packs of the periods before, back to the oldest: verify_pack.py PACK.zip"
                     " EARLIER.zip ...")
    for name, other in unlinked:
        span = f" (seq {other['first_seq']}-{other['last_seq']})" if other else " (no chain segment)"
        notes.append(f"  {name}{span} ties nothing: it does not run back unbroken from this pack (seq "
                     f"{want_last if want_last is not None else '?'} and before are wanted next): give the packs "
                     "between, or it is not an earlier pack of this chain")
    if want_last is not None and want_last > 0:
        notes.append(f"  events before seq {want_last + 1} are not checked for completeness (no earlier pack "
                     "given covers them); the signature vouches for the whole pack")
    return problems, notes


def signature_note(files):
    """What an auditor needs to know about the signature, which the standard library cannot check."""
    signature = json.loads(files["manifest.json"]).get("signature")
    if signature is None:
        return ["signature: none (this pack is not signed)"]
    cert = signature.get("certificate", "signing-cert.pem")
    return [
        f"signature: present ({SIGNATURE}, {signature.get('algorithm')}, signed by {signature.get('subject')}, "
        f"certificate sha256 {signature.get('certificate_sha256')}).",
        "  Python's standard library cannot check RSA or ECDSA signatures; in the unpacked pack's folder run:",
        f"    openssl x509 -in {cert} -pubkey -noout -out ../signing-key.pub",
        f"    openssl dgst -sha256 -verify ../signing-key.pub -signature {SIGNATURE} manifest.json",
        "  (it prints 'Verified OK'; the key goes outside the folder, where no file the manifest does not list may",
        "  be), or `accessbot evidence verify PACK.zip --cert YOUR-COPY-OF-THE-CERT.pem`;",
        f"  and compare `openssl x509 -in {cert} -noout -fingerprint -sha256` with the fingerprint your",
        "  organisation published: a pack re-signed with another key carries another certificate.",
    ]


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else "."
    earlier = []
    for name in [target, *argv[2:]]:
        try:
            earlier.append((name, load(name)))
        except (OSError, ValueError) as exc:
            print(f"FAIL cannot read {name}: {exc}")
            return 1
    files = earlier.pop(0)[1]
    problems = verify(files)
    notes = []
    if not problems:
        problems, notes = tie_earlier(files, earlier)
    for p in problems:
        print("FAIL", p)
    if problems:
        return 1
    print(OK)
    print("\n".join([*notes, *signature_note(files)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
