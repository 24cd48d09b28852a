"""Per-target metric families that remember their series, and the label sets they use.

A family records which label tuples it created for each target, so removing a target's
series takes public prometheus_client API only (``remove``), and costs what it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from apns_exporter.apns import Reason
from apns_exporter.client.protocol import GoAway
from apns_exporter.errors import CredentialError
from apns_exporter.probes import AUTH_REASON_NAMES
from apns_exporter.receipts.book import REASONS

TARGET = ("target", "apns_environment")
Labels = tuple[str, str]  # (target, apns_environment)
M = TypeVar("M", Gauge, Counter, Histogram)

# Tuned to APNs: a healthy push answers in tens of milliseconds, a sick one in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Device delivery spans seconds to minutes (a phone waking up), not APNs' milliseconds.
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
RECEIPT_REJECTIONS = REASONS
# GOAWAY reasons that start at 0, so increase() sees the first one: the forms without a
# reason, and the reasons Apple has sent in GOAWAY (shutdown, and credential problems).
GOAWAY_REASONS = ("none", "text", "unknown", Reason.SHUTDOWN.value, *sorted(AUTH_REASON_NAMES))
CONNECTION_FAILURES = ("dns", "connect", "tls_verify", "tls_handshake", "alpn", "http2", "timeout")
CREDENTIAL_ERRORS = tuple(sorted(CredentialError.REASONS))
REQUEST_ERRORS = ("timeout", "connection_reset", "stream_reset", "goaway", "protocol")
PUSH_KINDS = ("device", "auth_check")
SCHEDULED = " Probed on the exporter's own schedule, not per scrape."


class TargetFamily(Generic[M]):
    """One metric family labelled by target and environment first, and its series per target."""

    def __init__(self, metric: M, labelnames: Sequence[str]) -> None:
        self.metric: M = metric
        self.labelnames = tuple(labelnames)
        self._series: dict[str, set[tuple[str, ...]]] = {}

    def labels(self, *values: str) -> M:
        """The child for ``values`` (target, environment, then this family's own labels)."""
        self._series.setdefault(values[0], set()).add(values)
        return self.metric.labels(*values)

    def forget(self, target: str) -> None:
        """Remove every series of ``target``."""
        for values in self._series.pop(target, ()):
            self.metric.remove(*values)


class Families:
    """Makes the per-target families of one registry and keeps the list of them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.made: list[TargetFamily[Gauge] | TargetFamily[Counter] | TargetFamily[Histogram]] = []

    def gauge(self, name: str, documentation: str, *labels: str) -> TargetFamily[Gauge]:
        """A gauge family with ``labels`` after the target's."""
        names = (*TARGET, *labels)
        family = TargetFamily(Gauge(name, documentation, names, registry=self.registry), names)
        self.made.append(family)
        return family

    def counter(self, name: str, documentation: str, *labels: str) -> TargetFamily[Counter]:
        """A counter family (``_total`` is added on exposition) with ``labels``."""
        names = (*TARGET, *labels)
        family = TargetFamily(Counter(name, documentation, names, registry=self.registry), names)
        self.made.append(family)
        return family

    def histogram(
        self, name: str, documentation: str, *labels: str, buckets: Sequence[float]
    ) -> TargetFamily[Histogram]:
        """A histogram family with ``labels`` and ``buckets``."""
        names = (*TARGET, *labels)
        metric = Histogram(name, documentation, names, registry=self.registry, buckets=buckets)
        family = TargetFamily(metric, names)
        self.made.append(family)
        return family


def response_labels() -> list[tuple[str, str]]:
    """Every (status, reason) pair APNs documents, plus (200, none)."""
    pairs = [("200", "none")]
    pairs += [(str(r.status), r.value) for r in Reason if r is not Reason.UNKNOWN]
    return pairs


def status_label(status: int | None) -> str:
    """An HTTP status as a label; a misbehaving server's odd status stays bounded."""
    return str(status) if status in _KNOWN_STATUSES else "other"


def goaway_label(event: GoAway) -> str:
    """A GOAWAY's reason label: "none" (empty), "text" (not JSON), or a bounded APNs reason."""
    reason = event.reason
    return reason if reason in ("none", "text") else Reason.parse(reason).value


def bounded(value: str | None, allowed: Sequence[str], fallback: str) -> str:
    """``value`` if it is in the closed set ``allowed``, else ``fallback``."""
    # Label values come from closed sets, so a surprise cannot add series without bound.
    return value if value is not None and value in allowed else fallback


_KNOWN_STATUSES = frozenset({200, *(r.status for r in Reason if r is not Reason.UNKNOWN)})
