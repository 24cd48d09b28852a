"""The one client TLS-context cache: shared per trust configuration, fresh when a file changes."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from apns_exporter.client.tls import client_context
from apns_exporter.errors import FileError
from apns_exporter.mock.pki import CertificateAuthority, Keypair, generate_ca


@pytest.fixture
def ca_file(tmp_path: Path, ca: CertificateAuthority) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.cert_pem)
    return str(path)


def test_one_trust_configuration_shares_one_context(ca_file: str) -> None:
    """Thousands of targets with the same ca_file get the very same context object."""
    contexts = {id(client_context(ca_file)) for _ in range(5000)}
    assert len(contexts) == 1


def test_changed_ca_file_content_gets_a_fresh_context(ca_file: str) -> None:
    """Rewriting ca_file with another CA yields a new context that trusts the new CA."""
    before = client_context(ca_file, system_store=False)
    other = generate_ca("replacement root CA")
    Path(ca_file).write_bytes(other.cert_pem)
    after = client_context(ca_file, system_store=False)
    assert after is not before
    subjects = [dict(x[0] for x in c["subject"]) for c in after.get_ca_certs()]
    assert subjects == [{"commonName": "replacement root CA"}]


def test_trust_variants_are_distinct_and_configured(ca_file: str) -> None:
    """No-verify, ca_file-only, system and system+ca_file are four different contexts."""
    unverified = client_context(verify=False)
    alone = client_context(ca_file, system_store=False)
    system = client_context()
    both = client_context(ca_file)
    assert len({id(unverified), id(alone), id(system), id(both)}) == 4
    assert unverified.verify_mode == ssl.CERT_NONE
    assert not unverified.check_hostname
    assert len(alone.get_ca_certs()) == 1
    assert len(both.get_ca_certs()) == len(system.get_ca_certs()) + 1
    for ctx in (unverified, alone, system, both):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def test_ca_file_alone_needs_a_ca_file() -> None:
    """Asking for a verifying context without the system store and without ca_file is refused."""
    with pytest.raises(ValueError, match="needs a ca_file"):
        client_context(system_store=False)


def test_missing_ca_file_is_a_file_error(tmp_path: Path) -> None:
    """A ca_file that does not exist raises FileError naming it."""
    with pytest.raises(FileError, match=r"^CA file .*missing\.pem: file not found"):
        client_context(str(tmp_path / "missing.pem"))


def test_der_ca_file_is_trusted(tmp_path: Path, ca: CertificateAuthority) -> None:
    """A ca_file in DER (as Apple ships its roots) is trusted like the same CA in PEM."""
    der = tmp_path / "ca.cer"
    der.write_bytes(ca.certificate.public_bytes(serialization.Encoding.DER))
    context = client_context(str(der), system_store=False)
    subjects = [c["subject"] for c in context.get_ca_certs()]
    assert any(("commonName", "apns-exporter test root CA") in rdn for s in subjects for rdn in s)


def test_ca_file_that_is_neither_pem_nor_der_is_malformed(tmp_path: Path) -> None:
    """A ca_file holding no certificate is a FileError naming it, never an ssl.SSLError."""
    junk = tmp_path / "ca.der"
    junk.write_bytes(b"\x30\x03junk")
    with pytest.raises(FileError, match=r"^CA file .*ca\.der: no PEM or DER certificate") as caught:
        client_context(str(junk))
    assert caught.value.reason == "malformed"


def test_client_certificates_are_keyed_by_content(ca: CertificateAuthority) -> None:
    """The same certificate PEM shares a context; another certificate gets its own."""
    first = ca.issue_server(["first.test"])
    second = ca.issue_server(["second.test"])
    assert client_context(certificate_pem=_pem(first)) is client_context(
        certificate_pem=_pem(first)
    )
    assert client_context(certificate_pem=_pem(first)) is not client_context(
        certificate_pem=_pem(second)
    )
    assert client_context(certificate_pem=_pem(first)) is not client_context()


def _pem(keypair: Keypair) -> bytes:
    return keypair.cert_pem + keypair.key_pem
