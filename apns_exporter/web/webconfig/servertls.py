"""The server's TLS settings (``tls_server_config``) and the SSLContext built from them."""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apns_exporter.errors import WebConfigError
from apns_exporter.web.webconfig.files import read_regular

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


def _read(path: Path, key: str) -> bytes:
    try:
        return read_regular(path)
    except OSError as exc:
        raise WebConfigError(f"cannot read {str(path)!r}: {exc.strerror}", key=key) from None


def _check_pem_files(tls: TLSServerConfig) -> None:
    # ssl's errors ("[SSL] PEM lib") do not say which file is wrong; read each one first.
    try:
        x509.load_pem_x509_certificates(_read(tls.cert_file, "cert_file"))
    except ValueError:
        raise WebConfigError("no PEM certificate in the file", key="cert_file") from None
    try:
        serialization.load_pem_private_key(_read(tls.key_file, "key_file"), password=None)
    except TypeError:
        message = "the key is encrypted; store it unencrypted"
        raise WebConfigError(message, key="key_file") from None
    except ValueError:
        raise WebConfigError("no PEM private key in the file", key="key_file") from None
    if tls.client_ca_file is not None:
        try:
            x509.load_pem_x509_certificates(_read(tls.client_ca_file, "client_ca_file"))
        except ValueError:
            message = "no PEM certificate in the file"
            raise WebConfigError(message, key="client_ca_file") from None


def load_chain(context: ssl.SSLContext, tls: TLSServerConfig) -> None:
    """Load the certificate and key into ``context`` (also a live one, on rotation)."""
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError):
        message = "does not match cert_file (use the key the certificate was made for)"
        raise WebConfigError(message, key="key_file") from None


def build_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server context for ``tls``; raises WebConfigError whose ``key`` names a bad file."""
    _check_pem_files(tls)
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
    load_chain(context, tls)
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError):
            message = "cannot load the CA certificates"
            raise WebConfigError(message, key="client_ca_file") from None
    return context
