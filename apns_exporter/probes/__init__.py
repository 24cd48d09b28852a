"""Probe results, the target state probes share and the run each probe owns.

Probes never raise for expected failures: every outcome is a frozen :class:`ProbeResult`.
"""

from __future__ import annotations

import asyncio
import logging
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
from apns_exporter.creds.credential import Credential, Loaded
from apns_exporter.creds.tokens import ProviderToken
from apns_exporter.errors import CredentialError
from apns_exporter.receipts.book import ReceiptBook

log = logging.getLogger(__name__)


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
    # Sandbox only: the ID Apple's Push Notifications Console finds the delivery log by.
    unique_id: str | None = None


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
class TargetContext:
    """What every run of one target's probes shares: its channels, last chain and credential."""

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
    credential: Credential | None = None  # None for contexts built without credential files
    loaded: Loaded | None = None  # the credential in use
    credential_error: CredentialError | None = None  # why the files on disk cannot be used

    def start(self, kind: ProbeKind, deadline: float | None = None) -> ProbeRun:
        """A new run of one probe, with its own clock start, log and deadline."""
        return ProbeRun(self, kind, deadline or self.default_timeout, self.clock())

    def channels(self) -> tuple[Channel, ...]:
        """Every connection channel this target keeps open."""
        return (self.channel,) if self.auth_channel is None else (self.channel, self.auth_channel)

    async def aclose(self) -> None:
        """Close every connection of the target."""
        for channel in self.channels():
            await channel.aclose()


@dataclass
class ProbeRun:
    """One run of one probe: its start, its log lines and its deadline, shared with no other run."""

    shared: TargetContext
    kind: ProbeKind
    deadline: float
    started: float
    logs: list[str] = field(default_factory=list)

    @property
    def target(self) -> Target:
        """The configured target this run probes."""
        return self.shared.target

    def timeout(self, configured: float | None) -> float:
        """A probe's configured per-request timeout, or the global default."""
        return configured or self.shared.default_timeout

    def log(self, message: str) -> None:
        """Keep a line for this run's log, shown on the probes page."""
        self.logs.append(f"{self.shared.clock():.3f} {message}")

    def result(self, ok: bool, message: str, **details: Any) -> ProbeResult:
        """The result of this run, with its own timing and log."""
        return ProbeResult(
            self.target.name,
            self.kind,
            ok,
            self.started,
            self.shared.clock() - self.started,
            message,
            logs=tuple(self.logs),
            **details,
        )


Probe = Callable[[ProbeRun], Awaitable[ProbeResult]]


async def perform(probe: Probe, run: ProbeRun, *, margin: float = 0.0) -> ProbeResult:
    """Run ``probe`` under its run's deadline (plus ``margin``); a hang or crash is a result."""
    try:
        async with asyncio.timeout(run.deadline + margin):
            return await probe(run)
    except TimeoutError:
        error = "timeout"
        message = f"probe did not finish within its {run.deadline:g}s deadline"
    except Exception as exc:  # a bug in one probe must not take the exporter down
        log.exception("probe %s of target %s crashed", run.kind, run.target.name)
        error, message = "internal", f"internal error: {type(exc).__name__}: {exc}"
    return run.result(False, message, error=error)


def log_goaway(ctx: ProbeRun, conn: Connection) -> None:
    """Put the raw GOAWAY debug data in the run's log: it is often the only explanation."""
    if conn.goaway is not None:
        g = conn.goaway
        ctx.log(
            f"GOAWAY error_code={g.error_code} last_stream_id={g.last_stream_id} "
            f"debug_data={g.debug_data[:512]!r}"
        )
