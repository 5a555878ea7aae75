"""``accessbot review report RV-n --out FILE.pdf``: a PDF signed with PAdES that pyhanko's validator
accepts against the test's own trust root, that a flipped byte breaks, and that is plainly unsigned
without a key."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.support import T0, cli, copy_examples


def make_signing_pair(folder: Path) -> tuple[Path, Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accessbot certification test"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = folder / "signing-key.pem", folder / "signing-cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path, cert.public_bytes(serialization.Encoding.DER)


async def _campaign(url: str, files) -> str:  # type: ignore[no-untyped-def]
    from handlers.context import FixedClock

    settings = Settings(database_url=url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=FixedClock(T0)) as app:
        sam = await app.service.identify("sam.sec@example.com")
        reply = await app.service.handle_text(sam, "review start quarterly-privileged")
        assert reply.ok, reply.text
        async with app.store.read() as repo:
            bob = next(i for i in await repo.items(1) if i.user == "bob@example.com")
        assert bob.reviewer == "mark.mgr@example.com", bob.reviewer
        mark = await app.service.identify("mark.mgr@example.com")  # the decision flow: its row and review.decided
        reply = await app.service.handle_text(mark, f"remove RV-1 {bob.number} because left the team in May")
        assert reply.ok, reply.text
        async with app.store.read() as repo:
            return (await repo.get_campaign(1)).snapshot_sha256  # type: ignore[union-attr]


def _texts(data: bytes) -> bytes:
    """The decoded content streams of every page, joined: where the PDF's text is."""
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    out = []
    for kid in reader.root["/Pages"]["/Kids"]:
        contents = kid.get_object()["/Contents"]
        for stream in contents if isinstance(contents, list) else [contents]:
            out.append(stream.get_object().data)
    return b"\n".join(out)


def test_signed_report_validates_and_a_flipped_byte_breaks_it(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    files.add_to_group("sg-prod-db-read", "bob@example.com")
    files.add_to_group("sg-prod-db-read", "carol@example.com")
    snapshot_sha = asyncio.run(_campaign(sqlite_url, files))
    key, cert, der = make_signing_pair(tmp_path)
    out = tmp_path / "reports" / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files,
               env={"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)})
    assert done.returncode == 0, done.stderr
    assert "signed by" in done.stdout and "accessbot certification test" in done.stdout
    assert "interim status (not a certification: open)" in done.stdout  # RV-1 is still open
    data = out.read_bytes()
    text = _texts(data)
    assert snapshot_sha.encode() in text and b"left the team in May" in text and b"mark.mgr@example.com" in text

    trust = ValidationContext(trust_roots=[x509_load(der)])
    (signature,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
    status = validate_pdf_signature(signature, trust)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.coverage.name == "ENTIRE_FILE"
    # the same file with one byte changed inside the signed content no longer validates
    start = data.index(b"stream") + 20  # inside the first content stream, far from the signature's own bytes
    assert start < signature.byte_range[1]
    flipped = bytearray(data)
    flipped[start] ^= 0x01
    (broken,) = PdfFileReader(io.BytesIO(bytes(flipped)), strict=False).embedded_signatures
    assert not validate_pdf_signature(broken, trust).intact


def x509_load(der: bytes):  # type: ignore[no-untyped-def]
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(der)


def test_unsigned_report_says_so_and_a_missing_database_is_refused(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    files.add_to_group("sg-prod-db-read", "bob@example.com")
    asyncio.run(_campaign(sqlite_url, files))
    out = tmp_path / "unsigned.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 0 and "unsigned (no signing key set)" in done.stdout, done.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and PdfFileReader(io.BytesIO(data)).embedded_signatures == []
    assert b"Unsigned: no signing key is set" in _texts(data)

    missing = cli("review", "report", "RV-7", "--out", str(tmp_path / "x.pdf"), db=sqlite_url, files=files)
    assert missing.returncode == 1 and missing.stderr.strip() == "accessbot: there is no campaign RV-7"
    nowhere = tmp_path / "none" / "accessbot.db"
    gone = cli("review", "report", "RV-1", "--out", str(tmp_path / "y.pdf"), db=f"sqlite:///{nowhere}", files=files)
    assert gone.returncode == 1 and len(gone.stderr.strip().splitlines()) == 1 and "no database" in gone.stderr
    assert not nowhere.exists() and not nowhere.parent.exists() and not (tmp_path / "y.pdf").exists()
