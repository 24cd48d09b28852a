"""One run of one probe: the frozen snapshot of its target it reads, its clock, log and deadline.

A run writes no shared state: it reads a :class:`Snapshot`, may use the target's channels
(which the client layer owns), and returns a result; the service applies results to the
target's state in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from apns_exporter.client.channel import Channel
from apns_exporter.client.connection import Connection
from apns_exporter.client.dial import Resolver
from apns_exporter.client.proxy import Proxy
from apns_exporter.config import Target
from apns_exporter.creds.chain import ChainReport
from apns_exporter.creds.credential import Credential, Loaded
from apns_exporter.creds.tokens import ProviderToken
from apns_exporter.probes.results import RESULT_TYPES, ProbeKind, ProbeResult, Run
from apns_exporter.receipts.book import ReceiptBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What a run may read of its target, frozen when the run starts."""

    target: Target
    channel: Channel
    default_timeout: float
    clock: Callable[[], float] = time.time
    resolver: Resolver | None = None
    proxy: Proxy | None = None  # the configured proxy; None: HTTPS_PROXY, if set, applies
    auth_channel: Channel | None = None  # the auth check's own connection
    credential: Credential | None = None  # the files, and whether they changed since loading
    loaded: Loaded | None = None  # the credential in use
    credential_problem: str | None = None  # why the files on disk cannot be used
    credential_reason: str | None = None  # ... as a CredentialError reason
    last_chain: ChainReport | None = None  # the previous tls_check, to notice CA switches
    receipts: ReceiptBook | None = None  # set when device canaries expect receipts
    # (name, SHA-256 fingerprint) of each root the trust store must hold (global.required_roots).
    required_roots: tuple[tuple[str, str], ...] = ()

    @property
    def token(self) -> ProviderToken | None:
        """The provider token in use (token auth only)."""
        return self.loaded.token if self.loaded is not None else None

    @property
    def topic(self) -> str | None:
        """The apns-topic to send: the configured one, else the UID of the certificate in use."""
        if self.target.topic is not None:
            return self.target.topic
        cert = self.loaded.certificate if self.loaded is not None else None
        return cert.uid if cert is not None else None

    def channels(self) -> tuple[Channel, ...]:
        """Every connection channel the target keeps open."""
        return (self.channel,) if self.auth_channel is None else (self.channel, self.auth_channel)

    def start(self, kind: ProbeKind, deadline: float | None = None) -> ProbeRun:
        """A new run of one probe, with its own clock start, log and deadline."""
        return ProbeRun(self, kind, deadline or self.default_timeout, self.clock())


@dataclass
class ProbeRun:
    """One run of one probe: its start, its log lines and its deadline, shared with no other run."""

    shared: Snapshot
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

    def finish(self) -> Run:
        """The record of this run: its target, start, duration and log lines."""
        now = self.shared.clock()
        return Run(self.target.name, self.started, now - self.started, tuple(self.logs))

    def failed(self, message: str, error: str) -> ProbeResult:
        """A failed result of this run's kind that carries nothing but ``error``."""
        return RESULT_TYPES[self.kind](run=self.finish(), ok=False, message=message, error=error)


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
    run.log(message)
    return run.failed(message, error)


def log_goaway(ctx: ProbeRun, conn: Connection) -> None:
    """Put the raw GOAWAY debug data in the run's log: it is often the only explanation."""
    if conn.goaway is not None:
        g = conn.goaway
        ctx.log(
            f"GOAWAY error_code={g.error_code} last_stream_id={g.last_stream_id} "
            f"debug_data={g.debug_data[:512]!r}"
        )
