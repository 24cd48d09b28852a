"""What a probe run found: one frozen, fully typed result class per probe kind.

Every result carries its run (target, start, duration, log lines), a verdict and a
message; ``error`` is always a reason some error class raised (:data:`RUN_ERRORS`), never
a relabelled one. The failing layer of a result is decided here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from apns_exporter.apns import AUTH_REASONS, Reason
from apns_exporter.client.channel import DialReport
from apns_exporter.client.protocol import Event
from apns_exporter.creds.certificates import CertificateSummary
from apns_exporter.creds.chain import AddressCheck, ChainReport
from apns_exporter.creds.credential import Loaded
from apns_exporter.creds.truststore import RootPresence
from apns_exporter.errors import CredentialError, ProbeError


class ProbeKind(StrEnum):
    """The probes a target can run."""

    CANARY = "canary"
    PING = "ping"
    TLS = "tls"
    REACHABILITY = "reachability"
    CREDENTIALS = "credentials"
    BROADCAST = "broadcast"


# Every reason a result's ``error`` can hold: what the probe's error classes raise.
RUN_ERRORS = ProbeError.REASONS | CredentialError.REASONS
LAYERS = ("dns", "proxy", "tcp", "tls", "http2", "auth", "apns", "exporter")
AUTH_REASON_NAMES = frozenset(
    {r.value for r in AUTH_REASONS} | {Reason.TOO_MANY_PROVIDER_TOKEN_UPDATES.value}
)
# Each reason's layer. A request never answered on a working connection is APNs not
# answering, so "timeout" counts against "apns" unless the connection itself is in doubt.
_ERROR_LAYERS = {
    "dns": "dns",
    "proxy": "proxy",
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
    **{reason: "auth" for reason in CredentialError.REASONS},
}
assert set(_ERROR_LAYERS) == RUN_ERRORS, "every raised reason has a layer"
assert set(_ERROR_LAYERS.values()) <= set(LAYERS)


def _layer_of(error: str | None) -> str:
    # A failure without a reason is the exporter's own (a result built without one).
    return _ERROR_LAYERS[error] if error is not None else "exporter"


@dataclass(frozen=True, slots=True)
class Run:
    """When one run of one probe happened and what it logged."""

    target: str
    started_at: float
    duration: float
    logs: tuple[str, ...] = ()

    @property
    def finished_at(self) -> float:
        """When the run ended (UNIX time)."""
        return self.started_at + self.duration


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """One canary push and how APNs answered it."""

    kind: str  # "device" or "auth_check"
    ok: bool
    duration: float
    status: int | None = None
    reason: str | None = None  # APNs reason, "none" on 200
    error: str | None = None  # the request error's reason when there was no response
    apns_id: str | None = None
    # Sandbox only: the ID Apple's Push Notifications Console finds the delivery log by.
    unique_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reach:
    """Whether one host:port was reachable over one address family."""

    host: str
    port: int
    family: str  # "ipv4", "ipv6", or "none" when the name did not resolve
    reachable: bool
    connect_seconds: float | None
    in_apple_range: bool | None  # None when the name did not resolve
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """What every result has: its run, verdict, one-line message and raised reason."""

    kind: ClassVar[ProbeKind]
    run: Run
    ok: bool
    message: str
    error: str | None = None  # a reason from RUN_ERRORS, as raised

    def __post_init__(self) -> None:
        if self.error is not None and self.error not in RUN_ERRORS:
            raise ValueError(f"{self.error!r} is not a reason any probe error raises")

    @property
    def probe(self) -> ProbeKind:
        """Which probe produced this result."""
        return self.kind

    @property
    def target(self) -> str:
        """The target the run probed."""
        return self.run.target

    @property
    def started_at(self) -> float:
        """When the run started (UNIX time)."""
        return self.run.started_at

    @property
    def duration(self) -> float:
        """How long the run took, in seconds."""
        return self.run.duration

    @property
    def logs(self) -> tuple[str, ...]:
        """The run's log lines, each prefixed with its UNIX time."""
        return self.run.logs

    @property
    def layer(self) -> str | None:
        """The lowest layer that failed, or None if the run succeeded."""
        return None if self.ok else _layer_of(self.error)

    @property
    def peer(self) -> str | None:
        """The server address the run talked to, if it talked to one."""
        return None


@dataclass(frozen=True, kw_only=True)
class ConnectionResult(ProbeResult):
    """A run on the target's kept connection, with what that connection reported meanwhile."""

    dials: tuple[DialReport, ...] = ()  # connection attempts made during this run
    # GOAWAY and SETTINGS frames the kept connection received since the previous run.
    events: tuple[Event, ...] = ()
    connected: bool = True  # False when no connection could be had for this run
    address: str | None = None  # the server address of the connection used

    @property
    def peer(self) -> str | None:
        """The server address of the connection the run used."""
        return self.address


@dataclass(frozen=True, kw_only=True)
class CanaryResult(ConnectionResult):
    """The canary pushes of one run and the provider token they carried."""

    kind = ProbeKind.CANARY
    pushes: tuple[PushOutcome, ...] = ()
    token_issued_at: float | None = None
    token_minted: bool = False
    token_failed: bool = False

    @property
    def layer(self) -> str | None:
        """The lowest failing layer; a push's answer decides between auth and apns."""
        if self.ok:
            return None
        if self.error == "timeout" and not self.connected:
            return "tcp"  # a connection attempt that timed out is a network problem
        if self.error is not None:
            return _layer_of(self.error)
        failed = next((p for p in self.pushes if not p.ok), None)
        if failed is None:
            return "apns"
        if failed.error is not None:
            return _layer_of(failed.error)
        return "auth" if failed.reason in AUTH_REASON_NAMES else "apns"

    @property
    def failed_push(self) -> PushOutcome | None:
        """The first push that was not answered as expected."""
        return next((p for p in self.pushes if not p.ok), None)


@dataclass(frozen=True, kw_only=True)
class PingResult(ConnectionResult):
    """One HTTP/2 PING on the kept connection."""

    kind = ProbeKind.PING
    rtt: float | None = None

    @property
    def layer(self) -> str | None:
        """A connection that no longer answers PINGs fails at http2, one never made at tcp."""
        if not self.ok and self.error == "timeout":
            return "http2" if self.connected else "tcp"
        return None if self.ok else _layer_of(self.error)


@dataclass(frozen=True, kw_only=True)
class TlsResult(ProbeResult):
    """The server chain APNs presented, and whether it changed since the previous check."""

    kind = ProbeKind.TLS
    chain: ChainReport | None = None  # the first failing address's chain, else the first's
    chain_changed: bool = False
    addresses: tuple[AddressCheck, ...] = ()  # every address inspected, in resolved order
    # Each required root and whether the target's trust store (system plus ca_file) has it.
    trust_roots: tuple[RootPresence, ...] = ()

    @property
    def root_addresses(self) -> dict[str, int]:
        """How many inspected addresses present each root (by its common name)."""
        counts: dict[str, int] = {}
        for check in self.addresses:
            if check.report is not None:
                name = check.report.root_name or "unknown"
                counts[name] = counts.get(name, 0) + 1
        return counts

    @property
    def peer(self) -> str | None:
        """The first address whose chain failed the check, if the run failed."""
        if self.ok:
            return None
        failing = (c for c in self.addresses if not _trusted_now(c, self.run.finished_at))
        return next((c.address for c in failing if c.address is not None), None)


def _trusted_now(check: AddressCheck, now: float) -> bool:
    report = check.report
    return report is not None and report.trusted and report.earliest_not_after > now


@dataclass(frozen=True, kw_only=True)
class ReachabilityResult(ProbeResult):
    """DNS and TCP reachability of each host push depends on."""

    kind = ProbeKind.REACHABILITY
    reaches: tuple[Reach, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CredentialsResult(ProbeResult):
    """The credential in use, and a newly loaded one for the service to put in use."""

    kind = ProbeKind.CREDENTIALS
    certificate: CertificateSummary | None = None
    adopt: Loaded | None = None  # files changed and loaded: new connections should use this


# A key that signs valid tokens but may not manage channels is an auth problem to fix.
BROADCAST_AUTH_REASONS = AUTH_REASON_NAMES | {Reason.FEATURE_NOT_ENABLED.value}


@dataclass(frozen=True, kw_only=True)
class BroadcastResult(ProbeResult):
    """One read-only channel-management request (list the app's broadcast channels)."""

    kind = ProbeKind.BROADCAST
    status: int | None = None  # None when no answer came
    reason: str | None = None  # APNs reason, "none" on 200
    channels: int | None = None  # how many channels the app has, on 200
    address: str | None = None  # the management server's address, when connected

    @property
    def layer(self) -> str | None:
        """A refused token or a key without broadcast rights fails at auth, the rest at apns."""
        if self.ok:
            return None
        if self.error is not None or self.reason is None:
            return _layer_of(self.error)
        return "auth" if self.reason in BROADCAST_AUTH_REASONS else "apns"

    @property
    def peer(self) -> str | None:
        """The management server address the request went to."""
        return self.address


RESULT_TYPES: dict[ProbeKind, type[ProbeResult]] = {
    cls.kind: cls
    for cls in (
        CanaryResult,
        PingResult,
        TlsResult,
        ReachabilityResult,
        CredentialsResult,
        BroadcastResult,
    )
}


@dataclass(frozen=True, slots=True)
class EnvironmentRoot:
    """One root an environment presents: common name, fingerprint ("" unverified), addresses."""

    root: str
    fingerprint_sha256: str
    addresses: int


@dataclass(frozen=True, slots=True)
class EnvironmentCheck:
    """Which roots one APNs environment's push host presents now, or why that is unknown."""

    environment: str  # "sandbox" or "production"
    endpoint: str  # host:port inspected
    roots: tuple[EnvironmentRoot, ...] = ()
    error: str | None = None  # a ConnectFailed reason when no address answered
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether at least one address answered with a chain."""
        return bool(self.roots)


@dataclass(frozen=True, slots=True)
class EnvironmentsResult:
    """The process-wide environment check: both environments' roots (no target, no credential).

    Apple switched the sandbox five weeks before production in 2025: a root the sandbox
    presents and production does not is a production change on its way.
    """

    started_at: float
    duration: float
    checks: tuple[EnvironmentCheck, ...]
    logs: tuple[str, ...] = ()
