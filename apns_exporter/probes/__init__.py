"""The probes: each run reads a frozen snapshot of its target and returns a typed result.

Probes never raise for expected failures: every outcome is one of the frozen result types
in :mod:`apns_exporter.probes.results`.
"""

from apns_exporter.probes.results import (
    AUTH_REASON_NAMES,
    LAYERS,
    BroadcastResult,
    CanaryResult,
    ConnectionResult,
    CredentialsResult,
    PingResult,
    ProbeKind,
    ProbeResult,
    PushOutcome,
    Reach,
    ReachabilityResult,
    Run,
    TlsResult,
)
from apns_exporter.probes.run import Probe, ProbeRun, Snapshot, log_goaway, perform

__all__ = [
    "AUTH_REASON_NAMES",
    "LAYERS",
    "BroadcastResult",
    "CanaryResult",
    "ConnectionResult",
    "CredentialsResult",
    "PingResult",
    "Probe",
    "ProbeKind",
    "ProbeResult",
    "ProbeRun",
    "PushOutcome",
    "Reach",
    "ReachabilityResult",
    "Run",
    "Snapshot",
    "TlsResult",
    "log_goaway",
    "perform",
]
