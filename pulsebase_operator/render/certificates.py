"""A private certificate authority and one server certificate, for the managed object
storage's S3 endpoint (pgBackRest's S3 driver speaks only TLS).

`issue` is a pure function of the names, the two keys and the clock; the reconciler
calls it once, when it creates the Secret, and the Secret is never rewritten after.
Both certificates use ECDSA P-256. The CA's key is not kept: nothing is ever signed
by it again, so rotating means deleting the Secret, which issues a new CA as well.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_KEY = "ca.crt"
CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"

CA_LIFETIME = datetime.timedelta(days=3650)
# The server certificate may not outlive the CA that signs it.
CERT_LIFETIME = CA_LIFETIME
# Clocks of the nodes may lag the operator's a little.
BACKDATE = datetime.timedelta(minutes=5)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def issue(
    dns_names: Sequence[str],
    *,
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    server_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> dict[str, str]:
    """PEM text of the CA certificate, the server certificate for `dns_names` and the
    server's private key, under the keys CA_KEY, CERT_KEY and KEY_KEY."""
    if not dns_names:
        raise ValueError("a server certificate needs at least one DNS name")
    start = now - BACKDATE
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PulseBase Operator"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} CA"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(_serial(ca_key))
        .not_valid_before(start)
        .not_valid_after(start + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(_serial(server_key))
        .not_valid_before(start)
        .not_valid_after(start + CERT_LIFETIME)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return {
        CA_KEY: ca.public_bytes(serialization.Encoding.PEM).decode(),
        CERT_KEY: server.public_bytes(serialization.Encoding.PEM).decode(),
        KEY_KEY: server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }


def _serial(key: ec.EllipticCurvePrivateKey) -> int:
    # Unique per key (keys are fresh per Secret), positive and within 159 bits as RFC
    # 5280 asks; derived rather than drawn, so that `issue` stays a pure function.
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return int.from_bytes(hashlib.sha256(public).digest()[:19], "big") | 1
