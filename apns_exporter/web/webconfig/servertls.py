"""The server's TLS settings (``tls_server_config``) and the SSLContext built from their bytes."""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from apns_exporter import files
from apns_exporter.errors import FileError, WebConfigError

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's crypto/tls modes and their nearest OpenSSL equivalent. Python cannot request or
# require a client certificate without also verifying it, so:
# - RequestClientCert (Go: ask, never verify) does not ask at all; neither authenticates.
# - RequireAnyClientCert (Go: require any certificate, never verify) verifies it against
#   client_ca_file, which the parser therefore demands: stricter than Go, never looser.
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
NEEDS_CLIENT_CA = {"RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}


@dataclass(frozen=True)
class TLSServerConfig:
    """``tls_server_config``: where the server's certificate is and how clients authenticate."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str | None = None
    prefer_server_cipher_suites: bool = True

    def restart_settings(self) -> tuple[object, ...]:
        """The settings a live SSLContext cannot change: a difference needs a restart."""
        return (
            self.client_auth_type,
            self.min_version,
            self.max_version,
            self.prefer_server_cipher_suites,
        )

    @property
    def files(self) -> tuple[Path | None, ...]:
        """The files the context is loaded from: certificate, key, client CAs."""
        return (self.cert_file, self.key_file, self.client_ca_file)


@dataclass(frozen=True)
class TLSMaterial:
    """The TLS files' content, read once and checked: what contexts are loaded from."""

    chain_pem: bytes = field(repr=False)  # certificates, then the unencrypted key
    client_cas: str | bytes | None = None


def _read(path: Path, key: str) -> bytes:
    try:
        return files.read_bytes(path, kind=key, limit=files.CERTIFICATE_LIMIT)
    except FileError as exc:
        raise WebConfigError(f"cannot read {str(path)!r}: {exc.problem}", key=key) from None


def _certificates(data: bytes) -> list[x509.Certificate]:
    # PEM or DER, as for every certificate the exporter reads.
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise WebConfigError("no PEM or DER certificate in the file", key="cert_file") from None


def _private_key(data: bytes) -> PrivateKeyTypes:
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except TypeError:
        message = "the key is encrypted; store it unencrypted"
        raise WebConfigError(message, key="key_file") from None
    except (ValueError, UnsupportedAlgorithm):
        raise WebConfigError("no PEM or DER private key in the file", key="key_file") from None


def read_material(tls: TLSServerConfig) -> TLSMaterial:
    """Read and parse each TLS file once; WebConfigError's ``key`` names a bad one."""
    # ssl's errors ("[SSL] PEM lib") do not say which file is wrong; parse each one first.
    certs = _certificates(_read(tls.cert_file, "cert_file"))
    key = _private_key(_read(tls.key_file, "key_file"))
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    chain += key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cas = None
    if tls.client_ca_file is not None:
        data = _read(tls.client_ca_file, "client_ca_file")
        try:
            cas = files.ca_data(data, path=str(tls.client_ca_file))
        except FileError:
            message = "no PEM or DER certificate in the file"
            raise WebConfigError(message, key="client_ca_file") from None
    return TLSMaterial(chain, cas)


def load_chain(context: ssl.SSLContext, material: TLSMaterial) -> None:
    """Load the certificate and key into ``context`` (also a live one, on rotation)."""
    try:
        # From a private copy of the bytes already checked: OpenSSL never opens the
        # operator's file, so a swap after the check cannot reach it.
        with files.private_copy(material.chain_pem) as name:
            context.load_cert_chain(name)
    except (OSError, ssl.SSLError):
        message = "does not match cert_file (use the key the certificate was made for)"
        raise WebConfigError(message, key="key_file") from None


def load_client_cas(context: ssl.SSLContext, material: TLSMaterial) -> None:
    """Trust the client CAs read into ``material`` (adds to a live context, never removes)."""
    if material.client_cas is not None:
        context.load_verify_locations(cadata=material.client_cas)


def build_context(tls: TLSServerConfig, material: TLSMaterial | None = None) -> ssl.SSLContext:
    """A server context for ``tls``; raises WebConfigError whose ``key`` names a bad file."""
    material = material or read_material(tls)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated in Python, but a user who asks for them gets them.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        if tls.max_version is not None:
            context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    load_chain(context, material)
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    load_client_cas(context, material)
    return context
