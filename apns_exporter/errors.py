"""The exporter's exception tree; each error with a ``reason`` is counted under that label.

::

    ExporterError
    ├── ConfigError            issues: every (location, message) found
    ├── WebConfigError         one line naming the web config file and key
    ├── FileError              not_found | permission_denied | not_regular | too_large
    │                          | unreadable | malformed: one line naming the file
    ├── CredentialError        not_found | permission_denied | bad_pem | bad_pkcs12
    │   │                      | bad_passphrase | bad_p8 | key_mismatch | expired
    │   │                      | not_regular | too_large | unreadable
    │   └── ExpiredCredential  expired, carrying what loaded so it can still be presented
    ├── DiscoveryRefused       a credential reason | no_key_id | no_team_id | invalid
    │                          | duplicate_name: a found file a discover source cannot list
    ├── OutputPathError        an ``assets --out`` path that cannot or must not be written
    ├── ReceiptRejected        bad_signature | malformed | unknown_target | unknown_canary
    │                          | replay | stale | too_large
    └── ProbeError             any of its subclasses' reasons, and internal (a probe crashed)
        │                      | credential (no usable credential to send with)
        ├── ConnectFailed      dns | connect | proxy | tls_verify | tls_handshake | alpn
        │                      | http2 | timeout
        ├── ConnectionLost     http2 | goaway | connection_reset | tls_handshake
        └── RequestFailed      timeout | stream_reset | connection_reset | protocol | goaway

Every error that has a reason takes ``(reason, message)`` in that order, and the reason
must be one of its class's ``REASONS``: a label outside the documented set is a bug caught
where it is raised, not silently folded into another label when counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

T = TypeVar("T")


class ExporterError(Exception):
    """Base class for every error the exporter raises on purpose."""


class ReasonedError(ExporterError):
    """An error counted under a bounded ``reason`` label, checked when it is raised."""

    REASONS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            known = ", ".join(sorted(self.REASONS))
            raise ValueError(f"{type(self).__name__}: reason {reason!r} is not one of {known}")
        self.reason = reason
        super().__init__(message)


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


class WebConfigError(ExporterError):
    """A web config file that cannot be used; the message is one line naming file and key.

    ``key`` names the setting a TLS file came from (``cert_file``...) while the message does
    not yet say where in the file it is; the parser then locates it.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class FileError(ReasonedError):
    """A file the exporter reads that cannot be used; the message names it and what to do."""

    REASONS = frozenset(
        {"not_found", "permission_denied", "not_regular", "too_large", "unreadable", "malformed"}
    )

    def __init__(self, reason: str, message: str, *, path: str, problem: str = "") -> None:
        super().__init__(reason, message)
        self.path = path
        # What is wrong and what to do, without the file's name: for a message that names
        # the file already (``apns.yml: <problem>``).
        self.problem = problem or message


class CredentialError(ReasonedError):
    """A key or certificate file that cannot be loaded."""

    REASONS = frozenset(
        {
            "not_found",
            "permission_denied",
            "bad_pem",
            "bad_pkcs12",
            "bad_passphrase",
            "bad_p8",
            "key_mismatch",
            "expired",
            # What the safe reader refuses, under its own reason (errors.FileError).
            "not_regular",
            "too_large",
            "unreadable",
        }
    )


class ExpiredCredential(CredentialError, Generic[T]):
    """An expired certificate, with what loaded: presenting it beats guessing what APNs says."""

    def __init__(self, message: str, *, loaded: T) -> None:
        super().__init__("expired", message)
        self.loaded = loaded


class DiscoveryRefused(ReasonedError):
    """A file a discover source found but cannot list as a target."""

    REASONS = CredentialError.REASONS | frozenset(
        {"no_key_id", "no_team_id", "invalid", "duplicate_name"}
    )


class LoopUnavailable(ExporterError):
    """The event loop asked for (``--runtime.event-loop``) cannot be had in this installation."""


class OutputPathError(ExporterError):
    """An output path that cannot or must not be written; the message is one line."""


class ReceiptRejected(ReasonedError):
    """A delivery receipt that failed a check; ``target`` is set only once it is trusted."""

    REASONS = frozenset(
        {
            "bad_signature",
            "malformed",
            "unknown_target",
            "unknown_canary",
            "replay",
            "stale",
            "too_large",
        }
    )

    def __init__(self, reason: str, message: str = "", *, target: str | None = None) -> None:
        super().__init__(reason, message or reason)
        # Only ever a configured target name (bounded), never whatever the body claimed.
        self.target = target


class ProbeError(ReasonedError):
    """A failure while talking to APNs; ``reason`` is a bounded metric label."""

    REASONS = frozenset(
        {
            "dns",
            "connect",
            "proxy",
            "tls_verify",
            "tls_handshake",
            "alpn",
            "http2",
            "timeout",
            "goaway",
            "connection_reset",
            "stream_reset",
            "protocol",
            "internal",
            "credential",
        }
    )


class ConnectFailed(ProbeError):
    """The connection could not be established (DNS, TCP, proxy, TLS, ALPN or HTTP/2 preface).

    ``proxy``: the HTTP proxy could not be reached, or refused the CONNECT (407, 403, 5xx).
    """

    REASONS = frozenset(
        {"dns", "connect", "proxy", "tls_verify", "tls_handshake", "alpn", "http2", "timeout"}
    )


class ConnectionLost(ProbeError):
    """An established connection ended or became unusable."""

    REASONS = frozenset({"http2", "goaway", "connection_reset", "tls_handshake"})


class RequestFailed(ProbeError):
    """A single request got no usable response."""

    REASONS = frozenset({"timeout", "stream_reset", "connection_reset", "protocol", "goaway"})
