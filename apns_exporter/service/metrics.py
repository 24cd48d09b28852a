"""Every metric the exporter serves, defined once, in a private registry fed by probe results.

Probes run on their own schedule, not per scrape (canary pushes have side effects and
Apple rate limits), so values describe the most recent run; HELP texts say so.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics import MetricWrapperBase

from apns_exporter import __version__
from apns_exporter.apns import Reason
from apns_exporter.client.protocol import Event, GoAway, SettingsChanged
from apns_exporter.probes import AUTH_REASON_NAMES, LAYERS, ProbeKind, ProbeResult
from apns_exporter.receipts.book import REASONS, Delivery

TARGET = ("target", "apns_environment")
Family = TypeVar("Family", Gauge, Counter, Histogram)
# Tuned to APNs: a healthy push answers in tens of milliseconds, a sick one in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Device delivery spans seconds to minutes (a phone waking up), not APNs' milliseconds.
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
RECEIPT_REJECTIONS = REASONS
SETUP_PHASES = ("resolve", "connect", "tls")
# GOAWAY reasons that start at 0, so increase() sees the first one: the forms without a
# reason, and the reasons Apple has sent in GOAWAY (shutdown, and credential problems).
GOAWAY_REASONS = ("none", "text", "unknown", Reason.SHUTDOWN.value, *sorted(AUTH_REASON_NAMES))
CONNECTION_FAILURES = ("dns", "connect", "tls_verify", "tls_handshake", "alpn", "http2", "timeout")
CREDENTIAL_ERRORS = (
    "not_found",
    "permission_denied",
    "bad_pem",
    "bad_pkcs12",
    "bad_passphrase",
    "bad_p8",
    "key_mismatch",
    "expired",
)
REQUEST_ERRORS = ("timeout", "connection_reset", "stream_reset", "goaway", "protocol")
PUSH_KINDS = ("device", "auth_check")
SCHEDULED = " Probed on the exporter's own schedule, not per scrape."


def response_labels() -> list[tuple[str, str]]:
    """Every (status, reason) pair APNs documents, plus (200, none)."""
    pairs = [("200", "none")]
    pairs += [(str(r.status), r.value) for r in Reason if r is not Reason.UNKNOWN]
    return pairs


class Metrics:
    """The exporter's metric families; call :meth:`record` with each probe result."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True
    ) -> None:
        # Every counter's _created twin would double the series for no alerting value.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        if process_metrics:
            # The exporter's own health, as every Prometheus exporter reports it.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.build_info = Gauge(
            "apns_exporter_build_info",
            "Build information; always 1.",
            ["version", "python_version"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.target_info = self._family(
            Gauge,
            "apns_target_info",
            "Configured target; always 1.",
            "host",
            "port",
            "topic",
            "auth_method",
        )
        self.up = self._family(
            Gauge, "apns_up", "1 if the last canary or auth check succeeded." + SCHEDULED
        )
        self.connection_up = self._family(
            Gauge,
            "apns_connection_up",
            "1 if the HTTP/2 connection is open and the last PING was acknowledged.",
        )
        self.connection_attempts = self._family(
            Counter, "apns_connection_attempts", "Connections the exporter tried to open."
        )
        self.connection_failures = self._family(
            Counter,
            "apns_connection_failures",
            "Connection attempts that failed, by layer.",
            "reason",
        )
        self.setup_duration = self._family(
            Histogram,
            "apns_connection_setup_duration_seconds",
            "Time spent opening a connection, by phase.",
            "phase",
            buckets=LATENCY_BUCKETS,
        )
        self.goaways = self._family(
            Counter,
            "apns_goaway_received",
            "GOAWAY frames received, by APNs reason (none if empty).",
            "reason",
        )
        self.max_streams = self._family(
            Gauge, "apns_max_concurrent_streams", "MAX_CONCURRENT_STREAMS the server advertises."
        )
        self.ping_rtt = self._family(
            Histogram,
            "apns_ping_rtt_seconds",
            "HTTP/2 PING round-trip time." + SCHEDULED,
            buckets=RTT_BUCKETS,
        )
        self.ping_failures = self._family(
            Counter, "apns_ping_failures", "PINGs that failed, by reason.", "reason"
        )
        self.ping_last_success = self._family(
            Gauge, "apns_ping_last_success_timestamp_seconds", "When a PING last succeeded."
        )
        self.ping_interval = self._family(
            Gauge, "apns_ping_interval_seconds", "Configured PING interval."
        )
        self.canary_pushes = self._family(
            Counter,
            "apns_canary_pushes",
            "Canary pushes sent, by kind (device or auth_check).",
            "kind",
        )
        self.canary_responses = self._family(
            Counter,
            "apns_canary_responses",
            "Canary push responses, by HTTP status and APNs reason.",
            "status",
            "reason",
        )
        self.canary_errors = self._family(
            Counter,
            "apns_canary_request_errors",
            "Canary pushes that got no response, by error.",
            "error",
        )
        self.canary_duration = self._family(
            Histogram,
            "apns_canary_duration_seconds",
            "Canary push latency, request sent to response headers." + SCHEDULED,
            buckets=LATENCY_BUCKETS,
        )
        self.canary_last_success = self._family(
            Gauge, "apns_canary_last_success_timestamp_seconds", "When a canary run last succeeded."
        )
        self.canary_last_attempt = self._family(
            Gauge, "apns_canary_last_attempt_timestamp_seconds", "When a canary run last finished."
        )
        self.canary_interval = self._family(
            Gauge, "apns_canary_interval_seconds", "Configured canary interval."
        )
        self.token_issued = self._family(
            Gauge, "apns_provider_token_issued_timestamp_seconds", "iat of the provider JWT in use."
        )
        self.token_refreshes = self._family(
            Counter, "apns_provider_token_refreshes", "Provider JWTs minted."
        )
        self.signing_key_info = self._family(
            Gauge,
            "apns_signing_key_info",
            "Signing key used by a target; always 1.",
            "key_id",
            "team_id",
        )
        self.credential_up = self._family(
            Gauge,
            "apns_credential_up",
            "1 if the target's key or certificate file loaded; 0 while a broken file is "
            "rejected (the previous credential, if any, stays in use).",
        )
        self.credential_errors = self._family(
            Counter,
            "apns_credential_load_errors",
            "Failed attempts to load the target's credential files, by reason.",
            "reason",
        )
        self.cert_not_after = self._family(
            Gauge,
            "apns_client_certificate_not_after_timestamp_seconds",
            "notAfter of the provider certificate the target presents.",
        )
        self.cert_not_before = self._family(
            Gauge,
            "apns_client_certificate_not_before_timestamp_seconds",
            "notBefore of the provider certificate the target presents.",
        )
        self.cert_info = self._family(
            Gauge,
            "apns_client_certificate_info",
            "The provider certificate the target presents; always 1.",
            "subject_cn",
            "topics",
            "environments",
            "fingerprint_sha256",
            "mdm",
        )
        self.key_rotation_due = self._family(
            Gauge,
            "apns_signing_key_rotation_due_timestamp_seconds",
            "The rotate_by date configured for the signing key (keys never expire by themselves).",
        )
        self.key_verified = self._family(
            Gauge,
            "apns_signing_key_last_verified_timestamp_seconds",
            "When APNs last accepted a request signed with the target's key.",
        )
        self.key_invalid_streak = self._family(
            Gauge,
            "apns_signing_key_invalid_streak",
            "Consecutive InvalidProviderToken answers since the key last worked; a streak "
            "after earlier successes means the key was probably revoked.",
        )
        self.token_refresh_failures = self._family(
            Counter,
            "apns_provider_token_refresh_failures",
            "Provider JWTs that could not be signed.",
        )
        self.delivery_duration = self._family(
            Histogram,
            "apns_canary_delivery_duration_seconds",
            "Canary sent to the device's signed receipt: true end-to-end delivery latency.",
            buckets=DELIVERY_BUCKETS,
        )
        self.deliveries = self._family(
            Counter, "apns_canary_deliveries", "Canaries confirmed by a valid device receipt."
        )
        self.delivery_lost = self._family(
            Counter,
            "apns_canary_delivery_lost",
            "Canaries APNs accepted but no valid receipt arrived for within the deadline.",
        )
        self.last_delivery = self._family(
            Gauge,
            "apns_canary_last_delivery_timestamp_seconds",
            "When the last valid receipt arrived.",
        )
        self.receipts_rejected = Counter(
            "apns_canary_receipts_rejected",
            "Receipts refused by the receipt listener, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in RECEIPT_REJECTIONS:
            self.receipts_rejected.labels(reason)
        self.reload_ok = Gauge(
            "apns_exporter_config_last_reload_successful",
            "1 if the last configuration reload succeeded.",
            registry=r,
        )
        self.reload_time = Gauge(
            "apns_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
            registry=r,
        )
        self.failing_layer = self._family(
            Gauge,
            "apns_failing_layer",
            "1 for the lowest layer at which the target fails now (dns, tcp, tls, http2, "
            "auth, apns, exporter); all 0 when healthy.",
            "layer",
        )
        self.server_not_after = self._family(
            Gauge,
            "apns_server_certificate_not_after_timestamp_seconds",
            "Earliest notAfter in the server chain APNs presents (the leaf only where the "
            "Python runtime cannot see the chain; see apns_server_certificate_info).",
        )
        self.server_info = self._family(
            Gauge,
            "apns_server_certificate_info",
            "The server chain APNs presents; always 1. presented is chain or leaf_only.",
            "subject",
            "issuer",
            "root",
            "fingerprint_sha256",
            "presented",
        )
        self.server_verified = self._family(
            Gauge,
            "apns_server_certificate_verified",
            "1 if the server chain verifies against this trust store: ca_file, system, or "
            "effective (what the exporter's connections use: system plus ca_file).",
            "trust_store",
        )
        self.chain_changes = self._family(
            Counter,
            "apns_server_certificate_chain_changes",
            "Times the issuing side of the server chain differed from the previous check.",
        )
        self.tls_version = self._family(
            Gauge, "apns_tls_version_info", "TLS version negotiated with APNs; always 1.", "version"
        )
        self.reachable = self._family(
            Gauge,
            "apns_reachable",
            "1 if a TCP connection to host:port over this address family succeeded." + SCHEDULED,
            "host",
            "port",
            "family",
        )
        self.reach_seconds = self._family(
            Gauge,
            "apns_reachability_connect_seconds",
            "TCP connect time of the last successful reachability check.",
            "host",
            "port",
            "family",
        )
        self.in_apple_range = self._family(
            Gauge,
            "apns_address_in_apple_range",
            "1 if every address the host resolved to lies in Apple's ranges (17.0.0.0/8 and "
            "Apple's APNs IPv6 ranges); 0 suggests DNS hijacking or a proxy.",
            "host",
        )
        self._environments: dict[str, str] = {}
        self._has_canary: dict[str, bool] = {}
        self._latest: dict[tuple[str, ProbeKind], ProbeResult] = {}
        self._key_worked: set[str] = set()

    def delivered(self, delivery: Delivery, now: float) -> None:
        """Count a canary confirmed by its device."""
        t = (delivery.target, self._environments.get(delivery.target, ""))
        self.delivery_duration.labels(*t).observe(delivery.latency)
        self.deliveries.labels(*t).inc()
        self.last_delivery.labels(*t).set(now)

    def lost(self, target: str) -> None:
        """Count a canary whose receipt never came."""
        if target in self._environments:
            self.delivery_lost.labels(target, self._environments[target]).inc()

    def receipt_rejected(self, reason: str) -> None:
        """Count a refused receipt (the reason set is closed)."""
        self.receipts_rejected.labels(_bounded(reason, RECEIPT_REJECTIONS, "malformed")).inc()

    def reloaded(self, ok: bool, now: float) -> None:
        """Record the outcome of loading the configuration."""
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(now)

    def _family(
        self, kind: type[Family], name: str, documentation: str, *labels: str, **options: Any
    ) -> Family:
        """A metric family labelled by target and environment (plus ``labels``)."""
        return kind(name, documentation, [*TARGET, *labels], registry=self.registry, **options)

    def forget(self, name: str) -> None:
        """Remove every series of a target, so a removed target disappears from /metrics."""
        for collector in list(self.registry._collector_to_names):
            if isinstance(collector, MetricWrapperBase) and "target" in collector._labelnames:
                collector.remove_by_labels({"target": name})
        self._environments.pop(name, None)
        self._key_worked.discard(name)
        self._has_canary.pop(name, None)
        for kind in ProbeKind:
            self._latest.pop((name, kind), None)

    def add_target(
        self,
        name: str,
        environment: str,
        *,
        host: str,
        port: int,
        topic: str,
        auth_method: str,
        canary_interval: float | None,
        ping_interval: float,
        key: tuple[str, str] | None = None,
        rotate_by: float | None = None,
        delivery: bool = False,
    ) -> None:
        """Create a target's series, so every known label value reads 0 before any event."""
        self._environments[name] = environment
        self._has_canary[name] = canary_interval is not None
        t = (name, environment)
        for layer in LAYERS:
            self.failing_layer.labels(*t, layer).set(0)
        self.target_info.labels(*t, host, str(port), topic, auth_method).set(1)
        for gauge in (self.up, self.connection_up):
            gauge.labels(*t).set(0)
        self.connection_attempts.labels(*t)
        for reason in CONNECTION_FAILURES:
            self.connection_failures.labels(*t, reason)
        for reason in GOAWAY_REASONS:
            self.goaways.labels(*t, reason)
        self.ping_failures.labels(*t, "timeout")
        self.ping_interval.labels(*t).set(ping_interval)
        if canary_interval is not None:
            self.canary_interval.labels(*t).set(canary_interval)
            for kind in PUSH_KINDS:
                self.canary_pushes.labels(*t, kind)
            for status, reason in response_labels():
                self.canary_responses.labels(*t, status, reason)
            for error in REQUEST_ERRORS:
                self.canary_errors.labels(*t, error)
        self.chain_changes.labels(*t)
        if delivery:
            self.deliveries.labels(*t)
            self.delivery_lost.labels(*t)
        for reason in CREDENTIAL_ERRORS:
            self.credential_errors.labels(*t, reason)
        if key is not None:
            self.signing_key_info.labels(*t, *key).set(1)
            self.key_invalid_streak.labels(*t).set(0)
            self.token_refresh_failures.labels(*t)
            if rotate_by is not None:
                self.key_rotation_due.labels(*t).set(rotate_by)
            self.token_refreshes.labels(*t)

    def record(self, result: ProbeResult) -> None:
        """Fold one probe result into the metrics."""
        t = (result.target, self._environments.get(result.target, ""))
        for dial in result.dials:
            self.connection_attempts.labels(*t).inc()
            if dial.ok:
                for phase, seconds in dial.phases.items():
                    self.setup_duration.labels(*t, phase).observe(seconds)
            else:
                self.connection_failures.labels(*t, dial.reason or "connect").inc()
        if result.probe is ProbeKind.CANARY:
            self._record_canary(t, result)
        elif result.probe is ProbeKind.PING:
            self._record_ping(t, result)
        elif result.probe is ProbeKind.REACHABILITY:
            self._record_reachability(t, result)
        elif result.probe is ProbeKind.TLS:
            self._record_chain(t, result)
        elif result.probe is ProbeKind.CREDENTIALS:
            self._record_credential(t, result)
        self._latest[(result.target, result.probe)] = result
        self._set_layer(t)

    def _set_layer(self, t: tuple[str, str]) -> None:
        # The canary sees every layer up to APNs itself, so its verdict wins; the PING
        # speaks for targets (or moments) without a failing canary.
        canary = self._latest.get((t[0], ProbeKind.CANARY))
        ping = self._latest.get((t[0], ProbeKind.PING))
        layer = canary.layer if canary is not None else None
        if layer is None and ping is not None:
            layer = ping.layer
        for name in LAYERS:
            self.failing_layer.labels(*t, name).set(1 if name == layer else 0)

    def _record_canary(self, t: tuple[str, str], result: ProbeResult) -> None:
        for push in result.pushes:
            self.canary_pushes.labels(*t, push.kind).inc()
            if push.error is not None:
                error = _bounded(push.error, REQUEST_ERRORS, "protocol")
                self.canary_errors.labels(*t, error).inc()
            else:
                self.canary_responses.labels(*t, _status(push.status), push.reason or "none").inc()
                self.canary_duration.labels(*t).observe(push.duration)
        self.up.labels(*t).set(1 if result.ok else 0)
        end = result.started_at + result.duration
        self.canary_last_attempt.labels(*t).set(end)
        if result.ok:
            self.canary_last_success.labels(*t).set(end)
        if result.token_issued_at is not None:
            self.token_issued.labels(*t).set(result.token_issued_at)
        if result.token_minted:
            self.token_refreshes.labels(*t).inc()
        if result.token_failed:
            self.token_refresh_failures.labels(*t).inc()
        if result.token_issued_at is not None:
            self._record_key_use(t, result)

    def _record_key_use(self, t: tuple[str, str], result: ProbeResult) -> None:
        end = result.started_at + result.duration
        for push in result.pushes:
            if push.reason == Reason.INVALID_PROVIDER_TOKEN:
                # Only a key that used to work and now fails looks revoked; one that never
                # worked is a setup error, which the auth-failure alert covers.
                if t[0] in self._key_worked:
                    self.key_invalid_streak.labels(*t).inc()
            elif push.status is not None and push.reason not in AUTH_REASON_NAMES:
                self._key_worked.add(t[0])
                self.key_verified.labels(*t).set(end)
                self.key_invalid_streak.labels(*t).set(0)

    def _record_ping(self, t: tuple[str, str], result: ProbeResult) -> None:
        self.connection_up.labels(*t).set(1 if result.ok else 0)
        if not self._has_canary.get(t[0], False):
            self.up.labels(*t).set(1 if result.ok else 0)
        if result.ok and result.rtt is not None:
            self.ping_rtt.labels(*t).observe(result.rtt)
            self.ping_last_success.labels(*t).set(result.started_at + result.duration)
        elif not result.ok:
            self.ping_failures.labels(*t, result.error or "unknown").inc()

    def _record_credential(self, t: tuple[str, str], result: ProbeResult) -> None:
        self.credential_up.labels(*t).set(1 if result.ok else 0)
        if not result.ok:
            reason = _bounded(result.error, CREDENTIAL_ERRORS, "bad_pem")
            self.credential_errors.labels(*t, reason).inc()
        cert = result.certificate
        if cert is None:
            return
        self.cert_not_after.labels(*t).set(cert.not_after)
        self.cert_not_before.labels(*t).set(cert.not_before)
        self.cert_info.remove_by_labels({"target": t[0]})
        self.cert_info.labels(
            *t,
            cert.subject_cn,
            ",".join(cert.topics),
            cert.environments_label,
            cert.fingerprint_sha256,
            "true" if cert.is_mdm else "false",
        ).set(1)

    def _record_chain(self, t: tuple[str, str], result: ProbeResult) -> None:
        report = result.chain
        if report is None:
            return  # no handshake happened; the previous chain's series stay as they were
        self.server_not_after.labels(*t).set(report.earliest_not_after)
        # One info series per target: drop the previous chain's labels first.
        self.server_info.remove_by_labels({"target": t[0]})
        self.server_info.labels(
            *t,
            report.leaf_subject,
            report.leaf_issuer,
            report.root_subject or "",
            report.leaf_fingerprint_sha256,
            "chain" if report.full_chain else "leaf_only",
        ).set(1)
        effective = report.verified_system or bool(report.verified_ca_file)
        self.server_verified.labels(*t, "effective").set(int(effective))
        self.server_verified.labels(*t, "system").set(int(report.verified_system))
        if report.verified_ca_file is not None:
            self.server_verified.labels(*t, "ca_file").set(int(report.verified_ca_file))
        self.tls_version.remove_by_labels({"target": t[0]})
        if report.tls_version:
            self.tls_version.labels(*t, report.tls_version).set(1)
        if result.chain_changed:
            self.chain_changes.labels(*t).inc()

    def _record_reachability(self, t: tuple[str, str], result: ProbeResult) -> None:
        for reach in result.reaches:
            if reach.family != "none":
                where = (*t, reach.host, str(reach.port), reach.family)
                self.reachable.labels(*where).set(1 if reach.reachable else 0)
                if reach.connect_seconds is not None:
                    self.reach_seconds.labels(*where).set(reach.connect_seconds)
            else:
                # The name did not resolve: nothing is reachable on any family.
                for family in ("ipv4", "ipv6"):
                    self.reachable.labels(*t, reach.host, str(reach.port), family).set(0)
            if reach.in_apple_range is not None:
                self.in_apple_range.labels(*t, reach.host).set(1 if reach.in_apple_range else 0)

    def observe(self, target: str, event: Event, *, streams: bool = True) -> None:
        """Count a connection-level event as it happens (``streams``: track its stream limit)."""
        t = (target, self._environments.get(target, ""))
        if isinstance(event, GoAway):
            self.goaways.labels(*t, _goaway_reason(event)).inc()
        elif isinstance(event, SettingsChanged) and streams:
            self.max_streams.labels(*t).set(event.max_concurrent_streams)


def _status(status: int | None) -> str:
    # A misbehaving server could send any status; keep the label set bounded.
    return str(status) if status in _KNOWN_STATUSES else "other"


def _goaway_reason(event: GoAway) -> str:
    # "none" (empty debug data) and "text" (not JSON) are kept; JSON reasons are bounded.
    reason = event.reason
    return reason if reason in ("none", "text") else Reason.parse(reason).value


def _bounded(value: str | None, allowed: Sequence[str], fallback: str) -> str:
    # Label values come from closed sets, so a surprise cannot add series without bound.
    return value if value is not None and value in allowed else fallback


_KNOWN_STATUSES = frozenset({200, *(r.status for r in Reason if r is not Reason.UNKNOWN)})
