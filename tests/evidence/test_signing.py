"""Signed evidence packs: a detached signature over manifest.json with ACCESSBOT_SIGNING_KEY, checked
by `openssl` (the commands the pack prints) and by `accessbot evidence verify`; a changed manifest,
a re-hashed tampered file, another certificate or a stripped signature are all caught."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tests.support import chat, cli, copy_examples

TODAY = datetime.now(UTC).date().isoformat()
VERIFY = Path(__file__).resolve().parents[2] / "bot" / "evidence_files" / "verify_pack.py"


def _key_and_cert(folder: Path, name: str, kind: str) -> tuple[Path, Path]:
    key = {"rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
           "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
           "ed25519": ed25519.Ed25519PrivateKey.generate}[kind]()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"accessbot evidence {name}")])
    now = datetime.now(UTC)
    algorithm = None if kind == "ed25519" else hashes.SHA256()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, algorithm))
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _read(pack: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(pack) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(pack: Path, content: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(pack, "w") as zf:
        for name, data in content.items():
            zf.writestr(name, data)
    return pack


def _stdlib(pack: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", str(VERIFY), str(pack)], capture_output=True, text=True)


def _commands(text: str) -> list[list[str]]:
    """The openssl commands that check the signature (public key out, signature checked), as ``text`` gives them."""
    found = [shlex.split(line.strip()) for line in text.splitlines()
             if line.strip().startswith("openssl ") and ("-pubkey" in line or "-verify" in line)]
    assert [c[1] for c in found] == ["x509", "dgst"], text
    return found


def _unpack(folder: Path, content: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, data in content.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _openssl(folder: Path, content: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    """The commands the pack's VERIFYING.md gives an auditor, run as written in the unpacked pack."""
    _unpack(folder, content)
    pubkey, verify = _commands(content["VERIFYING.md"].decode())
    subprocess.run(pubkey, cwd=folder, check=True, capture_output=True)
    return subprocess.run(verify, cwd=folder, capture_output=True, text=True)


@pytest.fixture
def activity(sqlite_url, tmp_path):  # type: ignore[no-untyped-def]
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request analytics-read for 1d", "request staging-admin for 1h because deploy",
         db=sqlite_url, files=files)
    return sqlite_url, files


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_signed_pack_verifies_and_tampering_is_caught(activity, tmp_path, kind) -> None:
    db, files = activity
    key, cert = _key_and_cert(tmp_path, "signer", kind)
    env = {"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)}
    pack = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", TODAY, "--to", TODAY, "--out", str(pack), db=db, files=files, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    content = _read(pack)
    manifest = json.loads(content["manifest.json"])
    assert {"manifest.json.sig", "signing-cert.pem"} <= set(content)
    assert content["signing-cert.pem"] == cert.read_bytes() and "signing-cert.pem" in manifest["files"]
    assert manifest["signature"]["file"] == "manifest.json.sig"
    assert manifest["signature"]["certificate"] == "signing-cert.pem"

    ok = _stdlib(pack)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout
    assert "signature: present" in ok.stdout and "openssl dgst -sha256 -verify" in ok.stdout
    assert _openssl(tmp_path / "valid", content).returncode == 0
    good = cli("evidence", "verify", str(pack), "--cert", str(cert))
    assert good.returncode == 0 and "signature valid" in good.stdout, good.stdout + good.stderr
    assert cli("evidence", "verify", str(pack)).returncode == 0  # the certificate in the pack, fingerprint shown

    # a changed manifest keeping the old signature
    changed = dict(content, **{"manifest.json": content["manifest.json"].replace(b'"generated_at": "',
                                                                                b'"generated_at": "1')})
    forged = _write(tmp_path / "forged.zip", changed)
    assert _openssl(tmp_path / "forged", changed).returncode != 0
    bad = cli("evidence", "verify", str(forged), "--cert", str(cert))
    assert bad.returncode == 1 and "signature does NOT match" in bad.stdout, bad.stdout + bad.stderr

    # a tampered CSV whose hash is written into the manifest: every hash agrees, the signature does not
    import hashlib

    csv = content["requests.csv"].replace(b"deploy", b"DEPLOY")
    manifest["files"]["requests.csv"] = hashlib.sha256(csv).hexdigest()
    rehashed = dict(content, **{"requests.csv": csv,
                                "manifest.json": (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()})
    rehashed_pack = _write(tmp_path / "rehashed.zip", rehashed)
    assert _openssl(tmp_path / "rehashed", rehashed).returncode != 0
    bad = cli("evidence", "verify", str(rehashed_pack), "--cert", str(cert))
    assert bad.returncode == 1 and "signature does NOT match" in bad.stdout

    # the signature of someone else's key, with their certificate swapped in, fails the pinned certificate
    _, other_cert = _key_and_cert(tmp_path, "other", kind)
    bad = cli("evidence", "verify", str(pack), "--cert", str(other_cert))
    assert bad.returncode == 1 and "not the certificate given" in bad.stdout

    # a stripped signature: the manifest says the pack was signed
    stripped = _write(tmp_path / "stripped.zip", {k: v for k, v in content.items() if k != "manifest.json.sig"})
    r = _stdlib(stripped)
    assert r.returncode == 1 and "FAIL manifest.json.sig" in r.stdout


def test_unsigned_pack_says_so(activity, tmp_path) -> None:
    db, files = activity
    pack = tmp_path / "pack.zip"
    cli("evidence", "export", "--from", TODAY, "--to", TODAY, "--out", str(pack), db=db, files=files, check=True)
    assert "manifest.json.sig" not in _read(pack)
    ok = _stdlib(pack)
    assert ok.returncode == 0 and "signature: none" in ok.stdout
    r = cli("evidence", "verify", str(pack))
    assert r.returncode == 0 and "unsigned" in r.stdout
    _, cert = _key_and_cert(tmp_path, "signer", "rsa")
    r = cli("evidence", "verify", str(pack), "--cert", str(cert))
    assert r.returncode == 1 and "unsigned" in r.stdout


def test_bad_signing_settings_write_no_pack(activity, tmp_path) -> None:
    db, files = activity
    key, _ = _key_and_cert(tmp_path, "one", "rsa")
    _, cert = _key_and_cert(tmp_path, "two", "rsa")
    ed_key, ed_cert = _key_and_cert(tmp_path, "ed", "ed25519")
    pipe = tmp_path / "a-pipe.key"
    os.mkfifo(pipe)  # read, it would wait for a writer for ever
    for env, message in (({"ACCESSBOT_SIGNING_KEY": str(pipe), "ACCESSBOT_SIGNING_CERT": str(cert)},
                          "not a regular file"),
                         ({"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)}, "does not match"),
                         ({"ACCESSBOT_SIGNING_KEY": str(key)}, "ACCESSBOT_SIGNING_CERT"),
                         ({"ACCESSBOT_SIGNING_KEY": str(tmp_path / "nope.key"),
                           "ACCESSBOT_SIGNING_CERT": str(cert)}, "nope.key"),
                         ({"ACCESSBOT_SIGNING_KEY": str(ed_key), "ACCESSBOT_SIGNING_CERT": str(ed_cert)}, "RSA or EC")):
        pack = tmp_path / "pack.zip"
        r = cli("evidence", "export", "--from", TODAY, "--to", TODAY, "--out", str(pack), db=db, files=files, env=env,
                timeout=60)
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, (env, r.stderr)
        assert not pack.exists() and not list(tmp_path.glob("pack.zip*"))


@pytest.mark.parametrize("source", ["VERIFYING.md", "verify_pack.py output"])
def test_checking_the_signature_as_the_pack_says_leaves_the_unpacked_pack_verifying(activity, tmp_path,
                                                                                      source) -> None:
    """An auditor who unpacks the pack, runs the openssl commands where VERIFYING.md (or verify_pack.py's own
    note) says, then ``verify_pack.py .`` in that folder, gets OK: the public key is written outside the folder,
    where no file the manifest does not list may be (verify_pack.py stays strict about extra files)."""
    db, files = activity
    key, cert = _key_and_cert(tmp_path, "signer", "rsa")
    env = {"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)}
    pack = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", TODAY, "--to", TODAY, "--out", str(pack), db=db, files=files, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    content = _read(pack)
    folder = _unpack(tmp_path / "auditor" / "pack", content)
    shipped = [sys.executable, "-I", "verify_pack.py", "."]
    text = (content["VERIFYING.md"].decode() if source == "VERIFYING.md"
            else subprocess.run(shipped, cwd=folder, capture_output=True, text=True).stdout)
    for command in _commands(text):
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "Verified OK" in done.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted({n.split("/")[0] for n in content})
    after = subprocess.run(shipped, cwd=folder, capture_output=True, text=True)
    assert after.returncode == 0 and after.stdout.startswith("OK"), after.stdout + after.stderr

    (folder / "signing-key.pub").write_bytes((folder.parent / "signing-key.pub").read_bytes())
    strict = subprocess.run(shipped, cwd=folder, capture_output=True, text=True)
    assert strict.returncode == 1 and "FAIL signing-key.pub: not listed in the manifest" in strict.stdout
