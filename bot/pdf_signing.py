"""PAdES signatures (pyhanko) with the key and certificate of ACCESSBOT_SIGNING_KEY / ACCESSBOT_SIGNING_CERT."""

from __future__ import annotations

import io
from pathlib import Path

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers


class SigningError(Exception):
    """The signing key or certificate cannot be used; the message names the file."""


def load_signer(key_path: str, cert_path: str) -> signers.SimpleSigner:
    for path in (key_path, cert_path):
        if not Path(path).is_file():
            raise SigningError(f"{path}: no such file")
    signer = signers.SimpleSigner.load(key_path, cert_path)
    if signer is None:
        raise SigningError(f"{key_path} / {cert_path}: not a PEM private key and its certificate")
    return signer


def signer_name(signer: signers.SimpleSigner) -> str:
    return str(signer.signing_cert.subject.human_friendly)


def sign_pdf(data: bytes, signer: signers.SimpleSigner, *, reason: str) -> bytes:
    """``data`` with a PAdES signature over every byte of it (an incremental update, the last one)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    meta = signers.PdfSignatureMetadata(field_name="Certification", reason=reason, md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    signed = signers.PdfSigner(meta, signer=signer).sign_pdf(writer)
    return signed.getvalue()  # type: ignore[no-any-return, union-attr]
