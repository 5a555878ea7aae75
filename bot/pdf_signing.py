"""PAdES signatures (pyhanko) with the key and certificate of ACCESSBOT_SIGNING_KEY / ACCESSBOT_SIGNING_CERT."""

from __future__ import annotations

import io

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko_certvalidator.registry import SimpleCertificateStore


class SigningError(Exception):
    """The signing key or certificate cannot be used; the message names the file."""


def load_signer(key_path: str, cert_path: str) -> signers.SimpleSigner:
    """The signer of the key and certificate files, checked as the evidence pack's signer is: readable PEM files,
    an RSA or EC key, and a certificate of that very key (a signature made with another key than the
    certificate's would never validate)."""
    from bot import signing

    try:
        found = signing.signer_from({"ACCESSBOT_SIGNING_KEY": key_path, "ACCESSBOT_SIGNING_CERT": cert_path})
    except signing.SigningError as exc:
        raise SigningError(str(exc)) from None
    assert found is not None  # key_path is set
    chain = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
             for c in x509.load_pem_x509_certificates(found.certificate)]
    key = asn1_keys.PrivateKeyInfo.load(found.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return signers.SimpleSigner(signing_cert=chain[0], signing_key=key,
                                cert_registry=SimpleCertificateStore.from_certs(chain))


def signer_name(signer: signers.SimpleSigner) -> str:
    return str(signer.signing_cert.subject.human_friendly)


def sign_pdf(data: bytes, signer: signers.SimpleSigner, *, reason: str) -> bytes:
    """``data`` with a PAdES signature over every byte of it (an incremental update, the last one)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    meta = signers.PdfSignatureMetadata(field_name="Certification", reason=reason, md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    signed = signers.PdfSigner(meta, signer=signer).sign_pdf(writer)
    return signed.getvalue()  # type: ignore[no-any-return, union-attr]
