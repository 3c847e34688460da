"""The object storage's CA and server certificate, checked by Python's own TLS stack: a
real handshake over a socket pair, with hostname checking on, for every Service name."""

import datetime
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pulsebase_operator.render import certificates

NAMES = (
    "shop-objectstore",
    "shop-objectstore.prod",
    "shop-objectstore.prod.svc",
    "shop-objectstore.prod.svc.cluster.local",
)
# Handshakes check validity against the real clock.
NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def issued() -> dict[str, str]:
    return certificates.issue(
        NAMES,
        common_name="shop-objectstore-tls",
        ca_key=certificates.new_key(),
        server_key=certificates.new_key(),
        now=NOW,
    )


def handshake(issued: dict[str, str], folder: Path, *, server_name: str) -> None:
    """Serve `issued` on one end of a socket pair and connect from the other, trusting
    only the CA; raises ssl.SSLError when verification fails."""
    (folder / "tls.crt").write_text(issued[certificates.CERT_KEY])
    (folder / "tls.key").write_text(issued[certificates.KEY_KEY])
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / "tls.crt", folder / "tls.key")
    client_context = ssl.create_default_context(cadata=issued[certificates.CA_KEY])
    assert client_context.check_hostname and client_context.verify_mode is ssl.CERT_REQUIRED

    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(right, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as error:
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(left, server_hostname=server_name) as tls:
            tls.sendall(b"x")
    finally:
        left.close()
        thread.join(timeout=10)


@pytest.mark.parametrize("name", NAMES)
def test_the_certificate_verifies_against_the_ca_for_every_service_name(
    issued: dict[str, str], tmp_path: Path, name: str
) -> None:
    handshake(issued, tmp_path, server_name=name)


def test_another_name_is_refused(issued: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(issued, tmp_path, server_name="shop-objectstore.other.svc")


def test_another_ca_is_refused(issued: dict[str, str], tmp_path: Path) -> None:
    other = certificates.issue(
        NAMES,
        common_name="other",
        ca_key=certificates.new_key(),
        server_key=certificates.new_key(),
        now=NOW,
    )
    forged = {**issued, certificates.CA_KEY: other[certificates.CA_KEY]}
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(forged, tmp_path, server_name=NAMES[0])


def test_keys_are_p256_and_the_ca_lasts_ten_years(issued: dict[str, str]) -> None:
    ca = x509.load_pem_x509_certificate(issued[certificates.CA_KEY].encode())
    server = x509.load_pem_x509_certificate(issued[certificates.CERT_KEY].encode())
    for cert in (ca, server):
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"
        assert cert.not_valid_before_utc < NOW
        assert cert.not_valid_after_utc - NOW > datetime.timedelta(days=3649)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert tuple(sans.get_values_for_type(x509.DNSName)) == NAMES
    assert server.not_valid_after_utc <= ca.not_valid_after_utc
    assert server.serial_number != ca.serial_number


def test_issue_is_a_function_of_its_keys_and_clock() -> None:
    ca_key, server_key = certificates.new_key(), certificates.new_key()

    def once() -> dict[str, str]:
        return certificates.issue(
            NAMES, common_name="shop", ca_key=ca_key, server_key=server_key, now=NOW
        )

    # ECDSA signatures are randomised, so compare what is signed rather than the bytes.
    first, second = once(), once()
    assert first[certificates.KEY_KEY] == second[certificates.KEY_KEY]
    for key in (certificates.CA_KEY, certificates.CERT_KEY):
        a = x509.load_pem_x509_certificate(first[key].encode())
        b = x509.load_pem_x509_certificate(second[key].encode())
        assert a.serial_number == b.serial_number and a.subject == b.subject
        assert a.not_valid_after_utc == b.not_valid_after_utc


def test_no_names_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one DNS name"):
        certificates.issue(
            (),
            common_name="x",
            ca_key=certificates.new_key(),
            server_key=certificates.new_key(),
            now=NOW,
        )
