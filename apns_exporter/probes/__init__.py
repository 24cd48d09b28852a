"""Probe results and the context probes run in; probes never raise for expected failures."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from apns_exporter.apns import AUTH_REASONS, Reason
from apns_exporter.client.channel import Channel, DialReport
from apns_exporter.client.connection import Connection
from apns_exporter.client.dial import Resolver
from apns_exporter.config import Target
from apns_exporter.creds.certificates import CertificateSummary
from apns_exporter.creds.chain import ChainReport
from apns_exporter.creds.tokens import ProviderToken
from apns_exporter.receipts.book import ReceiptBook


class ProbeKind(StrEnum):
    """The probes a target can run."""

    CANARY = "canary"
    PING = "ping"
    TLS = "tls"
    REACHABILITY = "reachability"
    CREDENTIALS = "credentials"


@dataclass(frozen=True)
class PushOutcome:
    """One canary push and how APNs answered it."""

    kind: str  # "device" or "auth_check"
    ok: bool
    duration: float
    status: int | None = None
    reason: str | None = None  # APNs reason, "none" on 200
    error: str | None = None  # request error label when there was no response
    apns_id: str | None = None


@dataclass(frozen=True)
class Reach:
    """Whether one host:port was reachable over one address family."""

    host: str
    port: int
    family: str  # "ipv4", "ipv6", or "none" when the name did not resolve
    reachable: bool
    connect_seconds: float | None
    in_apple_range: bool | None  # None when the name did not resolve
    error: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What one run of one probe found; the only thing metrics and pages read."""

    target: str
    probe: ProbeKind
    ok: bool
    started_at: float
    duration: float
    message: str
    error: str | None = None  # bounded failure label (connection failure or request error)
    dials: tuple[DialReport, ...] = ()  # connection attempts made during this run
    pushes: tuple[PushOutcome, ...] = ()
    rtt: float | None = None
    token_issued_at: float | None = None
    token_minted: bool = False
    logs: tuple[str, ...] = ()
    connected: bool = True  # False when no connection could be had for this run
    reaches: tuple[Reach, ...] = ()
    chain: ChainReport | None = None
    chain_changed: bool = False
    certificate: CertificateSummary | None = None
    token_failed: bool = False

    @property
    def layer(self) -> str | None:
        """The lowest layer that failed (dns, tcp, tls, http2, auth, apns), or None if ok."""
        if self.ok:
            return None
        if self.error == "timeout" and (not self.connected or self.probe is ProbeKind.PING):
            # A connection attempt that timed out is a network problem; so is an
            # established connection that no longer answers PINGs.
            return "tcp" if not self.connected else "http2"
        if self.error is not None:
            return _ERROR_LAYERS.get(self.error, "http2")
        failed = next((p for p in self.pushes if not p.ok), None)
        if failed is None:
            return "apns"
        if failed.error is not None:
            return _ERROR_LAYERS.get(failed.error, "http2")
        return "auth" if failed.reason in AUTH_REASON_NAMES else "apns"


# Connection and request error labels, by the layer they belong to. A request that is never
# answered on a working connection is APNs not answering, so it counts against "apns".
_ERROR_LAYERS = {
    "dns": "dns",
    "connect": "tcp",
    "timeout": "apns",
    "tls_verify": "tls",
    "tls_handshake": "tls",
    "alpn": "http2",
    "http2": "http2",
    "goaway": "http2",
    "connection_reset": "http2",
    "stream_reset": "http2",
    "protocol": "http2",
    "internal": "exporter",
    "credential": "auth",
}
LAYERS = ("dns", "tcp", "tls", "http2", "auth", "apns", "exporter")
AUTH_REASON_NAMES = frozenset(
    {r.value for r in AUTH_REASONS} | {Reason.TOO_MANY_PROVIDER_TOKEN_UPDATES.value}
)


@dataclass
class ProbeContext:
    """Everything a probe of one target needs: its config, connection and credentials."""

    target: Target
    channel: Channel
    token: ProviderToken | None
    default_timeout: float
    clock: Callable[[], float] = time.time
    resolver: Resolver | None = None
    auth_channel: Channel | None = None  # the auth check's own connection
    last_chain: ChainReport | None = None  # the previous tls_check, to notice CA switches
    topic: str | None = None  # apns-topic: configured, or the certificate's UID
    credential_ok: bool = True
    receipts: ReceiptBook | None = None  # set when device canaries expect receipts
    logs: list[str] = field(default_factory=list)
    started: float = 0.0

    def begin(self) -> None:
        """Start a new run: clear the previous run's log and note the time."""
        self.logs.clear()
        self.started = self.clock()

    def result(self, kind: ProbeKind, ok: bool, message: str, **details: Any) -> ProbeResult:
        """The result of the run begun by :meth:`begin`, with its timing and log."""
        return ProbeResult(
            self.target.name,
            kind,
            ok,
            self.started,
            self.clock() - self.started,
            message,
            logs=tuple(self.logs),
            **details,
        )

    def log(self, message: str) -> None:
        """Keep a line for this run's log, shown on the probes page."""
        self.logs.append(f"{self.clock():.3f} {message}")


def log_goaway(ctx: ProbeContext, conn: Connection) -> None:
    """Put the raw GOAWAY debug data in the run's log: it is often the only explanation."""
    if conn.goaway is not None:
        g = conn.goaway
        ctx.log(
            f"GOAWAY error_code={g.error_code} last_stream_id={g.last_stream_id} "
            f"debug_data={g.debug_data[:512]!r}"
        )


Probe = Callable[[ProbeContext], Awaitable[ProbeResult]]
