"""The per-target metric families, one small class per probe family group.

Each group defines its families (names, types, labels and HELP texts are a public contract:
docs/metrics.md is the reference), pre-initialises a new target's series, and folds in the
results of its probe. A group is the one place to change a family's labels or cardinality.
Longer than 400 lines because it is the catalogue of the contract, one group after another.
"""

from __future__ import annotations

from collections.abc import Mapping

from apns_exporter.client.protocol import GoAway, SettingsChanged
from apns_exporter.probes import (
    BroadcastResult,
    CanaryResult,
    ConnectionResult,
    CredentialsResult,
    PingResult,
    ReachabilityResult,
    TlsResult,
)
from apns_exporter.service.series import (
    BROADCAST_RESPONSE_REASONS,
    DELIVERY_BUCKETS,
    LATENCY_BUCKETS,
    PUSH_KINDS,
    RTT_BUCKETS,
    SCHEDULED,
    Families,
    Labels,
    bounded,
    exemplar,
    goaway_label,
    status_label,
)
from apns_exporter.service.state import TargetStatus

# A rollout shows two roots; a label per root beyond a few would be a misbehaving server's.
MAX_ROOT_LABELS = 4


class TargetSeries:
    """The target itself, its verdicts and its connections."""

    def __init__(self, make: Families) -> None:
        self.info = make.gauge(
            "apns_target_info",
            "Configured target; always 1.",
            "host",
            "port",
            "topic",
            "auth_method",
        )
        self.up = make.gauge("apns_up", "1 if the last canary or auth check succeeded." + SCHEDULED)
        self.connection_up = make.gauge(
            "apns_connection_up",
            "1 if the HTTP/2 connection is open and the last PING was acknowledged.",
        )
        self.attempts = make.counter(
            "apns_connection_attempts", "Connections the exporter tried to open."
        )
        self.failures = make.counter(
            "apns_connection_failures", "Connection attempts that failed, by layer.", "reason"
        )
        # Gauges of the last dial, not a histogram: 3 series instead of 42 per target.
        self.setup_duration = make.gauge(
            "apns_connection_last_setup_duration_seconds",
            "Time the last successful connection took to open, by phase.",
            "phase",
        )
        self.goaways = make.counter(
            "apns_goaway_received",
            "GOAWAY frames received, by APNs reason (none if empty).",
            "reason",
        )
        self.max_streams = make.gauge(
            "apns_max_concurrent_streams", "MAX_CONCURRENT_STREAMS the server advertises."
        )
        self.failing_layer = make.gauge(
            "apns_failing_layer",
            "1, labelled with the lowest layer at which the target fails now (dns, proxy, tcp, "
            "tls, http2, auth, apns, exporter); absent while the target is healthy.",
            "layer",
        )
        self._layer: dict[str, tuple[str, ...] | None] = {}

    def add(
        self,
        t: Labels,
        host: str,
        port: int,
        topic: str,
        auth_method: str,
        *,
        network: bool,
        owners: Mapping[str, str] | None = None,
    ) -> None:
        """Create the target's series at 0 (``network``: it connects to APNs)."""
        self.describe(t, host, port, topic, auth_method, owners)
        if not network:
            return
        for gauge in (self.up, self.connection_up):
            gauge.labels(*t).set(0)
        self.attempts.labels(*t)

    def describe(
        self,
        t: Labels,
        host: str,
        port: int,
        topic: str,
        auth_method: str,
        owners: Mapping[str, str] | None = None,
    ) -> None:
        """Set the target's one info series (replacing the previous one).

        ``owners`` (the target's configured labels) go on this series only: a group_left
        join brings them to any other (docs/operations.md), so cardinality stays put.
        """
        self.info.forget(t[0])
        self.info.labels_with((*t, host, str(port), topic, auth_method), owners or {}).set(1)

    def record_connection(self, t: Labels, result: ConnectionResult) -> None:
        """Count a run's connection attempts and what its kept connection reported."""
        for dial in result.dials:
            self.attempts.labels(*t).inc()
            if dial.reason is not None:
                self.failures.labels(*t, dial.reason).inc()
            else:
                for phase, seconds in dial.phases.items():
                    self.setup_duration.labels(*t, phase).set(seconds)
        for event in result.events:
            if isinstance(event, GoAway):
                self.goaways.labels(*t, goaway_label(event)).inc()
            elif isinstance(event, SettingsChanged):
                self.max_streams.labels(*t).set(event.max_concurrent_streams)

    def forgot(self, target: str) -> None:
        """Drop what is kept about a removed target's series."""
        self._layer.pop(target, None)

    def set_layer(self, t: Labels, layer: str | None) -> None:
        """Mark ``layer`` as the one failing now (None: healthy, no series)."""
        # One series while failing instead of one per layer: 8 series per target saved.
        # Unchanged, it is left alone, so the target's rendered lines stay cached.
        now = (*t, layer) if layer is not None else None
        if self._layer.get(t[0]) == now:
            return
        self.failing_layer.forget(t[0])
        self._layer[t[0]] = now
        if now is not None:
            self.failing_layer.labels(*now).set(1)


class PingSeries:
    """HTTP/2 PINGs on the kept connection."""

    def __init__(self, make: Families) -> None:
        self.rtt = make.histogram(
            "apns_ping_rtt_seconds",
            "HTTP/2 PING round-trip time." + SCHEDULED,
            buckets=RTT_BUCKETS,
        )
        self.failures = make.counter(
            "apns_ping_failures", "PINGs that failed, by reason.", "reason"
        )
        self.last_success = make.gauge(
            "apns_ping_last_success_timestamp_seconds", "When a PING last succeeded."
        )

    def record(self, t: Labels, result: PingResult) -> None:
        """Fold in one PING run."""
        if result.rtt is not None:
            self.rtt.labels(*t).observe(result.rtt)
            self.last_success.labels(*t).set(result.run.finished_at)
        elif result.error is not None:
            self.failures.labels(*t, result.error).inc()


class CanarySeries:
    """Canary pushes and how APNs answered them."""

    def __init__(self, make: Families) -> None:
        self.pushes = make.counter(
            "apns_canary_pushes", "Canary pushes sent, by kind (device or auth_check).", "kind"
        )
        self.responses = make.counter(
            "apns_canary_responses",
            "Canary push responses, by HTTP status and APNs reason.",
            "status",
            "reason",
        )
        self.errors = make.counter(
            "apns_canary_request_errors", "Canary pushes that got no response, by error.", "error"
        )
        self.duration = make.histogram(
            "apns_canary_duration_seconds",
            "Canary push latency, request sent to response headers." + SCHEDULED,
            buckets=LATENCY_BUCKETS,
        )
        self.last_success = make.gauge(
            "apns_canary_last_success_timestamp_seconds", "When a canary run last succeeded."
        )
        self.last_attempt = make.gauge(
            "apns_canary_last_attempt_timestamp_seconds", "When a canary run last finished."
        )

    def add(self, t: Labels) -> None:
        """Create the target's push counters at 0; answers and errors appear on first use."""
        for kind in PUSH_KINDS:
            self.pushes.labels(*t, kind)

    def record(self, t: Labels, result: CanaryResult) -> None:
        """Fold in one canary run."""
        for push in result.pushes:
            self.pushes.labels(*t, push.kind).inc()
            if push.error is not None:
                self.errors.labels(*t, push.error).inc()
            else:
                status = status_label(push.status)
                self.responses.labels(*t, status, push.reason or "none").inc()
                self.duration.labels(*t).observe(push.duration, exemplar(push))
        end = result.run.finished_at
        self.last_attempt.labels(*t).set(end)
        if result.ok:
            self.last_success.labels(*t).set(end)


class KeySeries:
    """The signing key and the provider tokens minted from it."""

    def __init__(self, make: Families) -> None:
        self.token_issued = make.gauge(
            "apns_provider_token_issued_timestamp_seconds", "iat of the provider JWT in use."
        )
        self.token_refreshes = make.counter(
            "apns_provider_token_refreshes", "Provider JWTs minted."
        )
        self.info = make.gauge(
            "apns_signing_key_info", "Signing key used by a target; always 1.", "key_id", "team_id"
        )
        self.rotation_due = make.gauge(
            "apns_signing_key_rotation_due_timestamp_seconds",
            "The rotate_by date configured for the signing key (keys never expire by themselves).",
        )
        self.verified = make.gauge(
            "apns_signing_key_last_verified_timestamp_seconds",
            "When APNs last accepted a request signed with the target's key.",
        )
        self.invalid_streak = make.gauge(
            "apns_signing_key_invalid_streak",
            "Consecutive InvalidProviderToken answers since the key last worked; a streak "
            "after earlier successes means the key was probably revoked.",
        )
        self.refresh_failures = make.counter(
            "apns_provider_token_refresh_failures",
            "Provider JWTs that could not be signed.",
        )

    def add(
        self, t: Labels, key: tuple[str, str], rotate_by: float | None, *, network: bool
    ) -> None:
        """Create a token target's series (``network``: it signs requests to APNs)."""
        self.info.labels(*t, *key).set(1)
        if rotate_by is not None:
            self.rotation_due.labels(*t).set(rotate_by)
        if network:
            self.invalid_streak.labels(*t).set(0)
            self.token_refreshes.labels(*t)

    def record(self, t: Labels, result: CanaryResult, status: TargetStatus) -> None:
        """Fold in the token side of one canary run, and the key's standing after it."""
        if result.token_issued_at is not None:
            self.token_issued.labels(*t).set(result.token_issued_at)
        if result.token_minted:
            self.token_refreshes.labels(*t).inc()
        if result.token_failed:
            self.refresh_failures.labels(*t).inc()
        if result.token_issued_at is None:
            return
        self.invalid_streak.labels(*t).set(status.invalid_streak)
        if status.key_verified_at is not None:
            self.verified.labels(*t).set(status.key_verified_at)


class DeliverySeries:
    """Canaries confirmed, or never confirmed, by the device's signed receipt."""

    def __init__(self, make: Families) -> None:
        self.duration = make.histogram(
            "apns_canary_delivery_duration_seconds",
            "Canary sent to the device's signed receipt: true end-to-end delivery latency.",
            buckets=DELIVERY_BUCKETS,
        )
        self.deliveries = make.counter(
            "apns_canary_deliveries", "Canaries confirmed by a valid device receipt."
        )
        self.lost = make.counter(
            "apns_canary_delivery_lost",
            "Canaries APNs accepted but no valid receipt arrived for within the deadline.",
        )
        self.last = make.gauge(
            "apns_canary_last_delivery_timestamp_seconds", "When the last valid receipt arrived."
        )

    def add(self, t: Labels) -> None:
        """Create a delivery-measuring target's counters at 0."""
        self.deliveries.labels(*t)
        self.lost.labels(*t)


class CredentialSeries:
    """The key or certificate files and the provider certificate presented."""

    def __init__(self, make: Families) -> None:
        self.up = make.gauge(
            "apns_credential_up",
            "1 if the target's key or certificate file loaded; 0 while a broken file is "
            "rejected (the previous credential, if any, stays in use).",
        )
        self.errors = make.counter(
            "apns_credential_load_errors",
            "Failed attempts to load the target's credential files, by reason.",
            "reason",
        )
        self.not_after = make.gauge(
            "apns_client_certificate_not_after_timestamp_seconds",
            "notAfter of the provider certificate the target presents.",
        )
        self.not_before = make.gauge(
            "apns_client_certificate_not_before_timestamp_seconds",
            "notBefore of the provider certificate the target presents.",
        )
        self.info = make.gauge(
            "apns_client_certificate_info",
            "The provider certificate the target presents; always 1.",
            "subject_cn",
            "topics",
            "environments",
            "fingerprint_sha256",
            "mdm",
        )
        # Only after a change is seen: no series (and no cost) for the other targets.
        self.topic_changed = make.gauge(
            "apns_client_certificate_topic_changed_timestamp_seconds",
            "When a renewed push certificate of this target (or discovered file) was seen "
            "carrying a different topic (UID) from the one it replaced; every MDM-enrolled "
            "device must then re-enrol.",
        )
        self.topic_change = make.gauge(
            "apns_client_certificate_topic_change_info",
            "The last topic change: the topic before and after; always 1.",
            "previous_topic",
            "topic",
        )

    def topic_changed_to(self, t: Labels, previous: str, topic: str, now: float) -> None:
        """Record that the certificate's topic changed from ``previous`` to ``topic``."""
        self.topic_changed.labels(*t).set(now)
        self.topic_change.forget(t[0])  # one change series per target: the latest
        self.topic_change.labels(*t, previous, topic).set(1)

    def record(self, t: Labels, result: CredentialsResult) -> None:
        """Fold in one credential check."""
        self.up.labels(*t).set(1 if result.ok else 0)
        if result.error is not None:
            self.errors.labels(*t, result.error).inc()
        cert = result.certificate
        if cert is None:
            return
        self.not_after.labels(*t).set(cert.not_after)
        self.not_before.labels(*t).set(cert.not_before)
        self.info.forget(t[0])  # one info series per target
        self.info.labels(
            *t,
            cert.subject_cn,
            ",".join(cert.topics),
            cert.environments_label,
            cert.fingerprint_sha256,
            "true" if cert.is_mdm else "false",
        ).set(1)


class ChainSeries:
    """The server chain APNs presents."""

    def __init__(self, make: Families) -> None:
        self.not_after = make.gauge(
            "apns_server_certificate_not_after_timestamp_seconds",
            "Earliest notAfter in the server chain APNs presents (the leaf only where the "
            "Python runtime cannot see the chain; see apns_server_certificate_info).",
        )
        self.info = make.gauge(
            "apns_server_certificate_info",
            "The server chain APNs presents; always 1. presented is chain or leaf_only; "
            "tls_version is the TLS version negotiated.",
            "subject",
            "issuer",
            "root",
            "fingerprint_sha256",
            "presented",
            "tls_version",
        )
        self.verified = make.gauge(
            "apns_server_certificate_verified",
            "1 if the server chain verifies against this trust store: ca_file, system, or "
            "effective (what the exporter's connections use: system plus ca_file).",
            "trust_store",
        )
        self.changes = make.counter(
            "apns_server_certificate_chain_changes",
            "Times the issuing side of the server chain differed from the previous check.",
        )
        self.trust_root = make.gauge(
            "apns_trust_store_root_present",
            "1 if the target's trust store (system plus ca_file) holds this root, which "
            "Apple's server-certificate notice names (global.required_roots); 0 if missing.",
            "root",
            "fingerprint_sha256",
        )
        self.root_addresses = make.gauge(
            "apns_server_certificate_root_addresses",
            "How many of the host's addresses (at most 8 per check) present a chain ending in "
            f"this root (its common name; at most {MAX_ROOT_LABELS} roots, then other).",
            "root",
        )
        self.last_attempt = make.gauge(
            "apns_tls_check_last_attempt_timestamp_seconds",
            "When the server-chain check last finished, whatever its result.",
        )

    def record(self, t: Labels, result: TlsResult) -> None:
        """Fold in one tls_check run."""
        self.last_attempt.labels(*t).set(result.run.finished_at)
        for presence in result.trust_roots:
            where = (*t, presence.name, presence.fingerprint_sha256)
            self.trust_root.labels(*where).set(int(presence.present))
        report = result.chain
        if report is None:
            return  # no handshake happened; the previous chain's series stay as they were
        self.not_after.labels(*t).set(report.earliest_not_after)
        self.info.forget(t[0])  # one info series per target: drop the previous chain's
        self.info.labels(
            *t,
            report.leaf_subject,
            report.leaf_issuer,
            report.root_subject or "",
            report.leaf_fingerprint_sha256,
            "chain" if report.full_chain else "leaf_only",
            report.tls_version or "",
        ).set(1)
        self.verified.labels(*t, "effective").set(int(report.trusted))
        self.verified.labels(*t, "system").set(int(report.verified_system))
        if report.verified_ca_file is not None:
            self.verified.labels(*t, "ca_file").set(int(report.verified_ca_file))
        if result.chain_changed:
            self.changes.labels(*t).inc()
        self.root_addresses.forget(t[0])  # roots no address presents any more disappear
        for root, count in root_counts(result.root_addresses).items():
            self.root_addresses.labels(*t, root).set(count)


def root_counts(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` with at most :data:`MAX_ROOT_LABELS` roots named, the rest summed as other."""
    named = sorted(counts, key=lambda root: (-counts[root], root))[:MAX_ROOT_LABELS]
    bounded = {root: counts[root] for root in named}
    rest = sum(n for root, n in counts.items() if root not in bounded)
    if rest:
        bounded["other"] = rest
    return bounded


class ReachabilitySeries:
    """DNS and TCP reachability of the hosts push depends on."""

    def __init__(self, make: Families) -> None:
        self.reachable = make.gauge(
            "apns_reachable",
            "1 if a TCP connection to host:port over this address family succeeded." + SCHEDULED,
            "host",
            "port",
            "family",
        )
        self.connect_seconds = make.gauge(
            "apns_reachability_connect_seconds",
            "TCP connect time of the last successful reachability check.",
            "host",
            "port",
            "family",
        )
        self.in_apple_range = make.gauge(
            "apns_address_in_apple_range",
            "1 if every address the host resolved to lies in Apple's ranges (17.0.0.0/8 and "
            "Apple's APNs IPv6 ranges); 0 suggests DNS hijacking or a proxy.",
            "host",
        )

    def record(self, t: Labels, result: ReachabilityResult) -> None:
        """Fold in one reachability run."""
        for reach in result.reaches:
            if reach.family != "none":
                where = (*t, reach.host, str(reach.port), reach.family)
                self.reachable.labels(*where).set(1 if reach.reachable else 0)
                if reach.connect_seconds is not None:
                    self.connect_seconds.labels(*where).set(reach.connect_seconds)
            else:
                # The name did not resolve: nothing is reachable on any family.
                for family in ("ipv4", "ipv6"):
                    self.reachable.labels(*t, reach.host, str(reach.port), family).set(0)
            if reach.in_apple_range is not None:
                self.in_apple_range.labels(*t, reach.host).set(1 if reach.in_apple_range else 0)


class BroadcastSeries:
    """The channel-management API of broadcast push, as the broadcast probe sees it."""

    def __init__(self, make: Families) -> None:
        self.up = make.gauge(
            "apns_broadcast_up",
            "1 if the last channel-management request (list the app's channels) answered 200."
            + SCHEDULED,
        )
        self.responses = make.counter(
            "apns_broadcast_responses",
            "Channel-management answers by HTTP status and APNs reason (none on 200).",
            "status",
            "reason",
        )

    def record(self, t: Labels, result: BroadcastResult) -> None:
        """Fold in one broadcast run."""
        self.up.labels(*t).set(1 if result.ok else 0)
        if result.status is not None:
            reason = bounded(result.reason, BROADCAST_RESPONSE_REASONS, "unknown")
            self.responses.labels(*t, status_label(result.status), reason).inc()
