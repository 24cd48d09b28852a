"""The exporter's exception tree; each leaf carries the bounded ``reason`` it is counted under.

::

    ExporterError
    ├── ConfigError            details: list of (location, message)
    ├── CredentialError        reason: not_found | permission_denied | bad_pem | bad_pkcs12
    │                                  | bad_passphrase | bad_p8 | key_mismatch | expired
    └── ProbeError             reason: a connection failure or request error label
        ├── ConnectFailed      dns | connect | tls_verify | tls_handshake | alpn | timeout
        ├── ConnectionLost     http2 | goaway | connection_reset
        └── RequestFailed      timeout | stream_reset | connection_reset | protocol
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ExporterError(Exception):
    """Base class for every error the exporter raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file: where it is and what is wrong."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ConfigError(ExporterError):
    """A config file that cannot be used; carries every problem found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class CredentialError(ExporterError):
    """A key or certificate file that cannot be loaded."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class ProbeError(ExporterError):
    """A failure while talking to APNs; ``reason`` is a bounded metric label."""

    reason: str = "protocol"

    def __init__(self, message: str, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(message)


class ConnectFailed(ProbeError):
    """The connection could not be established (DNS, TCP, TLS or ALPN)."""

    reason = "connect"


class ConnectionLost(ProbeError):
    """An established connection ended or became unusable."""

    reason = "connection_reset"


class RequestFailed(ProbeError):
    """A single request got no usable response."""

    reason = "protocol"
