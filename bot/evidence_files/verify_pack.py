#!/usr/bin/env python3
"""Verify an accessbot evidence pack with nothing but the Python standard library.

    python3 verify_pack.py pack.zip        (or run it inside the unpacked pack's folder)

Checks: every file's SHA-256 against manifest.json, the CSV row counts, and the audit chain
segment in audit.jsonl: seq without gaps from audit.first_seq, each prev_hash the hash of the
event before (the first one audit.prev_hash), and each hash = sha256(prev_hash +
canonical_json(event without "hash")), canonical JSON being json.dumps(obj, sort_keys=True,
separators=(",", ":"), ensure_ascii=False) in UTF-8. Exit 0 when everything holds, 1 otherwise.
"""

import csv
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

SIGNATURE = "manifest.json.sig"


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
    return problems


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
    print("OK: every file matches the manifest and the audit chain segment verifies")
    print("\n".join(signature_note(files)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
