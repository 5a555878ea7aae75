"""Signatures over evidence manifests with ACCESSBOT_SIGNING_KEY / ACCESSBOT_SIGNING_CERT (PEM files).

The signature is detached and plain: RSA PKCS#1 v1.5 or ECDSA (DER), over SHA-256 of the bytes of
``manifest.json``, exactly what ``openssl dgst -sha256 -sign`` writes and ``openssl dgst -sha256
-verify`` checks. The manifest lists the SHA-256 of every other file, so the signature covers the
whole pack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SIGNATURE_FILE = "manifest.json.sig"
CERTIFICATE_FILE = "signing-cert.pem"


class SigningError(Exception):
    """Signing settings that cannot be used; the message names the setting."""


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER bytes, hex (what ``openssl x509 -fingerprint -sha256`` shows)."""
    return hashlib.sha256(x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
                          ).hexdigest()


@dataclass(frozen=True)
class ManifestSigner:
    key: Any
    certificate: bytes  # PEM, as given

    @property
    def algorithm(self) -> str:
        return "rsa-pkcs1v15-sha256" if isinstance(self.key, rsa.RSAPrivateKey) else "ecdsa-sha256"

    def describe(self) -> dict[str, str]:
        cert = x509.load_pem_x509_certificate(self.certificate)
        return {"file": SIGNATURE_FILE, "certificate": CERTIFICATE_FILE, "algorithm": self.algorithm,
                "certificate_sha256": fingerprint(self.certificate), "subject": cert.subject.rfc4514_string()}

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def signer_from(env: Mapping[str, str]) -> ManifestSigner | None:
    """The signer the settings ask for, None when ACCESSBOT_SIGNING_KEY is not set."""
    key_path, cert_path = env.get("ACCESSBOT_SIGNING_KEY", ""), env.get("ACCESSBOT_SIGNING_CERT", "")
    if not key_path:
        return None
    if not cert_path:
        raise SigningError("ACCESSBOT_SIGNING_KEY is set but ACCESSBOT_SIGNING_CERT is not: set both (PEM files)")
    for setting, path in (("ACCESSBOT_SIGNING_KEY", key_path), ("ACCESSBOT_SIGNING_CERT", cert_path)):
        if Path(path).exists() and not Path(path).is_file():  # a pipe may never answer, a device never end
            raise SigningError(f"{setting} {path}: not a regular file")
    try:
        key_bytes, cert_bytes = Path(key_path).read_bytes(), Path(cert_path).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read the signing key or certificate: {exc.filename}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"ACCESSBOT_SIGNING_KEY {key_path}: not an unencrypted PEM private key ({exc})") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_bytes)
    except ValueError as exc:
        raise SigningError(f"ACCESSBOT_SIGNING_CERT {cert_path}: not a PEM X.509 certificate ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SigningError(f"ACCESSBOT_SIGNING_KEY {key_path}: use an RSA or EC key (openssl verifies those with "
                           f"`openssl dgst`), not {type(key).__name__}")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, public)
            != key.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise SigningError(f"ACCESSBOT_SIGNING_CERT {cert_path} does not match the key in {key_path}")
    return ManifestSigner(key=key, certificate=cert_bytes)


def check_signature(manifest: bytes, signature: bytes, cert_pem: bytes) -> bool:
    """True when ``signature`` is the certificate's key's signature over ``manifest``."""
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, manifest, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, manifest, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True
