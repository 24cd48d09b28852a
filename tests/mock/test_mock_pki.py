"""The generated test PKI: CA, server and provider certificates, signing keys, PKCS#12."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

from apns_exporter.mock import generate_ca, generate_signing_key, read_provider_identity
from apns_exporter.mock.pki import APNS_TOPICS_OID


def test_signing_key_is_a_p256_pkcs8_pem_like_an_apple_p8():
    """The private PEM is unencrypted PKCS#8 of an EC P-256 key, the shape of AuthKey_*.p8."""
    pair = generate_signing_key()
    assert pair.private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = load_pem_private_key(pair.private_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert pair.public_key.public_numbers() == key.public_key().public_numbers()


def test_server_certificate_has_dns_and_ip_sans():
    """Server certificates name localhost as DNS and 127.0.0.1 / ::1 as IPAddress SANs."""
    keypair = generate_ca().issue_server()
    sans = keypair.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert keypair.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_leaf_from_intermediate_carries_the_intermediate():
    """A leaf issued by an intermediate has cert_pem = leaf + intermediate (not the root)."""
    root = generate_ca()
    intermediate = root.issue_intermediate()
    keypair = intermediate.issue_server()
    chain = x509.load_pem_x509_certificates(keypair.cert_pem)
    assert [c.subject for c in chain] == [
        keypair.certificate.subject,
        intermediate.certificate.subject,
    ]
    assert chain[1].issuer == root.certificate.subject


def test_validity_window_is_honoured():
    """Explicit valid_from/valid_until produce expired or not-yet-valid certificates."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expired = generate_ca().issue_server(
        valid_from=now - dt.timedelta(days=10), valid_until=now - dt.timedelta(days=1)
    )
    assert expired.certificate.not_valid_after_utc == now - dt.timedelta(days=1)


def test_multi_topic_provider_certificate_has_apple_layout():
    """A universal multi-topic certificate has UID, OU=team, both env OIDs and the 6.3.6 list."""
    cert = generate_ca().issue_provider("com.example.app", team_id="TEAM000001")
    identity = read_provider_identity(cert.certificate)
    assert identity.uid == "com.example.app"
    assert identity.topics == (
        "com.example.app",
        "com.example.app.voip",
        "com.example.app.complication",
    )
    assert identity.environments == {"sandbox", "production"}
    assert identity.team_id == "TEAM000001"
    raw = cert.certificate.extensions.get_extension_for_oid(APNS_TOPICS_OID).value.value
    # SEQUENCE { UTF8String topic, SEQUENCE { UTF8String "app" }, ... }
    assert raw.startswith(b"\x30")
    assert b"\x0c\x0fcom.example.app\x30\x05\x0c\x03app" in raw


def test_single_topic_sandbox_only_certificate():
    """topic_kinds=None and one environment give a single-topic, sandbox-only certificate."""
    cert = generate_ca().issue_provider(
        "com.example.app", environments=["sandbox"], topic_kinds=None
    )
    identity = read_provider_identity(cert.certificate)
    assert (identity.topics, identity.environments) == (("com.example.app",), {"sandbox"})


def test_mdm_certificate_topic_and_environment():
    """MDM push certificates have UID com.apple.mgmt.External.<uuid> and production only."""
    cert = generate_ca().issue_mdm(push_uuid="1234")
    identity = read_provider_identity(cert.certificate)
    assert identity.topics == ("com.apple.mgmt.External.1234",)
    assert identity.environments == {"production"}


def test_unknown_environment_is_rejected():
    """Asking for an environment Apple has no OID for is a programming error."""
    with pytest.raises(ValueError, match="unknown APNs environment"):
        generate_ca().issue_provider("com.example.app", environments=["staging"])


@pytest.mark.parametrize("password", [None, b"s3cret"])
def test_pkcs12_round_trips_with_and_without_password(password):
    """PKCS#12 export loads back with the same certificate, with or without a password."""
    ca = generate_ca()
    cert = ca.issue_provider("com.example.app")
    loaded = pkcs12.load_pkcs12(cert.pkcs12(password), password)
    assert loaded.cert is not None
    assert loaded.cert.certificate == cert.certificate
    if password:
        with pytest.raises(ValueError, match="Invalid password"):
            pkcs12.load_pkcs12(cert.pkcs12(password), b"wrong")
