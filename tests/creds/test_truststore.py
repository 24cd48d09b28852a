"""Trust-store readiness: which required roots the system store and a ca_file hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from apns_exporter.creds import truststore
from apns_exporter.mock.pki import CertificateAuthority, generate_ca


def _fingerprint(ca: CertificateAuthority) -> str:
    return ca.certificate.fingerprint(hashes.SHA256()).hex()


def test_a_root_in_ca_file_is_present_and_another_is_not(tmp_path: Path) -> None:
    """The ca_file's root counts as held; a root in neither store is reported missing."""
    held, missing = generate_ca("held root"), generate_ca("missing root")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(held.cert_pem)
    found = truststore.check(
        [("held", _fingerprint(held)), ("missing", _fingerprint(missing))], str(ca_file)
    )
    assert [(r.name, r.present) for r in found] == [("held", True), ("missing", False)]


def test_a_root_only_in_the_hashed_ca_directory_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenSSL's CA directory is read too, though the context never lists its certificates."""
    root = generate_ca("directory-only root")
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / "0a1b2c3d.0").write_bytes(root.cert_pem)
    (directory / "README").write_bytes(b"not a hashed name: skipped")
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    (found,) = truststore.check([("dir", _fingerprint(root))], None)
    assert found.present
