"""The per-target metric families' maker, and the label sets they use.

Families live in the exposition store, grouped by target: a target's series are kept
rendered, and removing a target costs what it holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from apns_exporter.apns import BROADCAST_REASONS, Reason
from apns_exporter.client.protocol import GoAway
from apns_exporter.errors import (
    ConnectFailed,
    ConnectionLost,
    CredentialError,
    ProbeError,
    RequestFailed,
)
from apns_exporter.probes import PushOutcome
from apns_exporter.receipts.book import REASONS
from apns_exporter.service.exposition import Store
from apns_exporter.service.family import Counter, Gauge, Histogram

TARGET = ("target", "apns_environment")
Labels = tuple[str, str]  # (target, apns_environment)

# Tuned to APNs: a healthy push answers in tens of milliseconds, a sick one in seconds.
# Four bounds each, so a histogram costs 7 series per target (the budget is 50); each keeps
# a bound above its alert's default threshold (canary 2 s, PING 1 s), which
# histogram_quantile needs to report a value beyond it.
LATENCY_BUCKETS = (0.05, 0.25, 1.0, 2.5)
RTT_BUCKETS = (0.025, 0.1, 1.0, 2.5)
# Device delivery spans seconds to minutes (a phone waking up), not APNs' milliseconds.
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
RECEIPT_REJECTIONS = REASONS

# No reason series starts at 0: each appears on its first event, and the alert rules count
# that first event of a new series (apns_exporter.assets.promql.count).

# Channel management: every reason APNs documents (a closed set).
BROADCAST_RESPONSE_REASONS = ("none", *(r.value for r in Reason))
# Each error label is the reason its error class raised: these sets are those classes'.
CONNECTION_FAILURES = tuple(sorted(ConnectFailed.REASONS))
CREDENTIAL_ERRORS = tuple(sorted(CredentialError.REASONS))
REQUEST_ERRORS = tuple(sorted(RequestFailed.REASONS | ConnectionLost.REASONS))
PING_FAILURES = tuple(sorted(ProbeError.REASONS))
PUSH_KINDS = ("device", "auth_check")
SCHEDULED = " Probed on the exporter's own schedule, not per scrape."


class Families:
    """Makes the per-target families, kept rendered in one store (see service/family.py)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        """A gauge family with ``labels`` after the target's."""
        return self.store.gauge(name, documentation, (*TARGET, *labels))

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        """A counter family (``_total`` is added on exposition) with ``labels``."""
        return self.store.counter(name, documentation, (*TARGET, *labels))

    def histogram(
        self, name: str, documentation: str, *labels: str, buckets: Sequence[float]
    ) -> Histogram:
        """A histogram family with ``labels`` and ``buckets``."""
        return self.store.histogram(name, documentation, (*TARGET, *labels), buckets)


def response_labels() -> list[tuple[str, str]]:
    """Every (status, reason) pair APNs documents, plus (200, none)."""
    pairs = [("200", "none")]
    pushes = (r for r in Reason if r is not Reason.UNKNOWN and r not in BROADCAST_REASONS)
    pairs += [(str(r.status), r.value) for r in pushes]
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


# An APNs ID is a UUID (36 characters); anything longer is not one, and would push the
# exemplar past OpenMetrics' 128-character bound.
_MAX_ID = 36


def exemplar(push: PushOutcome) -> dict[str, str] | None:
    """A push's APNs IDs, as the exemplar of its latency: one per push, never a label."""
    ids = {"apns_id": push.apns_id, "apns_unique_id": push.unique_id}
    kept = {k: v for k, v in ids.items() if v and len(v) <= _MAX_ID}
    return kept or None
