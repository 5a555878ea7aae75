"""``accessbot evidence verify PACK``: what verify_pack.py checks, and the signature it cannot check."""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from bot.signing import CERTIFICATE_FILE, SIGNATURE_FILE, check_signature, fingerprint

VERIFIER = Path(__file__).resolve().parent / "evidence_files" / "verify_pack.py"


@functools.cache
def verifier_module() -> ModuleType:
    """verify_pack.py, the stand-alone verifier shipped in every pack, as a module: its rules also
    derive the rows the exporter writes."""
    spec = importlib.util.spec_from_file_location("accessbot_verify_pack", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_pack(pack: Path, cert: Path | None, earlier: Sequence[Path] = ()) -> tuple[bool, list[str]]:
    """(ok, lines to print). With ``cert``, the pack must be signed by exactly that certificate; ``earlier``
    packs tie the events before the period (audit_earlier.jsonl) to the chain."""
    verifier = verifier_module()
    given = []
    for path in (pack, *earlier):
        try:
            given.append((str(path), verifier.load(path)))
        except (OSError, ValueError) as exc:
            return False, [f"FAIL cannot read {path}: {exc}"]
    files = given.pop(0)[1]
    problems = verifier.verify(files)
    notes: list[str] = []
    if not problems:
        problems, notes = verifier.tie_earlier(files, given)
    lines = [f"FAIL {p}" for p in problems]
    if not problems:
        lines += [verifier.OK, *notes]
    try:
        manifest = json.loads(files["manifest.json"])
    except (KeyError, ValueError, RecursionError):
        manifest = None
    if verifier.manifest_problem(manifest) is not None:
        return False, lines  # the verifier said what is wrong with manifest.json
    signature = manifest.get("signature")
    if signature is None:
        if cert is not None:
            return False, [*lines, "FAIL the pack is unsigned, and a signature by the certificate given is required"]
        return not problems, [*lines, "signature: none (the pack is unsigned)"]
    sig = files.get(str(signature.get("file", SIGNATURE_FILE)))
    in_pack = files.get(str(signature.get("certificate", CERTIFICATE_FILE)))
    if sig is None or in_pack is None:
        return False, [*lines, "FAIL the signature or its certificate is missing from the pack"]
    expected = cert.read_bytes() if cert is not None else in_pack
    try:
        if cert is not None and fingerprint(expected) != fingerprint(in_pack):
            return False, [*lines, f"FAIL signed with certificate sha256 {fingerprint(in_pack)}, not the "
                           f"certificate given ({fingerprint(expected)})"]
        if not check_signature(files["manifest.json"], sig, expected):
            return False, [*lines, "FAIL signature does NOT match manifest.json: the manifest changed after signing"]
    except ValueError as exc:  # a certificate that is no PEM certificate
        return False, [*lines, f"FAIL cannot read the certificate: {exc}"]
    note = "" if cert is not None else (" — the certificate inside the pack: compare its fingerprint with the one "
                                        "your organisation published, or pass --cert")
    return not problems, [*lines, f"signature valid: manifest.json signed by {signature.get('subject')}, "
                          f"certificate sha256 {fingerprint(expected)}{note}"]
